/**
 * Path policies of the server (docs/design.md §7): deny by default; a caller's capabilities on a
 * path are the union over its roles' matching rules, and the built-in role `root` holds them all.
 * Patterns are src/core/patterns.ts's, plus the system paths, which a rule reaches only by naming
 * them; they are compiled once, in the {@link Policy} constructor: no request compiles anything.
 *
 * Three kinds of path, kept apart: secret names (`app/db`), system paths (`sys:tokens`, exact),
 * and runbooks (`runbook:NAME`, issue 13). A `runbook:` rule holds a pattern over one-segment
 * runbook names (`runbook:*`, `runbook:cdn-*`) and matches only runbook paths; a secret-name
 * pattern never matches a runbook or system path. Capabilities belong to a kind: `read`, `list`,
 * `write`, `delete` on secrets and system paths, `purge` (destroy every version) on secrets only;
 * `read`, `run`, `approve` on runbooks. A rule granting one on the wrong kind is refused at load
 * ({@link capabilityProblem}). No capability implies another: `delete` (hide, history kept) never
 * grants `purge`, so no existing role gains the power to destroy history.
 */
import { CofferError } from "../errors.ts";
import { isSecretName } from "../core/names.ts";
import { compilePattern, patternContains, patternProblem, PATTERN_RULE as NAME_PATTERN_RULE, segmentContains, type Pattern } from "../core/patterns.ts";
import type { Capability, RoleRule } from "./config.ts";

/** The built-in role: every capability on every path, system paths included. It cannot be redefined. */
export const ROOT_ROLE = "root";

/** The server's own resources. A rule reaches them only by naming them exactly. */
export const SYSTEM_PATHS = ["sys:tokens", "sys:audit", "sys:metrics", "sys:roles"] as const;

/** The prefix of a runbook's policy path: `runbook:NAME`. */
export const RUNBOOK_PATH_PREFIX = "runbook:";

/** The capabilities a rule may grant. */
export const CAPABILITIES: readonly Capability[] = ["read", "list", "write", "delete", "purge", "rotate", "run", "approve"];
/**
 * What a rule may grant on secret names: also `purge`, to destroy every version (never implied by
 * `delete`), and `rotate`, to set a secret's rotation policy and rotate it (docs/design.md §12).
 */
export const SECRET_CAPABILITIES: readonly Capability[] = ["read", "list", "write", "delete", "purge", "rotate"];
/** What a rule may grant on system paths. */
export const SYSTEM_CAPABILITIES: readonly Capability[] = ["read", "list", "write", "delete"];
/** What a rule may grant on runbooks: see it (and its history), run it, approve its executions. */
export const RUNBOOK_CAPABILITIES: readonly Capability[] = ["read", "run", "approve"];
const SYSTEM_PATH_SET: ReadonlySet<string> = new Set(SYSTEM_PATHS);
const PATTERN_RULE =
  `a pattern is a system path (${SYSTEM_PATHS.join(", ")}), runbook:NAME (NAME a glob over runbook names: runbook:*, runbook:cdn-*) ` +
  `or ${NAME_PATTERN_RULE}`;

/** A compiled pattern: a system path compared exactly, a pattern over secret names, or one over runbook names. */
type Compiled =
  | { readonly kind: "system"; readonly path: string }
  | { readonly kind: "names"; readonly pattern: Pattern }
  | { readonly kind: "runbook"; readonly pattern: Pattern };

/** Whether `path` is a runbook's policy path: `runbook:` and a one-segment secret name. */
export function isRunbookPath(path: string): boolean {
  if (!path.startsWith(RUNBOOK_PATH_PREFIX)) return false;
  const name = path.slice(RUNBOOK_PATH_PREFIX.length);
  return isSecretName(name) && !name.includes("/");
}

/** The kind of a policy path, or undefined when it is none (and so matches nothing). */
function kindOf(path: string): "names" | "system" | "runbook" | undefined {
  if (SYSTEM_PATH_SET.has(path)) return "system";
  if (isRunbookPath(path)) return "runbook";
  return isSecretName(path) ? "names" : undefined;
}

/**
 * Why `pattern` is not a policy pattern (a known system path, `runbook:` and a one-segment
 * pattern, or a pattern of src/core/patterns.ts), or undefined when it is one. Server config
 * checks rule paths with this at load.
 */
export function policyPatternProblem(pattern: string): string | undefined {
  if (pattern.startsWith("sys:")) return SYSTEM_PATH_SET.has(pattern) ? undefined : "not a known system path";
  if (pattern.startsWith(RUNBOOK_PATH_PREFIX)) {
    const rest = pattern.slice(RUNBOOK_PATH_PREFIX.length);
    if (rest.includes("/")) return "a runbook pattern is one segment: runbook names have no '/'";
    if (rest.includes("**")) return "a runbook pattern is one segment: use runbook:* for every runbook";
    const why = patternProblem(rest);
    return why === undefined ? undefined : `runbook pattern ${why}`;
  }
  return patternProblem(pattern);
}

