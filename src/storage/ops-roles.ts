/**
 * The storage operations of roles kept in the server's database (issue 14), written once for both
 * dialects as `ops.ts`'s are. A role is its name and its rules (JSON text, checked by the server
 * before they get here), with a version bumped on every change. Every change also bumps the meta
 * key `roles_version` in the same transaction, so an instance learns that roles changed with one
 * cheap read ({@link rolesVersion}), and appends its audit record (`role.write`, `role.delete`).
 */
import { checkActor, normalizeDetail } from "./checks.ts";
import { all, appendAudit, get, run, type Dialect, type Op } from "./ops.ts";
import type { RoleRuleInput, StoredRole } from "./types.ts";

/** The meta key counting changes to the roles table. */
export const ROLES_VERSION_KEY = "roles_version";

interface RoleRow {
  name: string;
  rules: string;
  version: number | string;
  updated_at: string;
  updated_by: string;
}

function roleFromRow(r: RoleRow): StoredRole {
  return { name: r.name, rules: JSON.parse(r.rules) as RoleRuleInput[], version: Number(r.version), updatedAt: r.updated_at, updatedBy: r.updated_by };
}

function checkName(op: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || name === "") throw new TypeError(`${op}: name must be a non-empty string`);
}

function checkRules(rules: unknown): asserts rules is RoleRuleInput[] {
  if (!Array.isArray(rules)) throw new TypeError("putRole: rules must be an array");
  for (const r of rules as unknown[]) {
    const rule = r as { path?: unknown; capabilities?: unknown };
    if (typeof r !== "object" || r === null || typeof rule.path !== "string" || !Array.isArray(rule.capabilities) ||
      !(rule.capabilities as unknown[]).every((c) => typeof c === "string")) {
      throw new TypeError("putRole: each rule is { path: string, capabilities: string[] }");
    }
  }
}

// Bumps roles_version (created at 1 the first time).
function* bumpVersion(): Op<void> {
  yield* run(
    `INSERT INTO meta AS m (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(m.value AS INTEGER) + 1 AS TEXT)`,
    ROLES_VERSION_KEY,
  );
}

/** {@link ServerStorage.listRoles}: by name. */
export function* listRoles(): Op<StoredRole[]> {
  return (yield* all<RoleRow>("SELECT name, rules, version, updated_at, updated_by FROM roles ORDER BY name")).map(roleFromRow);
}

/** {@link ServerStorage.getRole} */
export function* getRole(name: string): Op<StoredRole | undefined> {
  checkName("getRole", name);
  const row = yield* get<RoleRow>("SELECT name, rules, version, updated_at, updated_by FROM roles WHERE name = ?", name);
  return row === undefined ? undefined : roleFromRow(row);
}

/** {@link ServerStorage.rolesVersion}: 0 before the first change. */
export function* rolesVersion(): Op<number> {
  const row = yield* get<{ value: string }>("SELECT value FROM meta WHERE key = ?", ROLES_VERSION_KEY);
  return row === undefined ? 0 : Number(row.value);
}

/** {@link ServerStorage.putRole}: creates the role at version 1 or replaces its rules (version + 1). */
export function* putRole(
  d: Dialect, name: string, rules: readonly RoleRuleInput[], actor: string, auditDetail: Record<string, unknown> | null,
): Op<StoredRole> {
  checkName("putRole", name);
  checkRules(rules);
  checkActor("putRole", actor);
  const now = new Date().toISOString();
  const text = JSON.stringify(rules.map((r) => ({ path: r.path, capabilities: [...r.capabilities] })));
  const row = yield* get<RoleRow>(
    `INSERT INTO roles AS r (name, rules, version, updated_at, updated_by) VALUES (?, ?, 1, ?, ?)
     ON CONFLICT (name) DO UPDATE SET rules = excluded.rules, version = r.version + 1, updated_at = excluded.updated_at, updated_by = excluded.updated_by
     RETURNING name, rules, version, updated_at, updated_by`,
    name, text, now, actor,
  );
  yield* bumpVersion();
  const role = roleFromRow(row!);
  const detail = normalizeDetail({ ...auditDetail, role: name, version: role.version, rules: role.rules });
  yield* appendAudit(d, [{ at: now, actor, action: "role.write", name: null, version: null, detail }]);
  return role;
}

/** {@link ServerStorage.deleteRole}: false when there is no such role (nothing audited then). */
export function* deleteRole(d: Dialect, name: string, actor: string, auditDetail: Record<string, unknown> | null): Op<boolean> {
  checkName("deleteRole", name);
  checkActor("deleteRole", actor);
  const now = new Date().toISOString();
  if ((yield* run("DELETE FROM roles WHERE name = ?", name)) === 0) return false;
  yield* bumpVersion();
  yield* appendAudit(d, [{ at: now, actor, action: "role.delete", name: null, version: null, detail: normalizeDetail({ ...auditDetail, role: name }) }]);
  return true;
}
