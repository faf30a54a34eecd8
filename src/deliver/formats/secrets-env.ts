/**
 * The `secrets.env` file of `coffer agent`: one `NAME='value'` (or `NAME="value"`) line per
 * variable, written so that three readers take exactly the same value from it:
 *
 * - bash, `set -a; source secrets.env` (the wrapper of the NixOS design);
 * - the `dotenv` package's parser (both its default regex parser and its `fast` one);
 * - systemd's `EnvironmentFile=` (systemd.exec(5); the state machine in src/basic/env-file.c).
 *
 * The common ground, and why:
 *
 * - `'…'` is literal in all three and may span lines (bash: POSIX single quotes; dotenv: its
 *   single-quote form, no escapes; systemd: "no backslash-escape sequences are recognized").
 *   It is used for every value without a `'`, line breaks included.
 * - A value with a `'` takes `"…"`, which is literal in all three only when the value holds no
 *   `"`, `$`, backtick, and no backslash before one of `"`, `\`, `$`, backtick, `n`, `r` or a
 *   line break: bash and systemd unescape `\"`, `\\`, `` \` ``, `\$` and join lines at `\`+LF;
 *   dotenv keeps those but expands `\n` and `\r`. A backslash before anything else is kept by all.
 * - A value ending in `\` is refused: dotenv reads `\'` / `\"` as an escaped quote and runs on.
 * - CR is refused: dotenv turns every CR (and CRLF) of the file into LF before parsing.
 * - NUL, other control characters (older systemd drops a value holding one), text that is not
 *   valid Unicode, U+FEFF and Unicode noncharacters (systemd refuses both) are refused.
 * - One `NAME=value` over 128 KiB is refused: Linux's execve refuses a longer environment string.
 * - No `export ` prefix: systemd does not know it. No comments, no blank lines.
 *
 * Names: `[A-Za-z_][A-Za-z0-9_]*`, minus the names bash keeps for itself (read-only ones such as
 * `UID`, and ones whose value bash replaces, such as `RANDOM` or `SECONDS`).
 *
 * Refusals are `E_INVALID_VALUE` (or `E_INVALID_NAME`) naming the variable, never the value.
 */
import { CofferError } from "../../errors.ts";

/** Linux's MAX_ARG_STRLEN: the most bytes one `NAME=value` string (with its NUL) may take in execve. */
const MAX_ENV_STRING = 128 * 1024;