/**
 * Why a rule on `pattern` may not grant `capability`, or undefined when it may: `run` and
 * `approve` apply only to runbooks, `list`, `write` and `delete` never to them, `purge` only to
 * secret names.
 */
export function capabilityProblem(pattern: string, capability: string): string | undefined {
  if (!CAPABILITIES.includes(capability as Capability)) return `unknown capability ${JSON.stringify(capability)}: capabilities are ${CAPABILITIES.join(", ")}`;
  const cap = capability as Capability;
  if (pattern.startsWith(RUNBOOK_PATH_PREFIX)) {
    return RUNBOOK_CAPABILITIES.includes(cap) ? undefined : `${capability} does not apply to runbooks; a runbook: rule grants ${RUNBOOK_CAPABILITIES.join(", ")}`;
  }
  if (RUNBOOK_CAPABILITIES.includes(cap) && !SECRET_CAPABILITIES.includes(cap)) {
    return `${capability} applies only to runbooks (runbook:NAME); secret names take ${SECRET_CAPABILITIES.join(", ")}; system paths ${SYSTEM_CAPABILITIES.join(", ")}`;
  }
  if (pattern.startsWith("sys:") && !SYSTEM_CAPABILITIES.includes(cap)) {
    return `${capability} applies only to secret names; system paths take ${SYSTEM_CAPABILITIES.join(", ")}`;
  }
  return undefined;
}

/**
 * Does policy pattern `outer` cover every path policy pattern `inner` covers, shown segment by
 * segment (src/core/patterns.ts patternContains)? A system path is covered only by itself; a
 * `runbook:` pattern only by a `runbook:` pattern whose one segment contains it; a secret-name
 * pattern only by a secret-name pattern. False whenever it cannot be shown (the roles API then
 * refuses: it never lets a caller grant what it does not hold).
 */
export function policyPatternContains(outer: string, inner: string): boolean {
  if (policyPatternProblem(outer) !== undefined || policyPatternProblem(inner) !== undefined) return false;
  if (inner.startsWith("sys:") || outer.startsWith("sys:")) return outer === inner;
  const rb = RUNBOOK_PATH_PREFIX;
  if (inner.startsWith(rb) || outer.startsWith(rb)) {
    return inner.startsWith(rb) && outer.startsWith(rb) && segmentContains(outer.slice(rb.length), inner.slice(rb.length));
  }
  return patternContains(outer, inner);
}

/** Compiles a pattern once; the policy keeps the result, so no request compiles anything. */
function compile(pattern: string, where?: string): Compiled {
  const why = policyPatternProblem(pattern);
  if (why !== undefined) {
    const shown = JSON.stringify(pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern);
    throw new CofferError("E_CONFIG", `invalid policy pattern ${shown}${where ?? ""}: ${why}; ${PATTERN_RULE}`);
  }
  if (pattern.startsWith("sys:")) return { kind: "system", path: pattern };
  if (pattern.startsWith(RUNBOOK_PATH_PREFIX)) return { kind: "runbook", pattern: compilePattern(pattern.slice(RUNBOOK_PATH_PREFIX.length)) };
  return { kind: "names", pattern: compilePattern(pattern) };
}

function matchCompiled(compiled: Compiled, path: string): boolean {
  // System paths match only a rule that names them; a name pattern never matches one, nor a
  // runbook path; a runbook pattern matches only runbook paths.
  switch (compiled.kind) {
    case "system":
      return compiled.path === path;
    case "runbook":
      return isRunbookPath(path) && compiled.pattern.matches(path.slice(RUNBOOK_PATH_PREFIX.length));
    case "names":
      return isSecretName(path) && compiled.pattern.matches(path);
  }
}

/** Could `compiled` match some secret name starting with `prefix`? Exact up to name validity. */
function mayMatchPrefix(compiled: Compiled, prefix: string): boolean {
  // Only secret names are listed by prefix: runbook and system rules never make a listing scan.
  return compiled.kind === "names" && compiled.pattern.mayMatchPrefix(prefix);
}

/**
 * Does policy `pattern` match the whole `path` (a secret name, a system path or a runbook path)?
 * The glob language is src/core/patterns.ts's; a system path matches only itself, a runbook
 * pattern only runbook paths, and a path that is none of these matches nothing.
 * @throws CofferError E_CONFIG when the pattern breaks the pattern rule
 */
export function matchPath(pattern: string, path: string): boolean {
  return matchCompiled(compile(pattern), path);
}

