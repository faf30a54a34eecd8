/**
 * The role calls of the coffer server's API (`/v1/roles`, issue 14): list, show, set (create or
 * replace a database role's rules) and remove. Every request goes through
 * {@link CofferClient.request} (auth, timeouts, error mapping), so this module only builds targets
 * and checks answers field by field.
 */
import { CofferError } from "../errors.ts";
import type { CofferClient } from "./client.ts";
import { field, shapeError, str } from "./shape.ts";

/** A rule of a role: a policy path pattern and the capabilities it grants there. */
export interface RoleRuleSpec {
  path: string;
  capabilities: string[];
}

/** A role as the server describes it. */
export interface RoleInfo {
  name: string;
  rules: RoleRuleSpec[];
  /** `config`: from the server's config file, read-only here; `api`: kept in its database */
  managedBy: "config" | "api";
  /** the database role's version (1, 2, …), null for a config role */
  version: number | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

const ROLE_NAME_RE = /^[a-z][a-z0-9_-]*$/;

/**
 * Checks a role name before it goes into a URL.
 * @throws CofferError E_INVALID_VALUE when it is not one
 */
export function checkRoleName(name: string): void {
  if (!ROLE_NAME_RE.test(name) || name.length > 64) {
    throw new CofferError("E_INVALID_VALUE", `invalid role name ${JSON.stringify(name.slice(0, 64))}: lower-case letters, digits, _ and -, starting with a letter, at most 64`);
  }
}

/**
 * Parses `--rule PATH:CAPS`: split at the LAST `:` (so `sys:tokens:read` and `runbook:*:run`
 * work), the capabilities comma-separated. The server checks the path and capabilities.
 * @throws CofferError E_USAGE when there is no `:`, or the path or the capabilities are empty
 */
export function parseRule(text: string): RoleRuleSpec {
  const at = text.lastIndexOf(":");
  const path = at === -1 ? "" : text.slice(0, at);
  const capabilities = at === -1 ? [] : text.slice(at + 1).split(",").map((c) => c.trim()).filter((c) => c !== "");
  if (path === "" || capabilities.length === 0) {
    throw new CofferError("E_USAGE", `invalid --rule ${JSON.stringify(text)}: give PATH:CAPS, e.g. 'app/**:read,list' or 'sys:tokens:read' (split at the last ':')`);
  }
  return { path, capabilities: [...new Set(capabilities)] };
}

/** The roles API of one server, over a {@link CofferClient}. */
export class RoleClient {
  readonly #client: CofferClient;

  constructor(client: CofferClient) {
    this.#client = client;
  }

  /** the server's URL */
  get url(): string {
    return this.#client.url;
  }

  /**
   * Every role: the config's and the database's, by name.
   * @throws ServerError E_DENIED (needs read on sys:roles), …; CofferError E_PROVIDER for an answer of the wrong shape
   */
  async list(): Promise<RoleInfo[]> {
    const body = await this.#client.request("GET", "/v1/roles");
    const roles = field(body, "roles");
    if (!Array.isArray(roles)) throw shapeError(this.url, "the roles", "roles");
    return roles.map((r) => this.#roleOf(r, "the roles"));
  }

  /**
   * One role.
   * @throws CofferError E_INVALID_VALUE for a bad name; ServerError E_NOT_FOUND, E_DENIED, …
   */
  async get(name: string): Promise<RoleInfo> {
    checkRoleName(name);
    return this.#roleOf(await this.#client.request("GET", `/v1/roles/${name}`), `role ${name}`);
  }

  /**
   * Creates a database role or replaces its rules.
   * @throws ServerError E_CONFLICT for a config role's name, E_DENIED (needs write on sys:roles;
   *   or a rule grants more than you hold), E_INVALID_VALUE for a bad rule, …
   */
  async set(name: string, rules: readonly RoleRuleSpec[]): Promise<RoleInfo> {
    checkRoleName(name);
    const payload = { rules: rules.map((r) => ({ path: r.path, capabilities: [...r.capabilities] })) };
    return this.#roleOf(await this.#client.request("PUT", `/v1/roles/${name}`, { payload }), `setting role ${name}`);
  }

  /**
   * Deletes a database role.
   * @throws ServerError E_NOT_FOUND, E_CONFLICT for a config role, E_DENIED, …
   */
  async remove(name: string): Promise<void> {
    checkRoleName(name);
    const body = await this.#client.request("DELETE", `/v1/roles/${name}`);
    if (field(body, "deleted") !== true) throw shapeError(this.url, `deleting role ${name}`, "deleted");
  }

  #roleOf(v: unknown, what: string): RoleInfo {
    const name = str(v, "name", what, this.url);
    const managedBy = field(v, "managedBy");
    if (managedBy !== "config" && managedBy !== "api") throw shapeError(this.url, what, "managedBy");
    const rules = field(v, "rules");
    if (!Array.isArray(rules)) throw shapeError(this.url, what, "rules");
    const version = field(v, "version");
    if (version !== null && (typeof version !== "number" || !Number.isSafeInteger(version))) throw shapeError(this.url, what, "version");
    const nullable = (key: string): string | null => {
      const x = field(v, key);
      if (x !== null && typeof x !== "string") throw shapeError(this.url, what, key);
      return x;
    };
    return {
      name,
      rules: rules.map((r) => {
        const caps = field(r, "capabilities");
        if (!Array.isArray(caps) || !caps.every((c) => typeof c === "string")) throw shapeError(this.url, what, "rules");
        return { path: str(r, "path", what, this.url), capabilities: caps as string[] };
      }),
      managedBy,
      version,
      updatedAt: nullable("updatedAt"),
      updatedBy: nullable("updatedBy"),
    };
  }
}
