/**
 * The server's roles (issue 14): the config file's, read-only, plus those kept in the database
 * through `/v1/roles`, joined in one {@link Policy} that is compiled once per change. Every
 * instance learns of a change by reading the database's roles version (one meta row) once a
 * second in the background, never on a request's path; the instance that made a change
 * refreshes at once and says so on the change bus (Redis or PostgreSQL NOTIFY), which makes the
 * others re-read sooner. So a change reaches every instance within about a second even when that
 * message is lost: correctness never depends on the bus.
 *
 * A database role never takes a config role's name nor `root` (the API refuses them); should the
 * config gain a name the database already holds, the config's wins and the database's is ignored,
 * as is a stored role whose rules no longer check (logged, never fatal).
 */
import type { Logger } from "pino";
import type { ServerStorage, StoredRole } from "../storage/types.ts";
import type { ChangeBus } from "./changes.ts";
import type { RoleRule, ServerConfig } from "./config.ts";
import { Policy, ROOT_ROLE } from "./policy.ts";

/** How often each instance reads the roles version. */
export const ROLES_REFRESH_MS = 1000;

/** The config's roles and the database's, as one policy kept current. */
export class ServerRoles {
  readonly #config: Readonly<Record<string, readonly RoleRule[]>>;
  readonly #storage: ServerStorage;
  readonly #log: Logger | undefined;
  #policy: Policy;
  #stored: readonly StoredRole[] = [];
  #version = -1;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: () => void = () => {};

  private constructor(config: ServerConfig, storage: ServerStorage, log: Logger | undefined) {
    this.#config = config.roles;
    this.#storage = storage;
    this.#log = log;
    this.#policy = new Policy(config.roles);
  }

  /**
   * Loads the database's roles and starts the once-a-second check (its timer never keeps the
   * process alive).
   * @throws CofferError E_CONFIG for a config role that breaks the rules; E_UNAVAILABLE when the database cannot be read
   */
  static async open(
    config: ServerConfig, storage: ServerStorage, options: { log?: Logger; intervalMs?: number; changes?: Pick<ChangeBus, "onRolesChanged"> } = {},
  ): Promise<ServerRoles> {
    const roles = new ServerRoles(config, storage, options.log);
    await roles.refresh();
    // another instance's word that the roles changed: re-read now rather than within the second
    roles.#unsubscribe = options.changes?.onRolesChanged(() => void roles.refresh().catch((err: unknown) => roles.#warn("reading the roles failed; keeping the last ones", err))) ?? (() => {});
    roles.#timer = setInterval(() => void roles.refresh().catch((err: unknown) => roles.#warn("reading the roles failed; keeping the last ones", err)),
      options.intervalMs ?? ROLES_REFRESH_MS);
    roles.#timer.unref();
    return roles;
  }

  /** The policy now in force (config roles + database roles). */
  get policy(): Policy {
    return this.#policy;
  }

  /** The config's roles (read-only through the API). */
  get configRoles(): Readonly<Record<string, readonly RoleRule[]>> {
    return this.#config;
  }

  /** Whether `name` is a config role's (or `root`): the API never writes one. */
  isConfigManaged(name: string): boolean {
    return name === ROOT_ROLE || Object.hasOwn(this.#config, name);
  }

  /** The database's roles in force, by name (those a config role shadows left out). */
  get storedRoles(): readonly StoredRole[] {
    return this.#stored;
  }

  /**
   * Reads the roles version and, when it changed, the roles, and compiles the new policy. One
   * refresh at a time: a call during one waits for it and then runs again (a change committed
   * just before is seen).
   * @throws CofferError E_UNAVAILABLE when the database cannot be read (the last policy stays)
   */
  async refresh(): Promise<void> {
    while (this.#running !== undefined) await this.#running.catch(() => {});
    this.#running = this.#load();
    try {
      await this.#running;
    } finally {
      this.#running = undefined;
    }
  }

  /** Stops the background check (and listening to the change bus). */
  close(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
  }

  async #load(): Promise<void> {
    const version = await this.#storage.rolesVersion();
    if (version === this.#version) return;
    const stored = await this.#storage.listRoles();
    const all: Record<string, readonly RoleRule[]> = { ...this.#config };
    const kept: StoredRole[] = [];
    for (const role of stored) {
      if (this.isConfigManaged(role.name)) {
        this.#warn(`database role "${role.name}" has a config role's name; the config's is in force`);
        continue;
      }
      const rules = role.rules as RoleRule[];
      try {
        new Policy({ [role.name]: rules });
      } catch (err) {
        this.#warn(`database role "${role.name}" is ignored: its rules do not check`, err);
        continue;
      }
      all[role.name] = rules;
      kept.push(role);
    }
    this.#policy = new Policy(all);
    this.#stored = kept;
    this.#version = version;
  }

  #warn(message: string, err?: unknown): void {
    const e = err as { code?: unknown; message?: unknown } | undefined;
    this.#log?.warn(e === undefined ? {} : { err: { code: e.code, message: e.message } }, message);
  }
}
