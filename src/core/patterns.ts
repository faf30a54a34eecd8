/**
 * The one pattern language over secret names, used by member grants and server policies alike
 * (docs/design.md §7). Patterns and names are split on `/`:
 *
 * - a `*` segment matches exactly one whole segment; `*` inside a segment (`api-*`) matches
 *   characters within that segment, never a `/`;
 * - a `**` segment matches zero or more whole segments: `a/**\/b` matches `a/b` and `a/x/y/b`,
 *   `**\/x` matches `x`, and `**` alone matches every name;
 * - except at the end: a trailing `/**` matches one or more segments, so `app/**` matches
 *   `app/db` and `app/db/x` but not `app` itself;
 * - anything else matches itself; a name that is not a valid secret name matches nothing.
 *
 * A pattern is compiled once to a list of segment elements; matching is a set-of-states walk over
 * the name's segments (no backtracking regular expressions), so its cost is bounded by
 * segments × pattern segments × segment length whatever the input. System paths (`sys:…`) are
 * the server policy's business: no pattern here ever matches one.
 */
import { show, ValidationError } from "../errors.ts";
import { isSecretName } from "./names.ts";

/** The longest pattern, in characters. */
export const PATTERN_MAX = 256;

/** The rule, for error messages: what a pattern is. */
export const PATTERN_RULE =
  "'/'-separated segments of letters, digits, '_', '.', '-' and '*', where '*' is one whole segment, '**' (a whole " +
  "segment) is any number of segments (a trailing '/**' at least one) and '*' inside a segment stays within it " +
  "(e.g. app/*, app/**, db/api-*/password)";

const SEGMENT_RE = /^[A-Za-z0-9_.\-*]+$/;

/** One element of a compiled pattern. */
type Element =
  /** Zero or more whole segments. */
  | { readonly kind: "many" }
  /** Exactly one segment, whatever it is. */
  | { readonly kind: "any" }
  /** Exactly one segment, equal to `text`. */
  | { readonly kind: "literal"; readonly text: string }
  /** Exactly one segment matching a glob whose `*` stays within the segment. */
  | { readonly kind: "glob"; readonly text: string };

/** A compiled pattern. Build one with {@link compilePattern}. */
export interface Pattern {
  /** the pattern as written */
  readonly source: string;
  /** Does the pattern match the whole of `name`? False for anything not a valid secret name. */
  matches(name: string): boolean;
  /**
   * Could the pattern match some secret name starting with `prefix`? Never false when such a
   * name exists; may be true when none does.
   */
  mayMatchPrefix(prefix: string): boolean;
}

/**
 * Why `pattern` breaks the pattern rule, or undefined when it keeps it. The reason names the
 * offending segment; callers add their own context and {@link PATTERN_RULE}.
 * @example patternProblem("a/**b") // `segment "**b": '**' must be a whole segment`
 */
export function patternProblem(pattern: unknown): string | undefined {
  if (typeof pattern !== "string") return "not a string";
  if (pattern.length === 0) return "empty";
  if (pattern.length > PATTERN_MAX) return `longer than ${PATTERN_MAX} characters`;
  if (pattern.includes("..")) return "'..' is not allowed";
  for (const seg of pattern.split("/")) {
    if (seg === "") return "empty segment (a leading, trailing or double '/')";
    if (!SEGMENT_RE.test(seg)) return `segment ${show(seg)} has a character outside the rule`;
    if (seg === "*" || seg === "**") continue;
    if (seg.includes("**")) return `segment ${show(seg)}: '**' must be a whole segment`;
    if (!seg.includes("*") && !/^[A-Za-z0-9]/.test(seg)) return `segment ${show(seg)} must start with a letter or digit`;
  }
  return undefined;
}

/**
 * Checks a pattern.
 * @throws ValidationError E_INVALID_NAME naming the reason and the rule
 */
