/**
 * Path policies of the server: deny by default. A role is a list of rules; a rule grants
 * capabilities on the names its glob pattern matches. A caller's capabilities on a path are the
 * union over its roles' matching rules; a name no rule matches grants nothing. The built-in role
 * `root` holds every capability on every path, system paths included.
 *
 * Patterns are compiled once, in the {@link Policy} constructor, to a list of segment matchers;
 * matching is a set-of-states walk over the name's segments (no backtracking regular
 * expressions), so its cost is bounded by segments × pattern segments × segment length whatever
 * the input.
 */
import { CofferError } from "../errors.ts";
import { isSecretName } from "../core/names.ts";
import type { Capability, RoleRule } from "./config.ts";

/** The built-in role: every capability on every path, system paths included. It cannot be redefined. */
export const ROOT_ROLE = "root";

/** The server's own resources. A rule reaches them only by naming them exactly. */
export const SYSTEM_PATHS = ["sys:tokens", "sys:audit", "sys:metrics"] as const;

/** One of {@link SYSTEM_PATHS}. */
export type SystemPath = (typeof SYSTEM_PATHS)[number];

const ALL_CAPABILITIES: readonly Capability[] = ["read", "list", "write", "delete"];
const SYSTEM_PATH_SET: ReadonlySet<string> = new Set(SYSTEM_PATHS);
/** A pattern segment: the characters of a name segment, plus `*`. */
const PATTERN_SEGMENT_RE = /^[A-Za-z0-9_.\-*]+$/;
const PATTERN_MAX = 256;

const PATTERN_RULE =
  "a pattern is a system path (sys:tokens, sys:audit, sys:metrics) or '/'-separated segments of letters, " +
  "digits, '_', '.', '-' and '*', where '*' is one whole segment, '**' (a whole segment) is any number of " +
  "segments and '*' inside a segment stays within it (e.g. app/*, app/**, db/api-*/password)";

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

/** A compiled pattern: a system path compared exactly, or segment elements. */
type Compiled =
  | { readonly kind: "system"; readonly path: string }
  | { readonly kind: "segments"; readonly elements: readonly Element[] };

/** Thrown for a malformed pattern; names the rule, never more than the pattern itself. */
function badPattern(pattern: string, why: string, where?: string): CofferError {
  const shown = JSON.stringify(pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern);
  return new CofferError("E_CONFIG", `invalid policy pattern ${shown}${where ?? ""}: ${why}; ${PATTERN_RULE}`);
}

/**
 * Compiles a pattern. A trailing `/**` becomes "one segment, then zero or more", so that `app/**`
 * covers what is below `app` but not `app` itself.
 */