/** Names bash will not take from `source` as given: read-only, or assigned values it replaces or ignores. */
const BASH_RESERVED = new Set([
  "BASHOPTS", "BASHPID", "BASH_ALIASES", "BASH_ARGC", "BASH_ARGV", "BASH_ARGV0", "BASH_CMDS", "BASH_COMMAND", "BASH_LINENO",
  "BASH_REMATCH", "BASH_SOURCE", "BASH_SUBSHELL", "BASH_VERSINFO", "BASH_VERSION", "COMP_WORDBREAKS", "DIRSTACK", "EPOCHREALTIME",
  "EPOCHSECONDS", "EUID", "FUNCNAME", "GROUPS", "HISTCMD", "LINENO", "PPID", "RANDOM", "SECONDS", "SHELLOPTS", "SRANDOM", "UID",
]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A backslash that `"…"` would not keep literally in one of the three readers (or a trailing one). */
const BAD_BACKSLASH = /\\(?:["\\$`nr\n]|$)/;

/** Refuses a name the three readers do not all take as given. */
function checkName(name: string): void {
  if (!NAME.test(name)) {
    throw new CofferError("E_INVALID_NAME", `${JSON.stringify(name)} is not a usable environment variable name: use letters, digits and _, not starting with a digit`);
  }
  if (BASH_RESERVED.has(name)) {
    throw new CofferError("E_INVALID_NAME", `${name} is a variable bash keeps for itself (read-only or rewritten), so bash would not read it from secrets.env; choose another name`);
  }
}

function refuse(name: string, why: string, fix = "deliver it as a file"): never {
  throw new CofferError(
    "E_INVALID_VALUE",
    `${name}: a value with ${why} cannot be written so that bash, dotenv and systemd EnvironmentFile= all read it the same; ${fix}`,
  );
}

/** True for a Unicode noncharacter (U+FDD0–U+FDEF, U+xFFFE, U+xFFFF). */
function hasNoncharacter(value: string): boolean {
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return true;
  }
  return false;
}

/**
 * The one line (without its final `\n`) for `name=value`.
 * @throws CofferError E_INVALID_NAME / E_INVALID_VALUE naming the variable, never the value
 */
function encode(name: string, value: string): string {
  checkName(name);
  if (value.includes("\0")) refuse(name, "a NUL byte (which no environment variable can hold)", "remove it");
  if (value.includes("\r")) refuse(name, "a carriage return (dotenv turns every CR into a line break)");
  if (/[\x01-\x08\x0b-\x1f\x7f]/.test(value)) refuse(name, "a control character other than tab and line break (older systemd versions drop such a value)");
  if (!value.isWellFormed()) refuse(name, "text that is not valid Unicode (systemd requires UTF-8)");
  if (value.includes("\ufeff") || hasNoncharacter(value)) refuse(name, "a U+FEFF or a Unicode noncharacter (systemd refuses them)");
  if (Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1 > MAX_ENV_STRING) {
    refuse(name, "more than 128 KiB (Linux refuses a longer environment variable to a new program)");
  }
  if (value.endsWith("\\")) refuse(name, "a trailing backslash (dotenv reads it as escaping the closing quote)");
  if (!value.includes("'")) return `${name}='${value}'`;
  const clash = ['"', "$", "`"].filter((c) => value.includes(c));
  if (clash.length === 0 && !BAD_BACKSLASH.test(value)) return `${name}="${value}"`;
  const what = clash.length > 0 ? clash.join(" and ") : "a backslash before \", \\, $, `, n, r or a line break";
  refuse(name, `both a single quote and ${what} (single quotes cannot hold a ', and inside double quotes the readers treat ${clash.length > 0 ? "that" : "such a backslash"} differently)`);
}

/**
 * Writes variables as `secrets.env`: `NAME='value'` per variable, or `NAME="value"` for a value
 * with a `'` (see the module comment for the exact rules), each line ending with `\n`.
 * bash (`set -a; source`), dotenv and systemd's `EnvironmentFile=` read back the same values.
 *
 * @throws CofferError `E_INVALID_VALUE` naming the variable (never the value) when a value cannot
 *   be carried identically by all three, `E_INVALID_NAME` for an unusable or repeated name
 */
export function formatSecretsEnv(vars: readonly (readonly [name: string, value: string])[]): string {
  const seen = new Set<string>();
  let out = "";
  for (const [name, value] of vars) {
    if (seen.has(name)) throw new CofferError("E_INVALID_NAME", `${name} is given twice; each variable may appear once in secrets.env`);
    seen.add(name);
    out += `${encode(name, value)}\n`;
  }
  return out;
}

const ENTRY_START = /[A-Za-z_][A-Za-z0-9_]*=/y;

/**
 * Parses a `secrets.env` as {@link formatSecretsEnv} writes it, and nothing else: every entry
 * must be exactly the line coffer would write for its value (so a hand-edited file either means
 * the same to bash, dotenv and systemd, or is refused). Errors name the line, never its text.
 *
 * @param file - how errors name the file
 * @returns the variables in file order
 * @throws CofferError `E_INVALID_VALUE` "FILE line N: …" for anything else
 */
export function parseSecretsEnv(text: string, file = "secrets.env"): [name: string, value: string][] {
  const out: [string, string][] = [];
  const seen = new Set<string>();
  let pos = 0;
  let line = 1;
  const fail: (why: string) => never = (why) => {
    throw new CofferError("E_INVALID_VALUE", `${file} line ${line}: ${why}`);
  };
  while (pos < text.length) {
    ENTRY_START.lastIndex = pos;
    const m = ENTRY_START.exec(text);
    if (m === null) fail("expected NAME='value' or NAME=\"value\" (no blank lines, comments or export)");
    const name = m[0].slice(0, -1);
    const quoteAt = pos + m[0].length;
    const quote = text[quoteAt];
    if (quote !== "'" && quote !== '"') fail(`the value of ${name} must be in '…' or "…"`);
    const close = text.indexOf(quote, quoteAt + 1);
    if (close === -1) fail(`the quote opened for ${name} is never closed`);
    if (text[close + 1] !== "\n") fail(`the value of ${name} must be followed by a line break right after its closing quote`);
    const value = text.slice(quoteAt + 1, close);
    let canonical: string;
    try {
      canonical = encode(name, value);
    } catch (err) {
      if (err instanceof CofferError) fail(err.message);
      throw err;
    }
    if (canonical !== text.slice(pos, close + 1)) fail(`${name} is not written the way coffer writes it (use '…' unless the value holds a ')`);
    if (seen.has(name)) fail(`${name} is set twice`);
    seen.add(name);
    out.push([name, value]);
    for (let i = value.indexOf("\n"); i !== -1; i = value.indexOf("\n", i + 1)) line++;
    line++;
    pos = close + 2;
  }
  return out;
}
