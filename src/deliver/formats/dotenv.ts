/**
 * The env-file formats of `coffer load`: dotenv and Docker's `--env-file`. The other formats of
 * this folder: shell.ts (shell, JSON), github.ts, and secrets-env.ts (the agent's).
 *
 * Every format refuses a value it cannot carry exactly, with `E_INVALID_VALUE` and a message
 * that names the variable and the kind of problem, never the value (docs/design.md §6). A value with
 * a NUL byte is refused by all of them: no environment variable can hold one.
 */
import { CofferError } from "../../errors.ts";
import { parseDotenv } from "../../core/dotenv.ts";

/** Variables to write, in order: `[name, value]`; names are already valid env names. */
export type Vars = readonly (readonly [name: string, value: string])[];

/** Refuses a value with a NUL byte, naming the variable and the format. */
export function refuseNul(name: string, value: string, format: string): void {
  if (value.includes("\0")) {
    throw new CofferError(
      "E_INVALID_VALUE",
      `variable ${name} cannot be written as ${format}: its value holds a NUL byte, which no environment variable can carry`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// dotenv

/**
 * Lines after the candidate when checking it: each ends with one quote kind, so a quoted
 * candidate whose closing quote the parser would skip (a trailing backslash) runs into them
 * and shows up as a mismatch instead of passing alone and breaking in a real file.
 * Their names cannot be env names (they hold `.`), so they never collide with a variable.
 */
const SENTINELS: readonly (readonly [string, string])[] = [
  ["coffer.sentinel-1", "'"],
  ["coffer.sentinel-2", '"'],
  ["coffer.sentinel-3", "`"],
];
const SENTINEL_TEXT = SENTINELS.map(([k, v]) => `${k}=${v}\n`).join("");

function mapsEqual(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** True when `line` (one `NAME=…` entry) parses back to exactly `name=value`, also with lines after it. */
function roundTrips(name: string, value: string, line: string): boolean {
  const expected = new Map<string, string>([[name, value], ...SENTINELS]);
  return mapsEqual(parseDotenv(`${line}\n${SENTINEL_TEXT}`), expected);
}

/** What double quotes expand somewhere: `$` (sh, dotenvx), `` ` `` (sh), `\` (sh, dotenv, dotenvx), and `"` ends them. */
const DOUBLE_QUOTE_SPECIAL = /["$`\\]/;

/**
 * The one line for a value, or why there is none. Single quotes are literal in dotenv, dotenvx
 * and sh alike; a value with a single quote goes in double quotes, which all three read
 * literally when the value holds none of `"`, `$`, `` ` `` and `\`.
 */
function dotenvLine(name: string, value: string): string | { reason: string } {
  if (value.includes("\r")) return { reason: "a carriage return, which dotenv reads as a line break" };
  if (!value.includes("'")) {
    if (value.endsWith("\\")) return { reason: "a trailing backslash, which makes dotenv read past the closing quote" };
    return `${name}='${value}'`;
  }
  if (!DOUBLE_QUOTE_SPECIAL.test(value)) return `${name}="${value}"`;
  const also = [value.includes('"') && "a double quote", value.includes("$") && "a $", value.includes("`") && "a backtick", value.includes("\\") && "a backslash"]
    .filter((x): x is string => typeof x === "string");
  return { reason: `a single quote and ${also.join(" and ")}, which no quoting that dotenv, dotenvx and sh all read literally can hold together` };
}

/**
 * Writes variables as a `.env` file that reads back as exactly the same values, with nothing
 * expanded or executed, in the `dotenv` package, in dotenvx (`dotenvx run`) and in a POSIX shell
 * (`set -a; . ./.env`). Every value is quoted: `NAME='…'` (line breaks included), or
 * `NAME="…"` for a value with a single quote and none of `"`, `$`, `` ` ``, `\`.
 * Each line ends with `\n`.
 *
 * @throws CofferError `E_INVALID_VALUE` naming the variable (never the value) when no form
 *   carries its value: a single quote together with `"`, `$`, `` ` `` or `\`; a carriage return;
 *   a trailing backslash; a NUL byte. `--format shell` or `json`, or a file, carries those.
 */
export function formatDotenv(vars: Vars): string {
  const lines: string[] = [];
  const expected = new Map<string, string>();
  for (const [name, value] of vars) {
    refuseNul(name, value, "dotenv");
    const line = dotenvLine(name, value);
    if (typeof line !== "string" || !roundTrips(name, value, line)) {
      const reason = typeof line === "string" ? "characters dotenv does not read back" : line.reason;
      throw new CofferError(
        "E_INVALID_VALUE",
        `variable ${name} cannot be written as dotenv: its value holds ${reason}; use --format shell or json, or deliver it under files:`,
      );
    }
    lines.push(`${line}\n`);
    expected.set(name, value);
  }
  const text = lines.join("");
  // Belt and braces: the whole file, not only each line, must give the values back.
  if (!mapsEqual(parseDotenv(text), expected)) {
    throw new CofferError("E_INTERNAL", "the dotenv output does not parse back to the same values (a bug)");
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Docker

/**
 * Writes variables for `docker run --env-file`: `NAME=value` lines, the value raw (Docker
 * takes every byte after the `=` as it is and has no quoting at all).
 *
 * @throws CofferError `E_INVALID_VALUE` naming the variable when a value holds a line break or
 *   carriage return (the file is read a line at a time), or a NUL byte.
 */
export function formatDocker(vars: Vars): string {
  let out = "";
  for (const [name, value] of vars) {
    refuseNul(name, value, "a Docker env file");
    if (/[\r\n]/.test(value)) {
      throw new CofferError(
        "E_INVALID_VALUE",
        `variable ${name} cannot be written as a Docker env file: its value holds a line break or carriage return, which --env-file cannot carry; deliver it under files: instead`,
      );
    }
    out += `${name}=${value}\n`;
  }
  return out;
}
