/**
 * Sizes in bytes as people write them in config files: a whole number with a binary unit, `B`,
 * `KiB`, `MiB` or `GiB` (`512KiB`, `10MiB`). One grammar, so every size-valued setting reads the
 * same way; units are case-sensitive and binary only (no `MB`: 10^6 or 2^20 would be a guess).
 */

/** The units and their bytes. */
const UNITS: ReadonlyArray<readonly [string, number]> = [
  ["GiB", 1024 ** 3],
  ["MiB", 1024 ** 2],
  ["KiB", 1024],
  ["B", 1],
];
const UNIT_BYTES: Readonly<Record<string, number>> = Object.fromEntries(UNITS);
// 16 digits already exceed Number.MAX_SAFE_INTEGER: no longer text can be valid.
const SIZE_RE = /^([0-9]{1,16})(B|KiB|MiB|GiB)$/;

/** The grammar in words, for messages. */
export const SIZE_RULE = "must be a size: a whole number with a unit B, KiB, MiB or GiB (e.g. 512KiB, 10MiB)";

/**
 * Parses a size (the grammar above).
 * @example parseSize("10MiB") // 10485760
 * @returns bytes, or undefined when `text` is not a size or is beyond Number.MAX_SAFE_INTEGER
 */
export function parseSize(text: string): number | undefined {
  const m = SIZE_RE.exec(text);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const bytes = n * (UNIT_BYTES[m[2] as string] as number);
  return Number.isSafeInteger(n) && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * Writes bytes in the largest unit that holds them exactly: `parseSize(formatSize(b)) === b`.
 * @param gap - between number and unit: "" (default, the config grammar) or " " (for people)
 * @example formatSize(1048576) // "1MiB"; formatSize(1536, " ") // "1536 B"
 */
export function formatSize(bytes: number, gap: "" | " " = ""): string {
  for (const [unit, size] of UNITS) if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${gap}${unit}`;
  return `${bytes}${gap}B`;
}

/** Bounds of a size, in bytes, both included. */
export interface SizeBounds {
  min?: number;
  max?: number;
}

/**
 * Checks a size against the grammar and `bounds`.
 * @returns `{ ok: bytes }`, or `{ rule }`: the broken rule in words, for the caller's message
 */
export function checkSize(text: string, bounds: SizeBounds = {}): { ok: number } | { rule: string } {
  const bytes = parseSize(text);
  if (bytes === undefined) return { rule: SIZE_RULE };
  const { min, max } = bounds;
  if ((min !== undefined && bytes < min) || (max !== undefined && bytes > max)) {
    if (min !== undefined && max !== undefined) return { rule: `must be between ${formatSize(min)} and ${formatSize(max)}` };
    return { rule: min !== undefined ? `must be at least ${formatSize(min)}` : `must be at most ${formatSize(max as number)}` };
  }
  return { ok: bytes };
}
