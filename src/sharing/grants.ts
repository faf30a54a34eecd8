/**
 * Grant patterns: globs over secret names. `*` matches within one segment, a `**` segment
 * matches one or more whole segments, anything else matches itself: `app/*`, `app/**`,
 * `db/prod/password`, `**` (everything).
 */
import { ValidationError } from "../errors.ts";

const SEGMENT_RE = /^(\*\*|[A-Za-z0-9_.*-]+)$/;

/**
 * Checks a grant pattern.
 * @throws ValidationError E_INVALID_NAME naming the rule
 */
export function assertPattern(pattern: unknown): asserts pattern is string {
  const shown = JSON.stringify(String(pattern).slice(0, 80));
  const rule =
    "patterns are secret names whose segments may hold '*' (within a segment) or be '**' (any depth), e.g. app/*, app/**, db/prod/password";
  if (typeof pattern !== "string" || pattern.length === 0 || pattern.length > 256) {
    throw new ValidationError("E_INVALID_NAME", `invalid pattern ${shown}: ${rule}`);
  }
  const segments = pattern.split("/");
  const ok = segments.every((s) => SEGMENT_RE.test(s) && (s === "**" || !s.includes("**")) && !s.startsWith(".") && s !== "-") &&
    !pattern.includes("..");
  if (!ok) throw new ValidationError("E_INVALID_NAME", `invalid pattern ${shown}: ${rule}`);
}

/** Compiles a (valid) pattern to an anchored regular expression over names. */
export function patternRegExp(pattern: string): RegExp {
  assertPattern(pattern);
  const segments = pattern.split("/");
  let re = "^";
  for (const [i, seg] of segments.entries()) {
    const last = i === segments.length - 1;
    if (seg === "**") {
      // One or more whole segments: "[^/]+(/[^/]+)*", followed by "/" if more pattern follows.
      re += last ? "[^/]+(?:/[^/]+)*" : "(?:[^/]+/)+";
      continue;
    }
    re += seg.split("*").map(escape).join("[^/]*");
    if (!last) re += "/";
  }
  return new RegExp(`${re}$`);
}

/** True when `name` matches any of `patterns`. */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => patternRegExp(p).test(name));
}

function escape(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\-]/g, "\\$&");
}