/** The most distinct role sets whose joined rules a policy keeps. */
const MAX_ROLE_SETS = 1024;

/** A rule with its pattern compiled. */
interface CompiledRule {
  readonly pattern: Compiled;
  readonly capabilities: readonly Capability[];
}

/**
 * The server's role policies, compiled once. Deny by default: a capability is granted only by a
 * rule whose pattern matches the path, in one of the caller's roles.
 */
export class Policy {
  readonly #roles = new Map<string, readonly CompiledRule[]>();
  readonly #sources = new Map<string, readonly RoleRule[]>();
  readonly #sets = new Map<string, readonly CompiledRule[] | typeof ROOT_ROLE>();

  /** @throws CofferError E_CONFIG naming the role and the rule a pattern or capability breaks (or a role named root) */
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
          if (!CAPABILITIES.includes(cap)) {
            throw new CofferError(
              "E_CONFIG",
              `unknown capability ${JSON.stringify(String(cap))}${where}: capabilities are ${CAPABILITIES.join(", ")}`,
            );
          }
          const why = capabilityProblem(rule.path, cap);
          if (why !== undefined) throw new CofferError("E_CONFIG", `rule path ${JSON.stringify(rule.path)}${where}: ${why}`);
        }
        compiled.push({ pattern: compile(rule.path, where), capabilities });
      }
      this.#roles.set(role, compiled);
      this.#sources.set(role, rules.map((r) => ({ path: r.path, capabilities: [...r.capabilities] })));
    }
  }

  /** The rules of `role` as written, or undefined when this policy does not define it (nor for `root`). */
  rulesOf(role: string): readonly RoleRule[] | undefined {
    return this.#sources.get(role);
  }

  /**
   * The union of capabilities that the given roles' matching rules grant on `path`. Unknown role
   * names grant nothing; `root` grants every capability of the path's kind (read, list, write,
   * delete and purge on a secret name; read, list, write, delete on a system path; read, run,
   * approve on a runbook path). A path that
   * is none of these grants nothing, whatever the roles. A new set the caller may keep.
   */
  capabilities(roles: readonly string[], path: string): Set<Capability> {
    const granted = new Set<Capability>();
    const kind = kindOf(path);
    if (kind === undefined) return granted;
    const rules = this.#rulesOf(roles);
    if (rules === ROOT_ROLE) return new Set(kind === "runbook" ? RUNBOOK_CAPABILITIES : kind === "system" ? SYSTEM_CAPABILITIES : SECRET_CAPABILITIES);
    for (const rule of rules) {
      if (rule.capabilities.every((c) => granted.has(c))) continue;
      if (matchCompiled(rule.pattern, path)) for (const c of rule.capabilities) granted.add(c);
    }
    return granted;
  }

  /**
   * Do the given roles hold `capability` on `path` (a secret name, a system path or
   * `runbook:NAME`)? `root` holds everything on a valid path; a path of no kind is refused.
   */
  allows(roles: readonly string[], capability: Capability, path: string): boolean {
    if (kindOf(path) === undefined) return false;
    const rules = this.#rulesOf(roles);
    return rules === ROOT_ROLE || rules.some((rule) => rule.capabilities.includes(capability) && matchCompiled(rule.pattern, path));
  }

  /**
   * Could some secret name starting with `prefix` be listable by the given roles? Lets a listing
   * skip the scan when no rule could match. Never false when a matching listable name exists;
   * it may be true when none does (a caller still checks each name with {@link allows}).
   */
  mayList(roles: readonly string[], prefix: string): boolean {
    const rules = this.#rulesOf(roles);
    return rules === ROOT_ROLE || rules.some((rule) => rule.capabilities.includes("list") && mayMatchPrefix(rule.pattern, prefix));
  }

  /**
   * The rules of a set of roles, joined once per distinct set (a request looks them up, never
   * joins them); `root` when the set holds root. Unknown roles add nothing.
   */
  #rulesOf(roles: readonly string[]): readonly CompiledRule[] | typeof ROOT_ROLE {
    const key = JSON.stringify(roles); // unambiguous, whatever a JWT claim's role names hold
    let rules = this.#sets.get(key);
    if (rules === undefined) {
      rules = roles.includes(ROOT_ROLE) ? ROOT_ROLE : roles.flatMap((role) => this.#roles.get(role) ?? []);
      // Role sets come from tokens and JWT claims: a bounded cache, emptied when full.
      if (this.#sets.size >= MAX_ROLE_SETS) this.#sets.clear();
      this.#sets.set(key, rules);
    }
    return rules;
  }

  /** The role names this policy defines (never `root`, which is built in). */
  get roleNames(): string[] {
    return [...this.#roles.keys()];
  }
}