export function assertPattern(pattern: unknown): asserts pattern is string {
  const why = patternProblem(pattern);
  if (why !== undefined) {
    throw new ValidationError("E_INVALID_NAME", `invalid pattern ${show(String(pattern))}: ${why}; patterns are ${PATTERN_RULE}`);
  }
}

/** Compiled patterns by source: grants are matched again and again, so each compiles once. */
const cache = new Map<string, Pattern>();
const CACHE_MAX = 4096;

/**
 * Compiles a pattern (or returns the one compiled before).
 * @throws ValidationError E_INVALID_NAME when the pattern breaks the rule
 * @example compilePattern("a/**\/b").matches("a/b") // true
 */
export function compilePattern(pattern: string): Pattern {
  const cached = cache.get(pattern);
  if (cached !== undefined) return cached;
  assertPattern(pattern);
  const compiled = build(pattern);
  // Patterns come from config and grants, a small set; the bound only stops a flood of distinct ones.
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(pattern, compiled);
  return compiled;
}

/** Does `name` match any of `patterns`? A pattern that breaks the rule matches nothing. */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => {
    const compiled = cache.get(p) ?? (patternProblem(p) === undefined ? compilePattern(p) : undefined);
    return compiled?.matches(name) === true;
  });
}

/**
 * Does pattern `outer` match every name `inner` matches (outer ⊇ inner), shown segment by
 * segment? `**` contains any run of segments (a `**` of `inner` too); `*` contains one segment
 * that is a literal, a `*` or a partial glob (`api-*`), never a `**`; a trailing `/**` contains
 * any run that is at least one segment long; a literal contains itself; a partial glob contains
 * itself and the literals it matches. Sound, not complete: when containment cannot be shown this
 * way it answers false, and a caller refuses. Either pattern breaking the rule gives false.
 * Cost: outer elements × inner elements, whatever the patterns.
 * @example patternContains("app/*", "app/x") // true
 * @example patternContains("app/*", "app/**") // false
 */
export function patternContains(outer: string, inner: string): boolean {
  if (patternProblem(outer) !== undefined || patternProblem(inner) !== undefined) return false;
  return elementsContain(elementsOf(outer), elementsOf(inner));
}

/**
 * Does the one-segment pattern `outer` contain the one-segment pattern `inner`? (`*` ⊇ any
 * segment but `**`; a literal ⊇ itself; a partial glob ⊇ itself and the literals it matches.)
 * For patterns over one-segment names, such as runbook names. False when either is not one
 * valid segment or is `**`.
 */
export function segmentContains(outer: string, inner: string): boolean {
  if (outer.includes("/") || inner.includes("/") || outer === "**" || inner === "**") return false;
  if (patternProblem(outer) !== undefined || patternProblem(inner) !== undefined) return false;
  return elementsContain(elementsOf(outer), elementsOf(inner));
}

function elementContains(o: Element, n: Element): boolean {
  if (n.kind === "many") return false;
  switch (o.kind) {
    case "many":
    case "any":
      return true;
    case "literal":
      return n.kind === "literal" && n.text === o.text;
    case "glob":
      return (n.kind === "glob" && n.text === o.text) || (n.kind === "literal" && globMatch(o.text, n.text));
  }
}

function elementsContain(outer: readonly Element[], inner: readonly Element[]): boolean {
  const memo = new Map<number, boolean>();
  const width = inner.length + 1;
  const go = (i: number, j: number): boolean => {
    const key = i * width + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    const o = outer[i];
    if (o === undefined) {
      result = j === inner.length;
    } else if (o.kind === "many") {
      // zero or more segments: it may absorb any run of inner's elements, a "**" of inner's too
      result = false;
      for (let jj = j; jj <= inner.length && !result; jj++) result = go(i + 1, jj);
    } else if (o.kind === "any" && outer[i + 1]?.kind === "many" && i + 2 === outer.length) {
      // a trailing "/**" (one segment, then any): inner's rest must be at least one segment long
      result = inner.slice(j).some((n) => n.kind !== "many");
    } else {
      const n = inner[j];
      result = n !== undefined && elementContains(o, n) && go(i + 1, j + 1);
    }
    memo.set(key, result);
    return result;
  };
  return go(0, 0);
}

