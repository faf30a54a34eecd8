/**
 * The one file-mode rule of coffer, for `.coffer.yml` `files:` entries, `agent.yml` services and
 * `coffer agent --mode`: 3 or 4 octal digits written as a string ("0400", "600"); the owner may
 * read, group and others may not write, and no setuid, setgid or sticky bit. A YAML number is
 * refused (`mode: 0644` is the decimal 644 in YAML 1.2), so a mode is always quoted.
 */

/** The rule as a JSON Schema pattern (`.coffer.yml`'s schema); checkFileMode accepts exactly these. */
export const FILE_MODE_PATTERN = "^0?[4-7][0145][0145]$";

const OCTAL_RE = /^[0-7]{3,4}$/;
const EXAMPLES = '(e.g. "0400" or "0440")';

/**
 * Checks a file mode written as text.
 * @example checkFileMode("0440") // { ok: 0o440 }
 * @returns `{ ok: mode }`, or `{ rule }`: the broken rule in words, for the caller's message
 */
export function checkFileMode(text: string): { ok: number } | { rule: string } {
  if (!OCTAL_RE.test(text)) return { rule: 'must be 3-4 octal digits, e.g. "0400" or "0440"' };
  const mode = parseInt(text, 8);
  const rules: string[] = [];
  if (mode & 0o7000) rules.push("must not set setuid, setgid or sticky bits");
  if (mode & 0o022) rules.push("must not let group or others write");
  if (!(mode & 0o400)) rules.push("must let the owner read");
  if (rules.length > 0) return { rule: `${rules.join(" and ")} ${EXAMPLES}` };
  return { ok: mode };
}

/**
 * The rule broken by a mode written as a YAML number (`source` is how the file wrote it).
 * @example unquotedModeRule("0644") // 'must be a quoted string of 3-4 octal digits, e.g. "0400" (unquoted 0644 is a number)'
 */
export function unquotedModeRule(source: string): string {
  return `must be a quoted string of 3-4 octal digits, e.g. "0400" (unquoted ${source} is a number)`;
}
