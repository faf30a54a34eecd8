/**
 * The one duration grammar of coffer (docs/design.md §2): a whole number followed by one unit,
 * `ms`, `s`, `m`, `h`, `d` or `w` (`500ms`, `30s`, `12h`, `90d`, `2w`), in lower case, with
 * nothing around it. A bare number is not a duration: `30` could mean seconds or milliseconds,
 * so the unit is always written (the server's token `ttl` also takes a JSON number of seconds,
 * which is a number, not this text). Every flag and key that takes a duration parses it here;
 * each caller keeps its own bounds and its own error wording.
 *
 * Callers that keep whole seconds (`--rotate-every`, `--expires`, a token `ttl`) round down to
 * whole seconds and ask for at least 1s.
 */
import { CofferError, show, type ErrorCode } from "../errors.ts";

/** The grammar in words. */
export const DURATION_GRAMMAR = "a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w";
/** The rule a malformed duration broke, for error messages. */
export const DURATION_RULE = `must be a duration: ${DURATION_GRAMMAR}`;

/** Milliseconds per unit, largest first (formatDuration picks the first that divides). */
const UNITS = [["w", 604_800_000], ["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]] as const;
const UNIT_MS: Readonly<Record<string, number>> = Object.fromEntries(UNITS);

// 16 digits already exceed Number.MAX_SAFE_INTEGER (9 007 199 254 740 991): no longer text can be valid.
const DURATION_RE = /^([0-9]{1,16})(ms|s|m|h|d|w)$/;

/**
 * Parses a duration (the grammar above).
 * @example parseDuration("2w") // 1209600000
 * @returns milliseconds, or undefined when `text` is not a duration or is more than
 *   Number.MAX_SAFE_INTEGER milliseconds
 */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const ms = n * (UNIT_MS[m[2] as string] as number);
  return Number.isSafeInteger(n) && Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * Writes milliseconds in the largest unit that holds them exactly, so that
 * `parseDuration(formatDuration(ms)) === ms`.
 * @example formatDuration(86_400_000) // "1d"
 */
export function formatDuration(ms: number): string {
  for (const [unit, size] of UNITS) if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** Bounds of a duration, in milliseconds, both included. */
export interface DurationBounds {
  min?: number;
  max?: number;
}

/**
 * Checks a duration against the grammar and `bounds`.
 * @returns `{ ok: ms }`, or `{ rule }`: the broken rule in words ("must be a duration: …" or
 *   "must be between 100ms and 1h"), for the caller to put in its own message
 */
export function checkDuration(text: string, bounds: DurationBounds = {}): { ok: number } | { rule: string } {
  const ms = parseDuration(text);
  if (ms === undefined) return { rule: DURATION_RULE };
  const { min, max } = bounds;
  if ((min !== undefined && ms < min) || (max !== undefined && ms > max)) {
    if (min !== undefined && max !== undefined) return { rule: `must be between ${formatDuration(min)} and ${formatDuration(max)}` };
    return { rule: min !== undefined ? `must be at least ${formatDuration(min)}` : `must be at most ${formatDuration(max as number)}` };
  }
  return { ok: ms };
}

/**
 * Parses a duration given for `what` (a flag such as `--restart-grace`, or a key).
 * @example requireDuration("500ms", "--restart-grace", { min: 1 }) // 500
 * @returns milliseconds
 * @throws CofferError `code` (default E_INVALID_VALUE): `invalid WHAT "TEXT": RULE`
 */
export function requireDuration(text: string, what: string, bounds: DurationBounds = {}, code: ErrorCode = "E_INVALID_VALUE"): number {
  const r = checkDuration(text, bounds);
  if ("ok" in r) return r.ok;
  throw new CofferError(code, `invalid ${what} ${show(text, 40)}: ${r.rule}`);
}