function build(source: string): Pattern {
  const elements = elementsOf(source);
  return {
    source,
    matches: (name) => isSecretName(name) && walk(elements, name.split("/")).has(elements.length),
    mayMatchPrefix: (prefix) => mayMatchPrefix(elements, prefix),
  };
}

function elementsOf(source: string): Element[] {
  const segments = source.split("/");
  const elements: Element[] = [];
  for (const [i, seg] of segments.entries()) {
    if (seg === "**") {
      // A trailing "/**" is "one segment, then zero or more": app/** covers what is below app.
      if (i === segments.length - 1 && segments.length > 1) elements.push({ kind: "any" });
      // Consecutive "**" are one "**": keeps the state set small.
      if (elements.at(-1)?.kind !== "many") elements.push({ kind: "many" });
    } else if (seg === "*") {
      elements.push({ kind: "any" });
    } else if (seg.includes("*")) {
      elements.push({ kind: "glob", text: seg });
    } else {
      elements.push({ kind: "literal", text: seg });
    }
  }
  return elements;
}

/**
 * Does `glob` (with `*` for any run of characters) match the whole of `text`? The classic greedy
 * walk that remembers only the last `*`: O(|glob| × |text|) at worst, no exponential backtracking.
 */
function globMatch(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (g < glob.length && glob[g] !== "*" && glob[g] === text[t]) {
      g++;
      t++;
    } else if (g < glob.length && glob[g] === "*") {
      star = g++;
      mark = t;
    } else if (star !== -1) {
      g = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === "*") g++;
  return g === glob.length;
}

/** Could `glob` match some segment that starts with `partial`? */
function globMayStartWith(glob: string, partial: string): boolean {
  const star = glob.indexOf("*");
  if (star === -1) return glob.startsWith(partial);
  // The first `*` can absorb whatever of `partial` follows the literal head, and the other
  // stars can be empty, so the head alone decides.
  const head = glob.slice(0, star);
  return partial.startsWith(head) || head.startsWith(partial);
}

function elementMatches(el: Element, segment: string): boolean {
  switch (el.kind) {
    case "many":
    case "any":
      return true;
    case "literal":
      return el.text === segment;
    case "glob":
      return globMatch(el.text, segment);
  }
}

/** Adds to `states` every state reachable without consuming a segment ("**" may match none). */
function closure(elements: readonly Element[], states: Set<number>): Set<number> {
  for (const i of states) {
    // A Set iterates over members added during iteration, so chains of "**" are followed.
    if (elements[i]?.kind === "many") states.add(i + 1);
  }
  return states;
}

/** The states reached after consuming `segments`, from the start of the pattern. */
function walk(elements: readonly Element[], segments: readonly string[]): Set<number> {
  let states = closure(elements, new Set([0]));
  for (const segment of segments) {
    const next = new Set<number>();
    for (const i of states) {
      const el = elements[i];
      if (el === undefined) continue;
      if (el.kind === "many") next.add(i);
      else if (elementMatches(el, segment)) next.add(i + 1);
    }
    if (next.size === 0) return next;
    states = closure(elements, next);
  }
  return states;
}

function mayMatchPrefix(elements: readonly Element[], prefix: string): boolean {
  const parts = prefix.split("/");
  const partial = parts.pop() ?? "";
  for (const i of walk(elements, parts)) {
    const el = elements[i];
    if (el === undefined) continue;
    if (partial === "" || (el.kind !== "literal" && el.kind !== "glob")) return true;
    if (el.kind === "literal" ? el.text.startsWith(partial) : globMayStartWith(el.text, partial)) return true;
  }
  return false;
}
