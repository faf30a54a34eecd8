/**
 * `/v1/roles` (issue 14): the roles of the config file (read-only, `managedBy: "config"`) and
 * those kept in the database (`managedBy: "api"`), guarded by `sys:roles`. A change is audited
 * (`role.write`, `role.delete`), takes effect on this instance at once and on every other
 * within about a second (roles.ts; the change bus only makes it sooner).
 *
 * Never widen: a caller may put a (pattern, capability) into a role only when one of its own
 * rules holds that capability on a pattern that contains it segment by segment
 * (policy.ts policyPatternContains; `root` holds everything). What cannot be shown is refused.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { CofferError } from "../../errors.ts";
import type { StoredRole } from "../../storage/types.ts";
import type { Capability, RoleRule } from "../config.ts";
import { ROLE_NAME_PATTERN } from "../config-schema.ts";
import type { ServerParts } from "../context.ts";
import { capabilityProblem, policyPatternContains, policyPatternProblem, ROOT_ROLE } from "../policy.ts";
import type { ServerRoles } from "../roles.ts";
import {
  ROLE_BODY, ROLE_DELETED_SCHEMA, ROLE_LIST_SCHEMA, ROLE_NAME_PARAMS, ROLE_SCHEMA, type RoleBody, type RoleNameParams,
} from "../schemas.ts";

const ROLE_NAME_RE = new RegExp(ROLE_NAME_PATTERN);

/** A role as the API shows it. */
export interface RoleView {
  name: string;
  rules: { path: string; capabilities: string[] }[];
  managedBy: "config" | "api";
  version: number | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

function configView(name: string, rules: readonly RoleRule[]): RoleView {
  return { name, rules: rules.map((r) => ({ path: r.path, capabilities: [...r.capabilities] })), managedBy: "config", version: null, updatedAt: null, updatedBy: null };
}
function storedView(r: StoredRole): RoleView {
  return { name: r.name, rules: r.rules, managedBy: "api", version: r.version, updatedAt: r.updatedAt, updatedBy: r.updatedBy };
}

/** `/v1/roles`: list, show, put, delete. */
export function roleRoutes(api: FastifyInstance, s: ServerParts): void {
  const roles = s.roles;

  api.get("/v1/roles", {
    schema: { summary: "List roles: the config file's (read-only) and the database's; needs read on sys:roles", response: { 200: ROLE_LIST_SCHEMA } },
  }, async (req) => {
    await req.authorize("read", "sys:roles", "role.list");
    const stored = (await s.storage.listRoles()).filter((r) => !roles.isConfigManaged(r.name));
    const views = [...Object.entries(roles.configRoles).map(([name, rules]) => configView(name, rules)), ...stored.map(storedView)];
    views.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    await req.record("ok", "role.list", { detail: { count: views.length } });
    return { roles: views };
  });

  api.get<{ Params: RoleNameParams }>("/v1/roles/:name", {
    schema: { summary: "Show a role; needs read on sys:roles", params: ROLE_NAME_PARAMS, response: { 200: ROLE_SCHEMA } },
  }, async (req) => {
    await req.authorize("read", "sys:roles", "role.read");
    const name = req.params.name;
    const view = await findRole(s, roles, name);
    await req.record(view === undefined ? "not_found" : "ok", "role.read", { detail: { role: name } });
    if (view === undefined) throw new CofferError("E_NOT_FOUND", `no role ${JSON.stringify(name)}; GET /v1/roles lists them`);
    return view;
  });

  api.put<{ Params: RoleNameParams; Body: RoleBody }>("/v1/roles/:name", {
    schema: {
      summary: "Create or replace a database role's rules; needs write on sys:roles, and grants only what you hold (never widen)",
      params: ROLE_NAME_PARAMS, body: ROLE_BODY, response: { 200: ROLE_SCHEMA },
    },
  }, async (req) => {
    await req.authorize("write", "sys:roles", "role.write");
    const name = checkRoleName(req.params.name);
    refuseConfigRole(roles, name, "changed");
    const rules = checkRules(req.body.rules);
    await refuseWidening(req, s, name, rules);
    const stored = await s.storage.putRole(name, rules, req.caller().subject, req.auditDetail("ok"));
    await roles.refresh();
    void s.changes.publishRolesChanged();
    return storedView(stored);
  });

  api.delete<{ Params: RoleNameParams }>("/v1/roles/:name", {
    schema: { summary: "Delete a database role; needs delete on sys:roles", params: ROLE_NAME_PARAMS, response: { 200: ROLE_DELETED_SCHEMA } },
  }, async (req) => {
    await req.authorize("delete", "sys:roles", "role.delete");
    const name = checkRoleName(req.params.name);
    refuseConfigRole(roles, name, "deleted");
    if (!(await s.storage.deleteRole(name, req.caller().subject, req.auditDetail("ok")))) {
      await req.record("not_found", "role.delete", { detail: { role: name } });
      throw new CofferError("E_NOT_FOUND", `no database role ${JSON.stringify(name)}; GET /v1/roles lists them`);
    }
    await roles.refresh();
    void s.changes.publishRolesChanged();
    return { name, deleted: true };
  });
}

async function findRole(s: ServerParts, roles: ServerRoles, name: string): Promise<RoleView | undefined> {
  const config = Object.hasOwn(roles.configRoles, name) ? roles.configRoles[name] : undefined;
  if (config !== undefined) return configView(name, config);
  if (name === ROOT_ROLE || !ROLE_NAME_RE.test(name)) return undefined;
  const stored = await s.storage.getRole(name);
  return stored === undefined ? undefined : storedView(stored);
}

/** @throws CofferError E_INVALID_VALUE (400) when `name` is no role name */
function checkRoleName(name: string): string {
  if (!ROLE_NAME_RE.test(name) || name.length > 64) {
    throw new CofferError("E_INVALID_VALUE", `invalid role name ${JSON.stringify(name.slice(0, 64))}: lower-case letters, digits, _ and -, starting with a letter, at most 64`);
  }
  return name;
}

/** @throws CofferError E_CONFLICT (409) for `root` and a config role's name */
function refuseConfigRole(roles: ServerRoles, name: string, what: string): void {
  if (name === ROOT_ROLE) throw new CofferError("E_CONFLICT", `role "${ROOT_ROLE}" is built in and cannot be ${what}`);
  if (roles.isConfigManaged(name)) {
    throw new CofferError("E_CONFLICT", `role "${name}" is managed by the config file (roles:) and cannot be ${what} through the API; edit the config, or use another name`);
  }
}

/**
 * The rules as the config's are checked: each path a policy pattern, each capability one that
 * applies to its kind of path.
 * @throws CofferError E_INVALID_VALUE (400) naming the rule and what is wrong
 */
function checkRules(rules: RoleBody["rules"]): RoleRule[] {
  return rules.map((rule, i) => {
    const where = `rule ${i + 1} (${JSON.stringify(rule.path.slice(0, 80))})`;
    const why = policyPatternProblem(rule.path);
    if (why !== undefined) throw new CofferError("E_INVALID_VALUE", `${where}: invalid path: ${why}`);
    for (const cap of rule.capabilities) {
      const problem = capabilityProblem(rule.path, cap);
      if (problem !== undefined) throw new CofferError("E_INVALID_VALUE", `${where}: ${problem}`);
    }
    return { path: rule.path, capabilities: rule.capabilities as Capability[] };
  });
}

/**
 * Refuses (403, audited) the first (pattern, capability) that none of the caller's own rules
 * covers: the capability on a pattern containing it. `root` holds everything.
 * @throws CofferError E_DENIED naming the rule and the capability
 */
async function refuseWidening(req: FastifyRequest, s: ServerParts, name: string, rules: readonly RoleRule[]): Promise<void> {
  const held = req.caller().roles;
  if (held.includes(ROOT_ROLE)) return;
  const own = held.flatMap((role) => s.policy.rulesOf(role) ?? []);
  for (const [i, rule] of rules.entries()) {
    for (const cap of rule.capabilities) {
      if (own.some((r) => r.capabilities.includes(cap) && policyPatternContains(r.path, rule.path))) continue;
      s.metrics.denials.inc({ action: "role.write" });
      await req.record("denied", "role.write", { detail: { object: "sys:roles", role: name, rule: i + 1, path: rule.path, capability: cap, widen: true } });
      throw new CofferError(
        "E_DENIED",
        `you may not grant ${cap} on ${rule.path} (rule ${i + 1}): none of your roles holds ${cap} on a pattern that contains it; a role never gets more than its maker holds`,
      );
    }
  }
}
