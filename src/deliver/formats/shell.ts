/**
 * `coffer load --format shell` and `--format json` (see dotenv.ts for the rule every format keeps).
 */
import { refuseNul, type Vars } from "./dotenv.ts";

/**
 * Writes variables as `export NAME='…'` lines for a POSIX shell (`source file` / `eval`).
 * Single quotes keep every byte literally, line breaks included; a `'` is written `'\''`.
 *
 * @throws CofferError `E_INVALID_VALUE` naming the variable when a value holds a NUL byte.
 */
export function formatShell(vars: Vars): string {
  let out = "";
  for (const [name, value] of vars) {
    refuseNul(name, value, "shell");
    out += `export ${name}='${value.replaceAll("'", "'\\''")}'\n`;
  }
  return out;
}

/**
 * Writes variables as one JSON object, keys in the given order (a later duplicate wins),
 * pretty-printed with 2 spaces and a trailing newline.
 *
 * @throws CofferError `E_INVALID_VALUE` naming the variable when a value holds a NUL byte.
 */
export function formatJson(vars: Vars): string {
  const obj: Record<string, string> = {};
  for (const [name, value] of vars) {
    refuseNul(name, value, "JSON");
    Object.defineProperty(obj, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return `${JSON.stringify(obj, null, 2)}\n`;
}
