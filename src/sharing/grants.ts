/**
 * Grant patterns: which secret names a member is granted. They are the one pattern language of
 * src/core/patterns.ts, the same as the server's policies: `*` is one segment, `**` zero or more
 * (a trailing `/**` at least one), e.g. `app/*`, `app/**`, `a/**\/b`, `**`.
 */
import { matchesAny } from "../core/patterns.ts";

export { assertPattern, matchesAny } from "../core/patterns.ts";

/**
 * The names among `names` that any of `patterns` match, in the order given. A stored pattern
 * that breaks today's rule matches nothing.
 */
export function selectGranted(names: readonly string[], patterns: readonly string[]): string[] {
  return names.filter((n) => matchesAny(n, patterns));
}