function compile(pattern: string, where?: string): Compiled {
  if (typeof pattern !== "string" || pattern.length === 0) {
    throw badPattern(String(pattern), "empty", where);
  }
  if (pattern.length > PATTERN_MAX) {
    throw badPattern(pattern, `longer than ${PATTERN_MAX} characters`, where);
  }
  if (pattern.startsWith("sys:")) {
    if (!SYSTEM_PATH_SET.has(pattern)) throw badPattern(pattern, "not a known system path", where);
    return { kind: "system", path: pattern };
  }
  const segments = pattern.split("/");
  const elements: Element[] = [];
  for (const [i, seg] of segments.entries()) {
    if (!PATTERN_SEGMENT_RE.test(seg)) throw badPattern(pattern, "empty segment or a character outside the rule", where);
    if (seg === "**") {
      const trailing = i === segments.length - 1 && segments.length > 1;
      if (trailing) elements.push({ kind: "any" });
      // Consecutive "**" are one "**": keeps the state set small.
      if (elements.at(-1)?.kind !== "many") elements.push({ kind: "many" });
    } else if (seg.includes("**")) {
      throw badPattern(pattern, "'**' must be a whole segment", where);
    } else if (seg === "*") {
      elements.push({ kind: "any" });
    } else if (seg.includes("*")) {
      elements.push({ kind: "glob", text: seg });
    } else {
      if (!/^[A-Za-z0-9]/.test(seg) || seg.includes("..")) {
        throw badPattern(pattern, "a literal segment starts with a letter or digit and has no '..'", where);
      }
      elements.push({ kind: "literal", text: seg });
    }
  }
  return { kind: "segments", elements };
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

function matchCompiled(compiled: Compiled, path: string): boolean {
  if (compiled.kind === "system") return compiled.path === path;
  // System paths match only a rule that names them; invalid names match nothing.
  if (!isSecretName(path)) return false;
  const { elements } = compiled;
  return walk(elements, path.split("/")).has(elements.length);
}

/** Could `compiled` match some secret name starting with `prefix`? Exact up to name validity. */
function mayMatchPrefix(compiled: Compiled, prefix: string): boolean {
  if (compiled.kind === "system") return false;
  const { elements } = compiled;
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

/**
 * Does glob `pattern` match `path`?
 *
 * - Patterns and names are split on `/`. A `*` segment matches exactly one whole segment;
 *   `*` inside a segment (`api-*`) matches characters within that segment, never a `/`.
 * - `**` (a whole segment) matches zero or more segments: `a/**\/b` matches `a/b` and `a/x/y/b`,
 *   `**\/x` matches `x`, and `**` alone matches every name.
 * - Except at the end: a trailing `/**` matches one or more segments, so `app/**` matches
 *   `app/db` and `app/db/x/y` but not `app` itself (unlike Vault's `app/*`, which grants on the
 *   bare name too; write `app` as a second rule to include it).
 * - System paths (`sys:…`) match only themselves: no glob ever matches a system path and a
 *   system-path pattern never matches a secret name.
 * - A `path` that is neither a valid secret name nor a system path matches nothing.
 *
 * @param pattern - a policy pattern
 * @param path - a secret name or a system path
 * @returns true when the pattern matches the whole path
 * @throws CofferError E_CONFIG when the pattern breaks the pattern rule
 * @example
 * matchPath("app/*", "app/db");       // true
 * matchPath("app/**", "app");         // false
 * matchPath("**", "sys:tokens");      // false
 */
export function matchPath(pattern: string, path: string): boolean {
  return matchCompiled(compile(pattern), path);
}

/** A rule with its pattern compiled. */
interface CompiledRule {
  readonly pattern: Compiled;
  readonly capabilities: readonly Capability[];
}

/**
 * The server's role policies, compiled once. Deny by default: a capability is granted only by a
 * rule whose pattern matches the path, in one of the caller's roles.
 *
 * @example
 * const policy = new Policy({ app: [{ path: "app/**", capabilities: ["read", "list"] }] });
 * policy.allows(["app"], "read", "app/db/password"); // true
 * policy.allows(["app"], "write", "app/db/password"); // false
 */
export class Policy {
  readonly #roles = new Map<string, readonly CompiledRule[]>();

  /**
   * @param roles - role name → rules; `root` is built in and cannot be defined here
   * @throws CofferError E_CONFIG naming the role and the rule a pattern or capability breaks
   */
  constructor(roles: Record<string, readonly RoleRule[]>) {
    for (const [role, rules] of Object.entries(roles)) {
      if (role === ROOT_ROLE) {
        throw new CofferError("E_CONFIG", `role "${ROOT_ROLE}" is built in (every capability on every path) and cannot be redefined`);
      }
      if (role.length === 0) throw new CofferError("E_CONFIG", "a role name is empty");
      const compiled: CompiledRule[] = [];
      for (const [i, rule] of rules.entries()) {
        const where = ` (role ${JSON.stringify(role)}, rule ${i + 1})`;
        const capabilities = [...new Set(rule.capabilities)];
        for (const cap of capabilities) {
          if (!ALL_CAPABILITIES.includes(cap)) {
            throw new CofferError(
              "E_CONFIG",
              `unknown capability ${JSON.stringify(String(cap))}${where}: capabilities are ${ALL_CAPABILITIES.join(", ")}`,
            );
          }
        }
        compiled.push({ pattern: compile(rule.path, where), capabilities });
      }
      this.#roles.set(role, compiled);
    }
  }

  /**
   * The union of capabilities that the given roles' matching rules grant on `path`. Unknown role
   * names grant nothing; `root` grants every capability on any valid name or system path. A path
   * that is neither grants nothing, whatever the roles.
   * @param roles - the caller's role names
   * @param path - a secret name or a system path
   * @returns a new set the caller may keep
   */
  capabilities(roles: readonly string[], path: string): Set<Capability> {
    const granted = new Set<Capability>();
    if (!isSecretName(path) && !SYSTEM_PATH_SET.has(path)) return granted;
    for (const role of roles) {
      if (role === ROOT_ROLE) return new Set(ALL_CAPABILITIES);
      for (const rule of this.#roles.get(role) ?? []) {
        if (rule.capabilities.every((c) => granted.has(c))) continue;
        if (matchCompiled(rule.pattern, path)) for (const c of rule.capabilities) granted.add(c);
      }
    }
    return granted;
  }

  /**
   * Do the given roles hold `capability` on `path`?
   * @param roles - the caller's role names
   * @param capability - what the caller wants to do
   * @param path - a secret name or a system path
   */
  allows(roles: readonly string[], capability: Capability, path: string): boolean {
    return this.capabilities(roles, path).has(capability);
  }

  /**
   * Could some secret name starting with `prefix` be listable by the given roles? Lets a listing
   * skip the scan when no rule could match. Never false when a matching listable name exists;
   * it may be true when none does (a caller still checks each name with {@link allows}).
   * @param roles - the caller's role names
   * @param prefix - the listing's name prefix; "" for all names
   */
  mayList(roles: readonly string[], prefix: string): boolean {
    for (const role of roles) {
      if (role === ROOT_ROLE) return true;
      for (const rule of this.#roles.get(role) ?? []) {
        if (rule.capabilities.includes("list") && mayMatchPrefix(rule.pattern, prefix)) return true;
      }
    }
    return false;
  }

  /** The role names this policy defines (never `root`, which is built in). */
  get roleNames(): string[] {
    return [...this.#roles.keys()];
  }
}
