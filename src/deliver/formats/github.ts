/**
 * `coffer load --format github`: masks and `$GITHUB_ENV` lines for GitHub Actions.
 */
import { randomBytes } from "node:crypto";
import { CofferError } from "../../errors.ts";
import { refuseNul, type Vars } from "./dotenv.ts";

/** A fresh heredoc delimiter: `ghadelimiter_` and 16 random bytes in hex (as `@actions/core`). */
export function githubDelimiter(): string {
  return `ghadelimiter_${randomBytes(16).toString("hex")}`;
}

/** Escapes workflow-command data as `@actions/core` does, so the runner unescapes it back. */
function escapeCommandData(s: string): string {
  return s.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

/**
 * Writes variables for GitHub Actions.
 *
 * - `stdout`: one `::add-mask::LINE` per line of every value (lines split at `\n`, `\r\n` or
 *   `\r`, as the runner reads its output; empty and blank lines are skipped: the runner
 *   refuses them), with `%` escaped as `%25` so the runner registers the exact text.
 * - `envFile`, to append to `$GITHUB_ENV`: `NAME=value` for a value without `\n` and `\r`;
 *   otherwise `NAME<<DELIM`, the value, `\n`, `DELIM\n`, with a fresh random delimiter that
 *   does not occur in the value. A `\r` always takes the delimited form, so it never ends a
 *   `NAME=value` line; it is carried verbatim by Linux and macOS runners, which split the file
 *   at `\n` only (a Windows runner would read a `\r` just before a line break as part of it).
 *
 * @param delimiter - makes a candidate delimiter; tests inject collisions
 * @throws CofferError `E_INVALID_VALUE` naming the variable when a value holds a NUL byte.
 */
export function formatGithub(vars: Vars, delimiter: () => string = githubDelimiter): { stdout: string; envFile: string } {
  let stdout = "";
  let envFile = "";
  for (const [name, value] of vars) {
    refuseNul(name, value, "a GitHub Actions environment file");
    for (const line of value.split(/\r\n|\r|\n/)) {
      if (line.trim() !== "") stdout += `::add-mask::${escapeCommandData(line)}\n`;
    }
    if (!/[\r\n]/.test(value)) {
      envFile += `${name}=${value}\n`;
      continue;
    }
    let delim = delimiter();
    for (let tries = 1; delim === "" || /[\r\n]/.test(delim) || value.includes(delim); tries++) {
      if (tries >= 100) throw new CofferError("E_INTERNAL", `no usable heredoc delimiter for variable ${name} after 100 tries`);
      delim = delimiter();
    }
    envFile += `${name}<<${delim}\n${value}\n${delim}\n`;
  }
  return { stdout, envFile };
}
