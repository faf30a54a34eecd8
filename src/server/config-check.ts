/**
 * The checks of the server config (docs/design.md §7): the file and every `COFFER_` variable
 * against {@link SERVER_SCHEMA} (config-schema.ts) with the one config checker, then the rules
 * that need several settings (the JWT key source, TLS, clients naming roles, proxies, URLs that
 * may hold passwords).
 */
import { isIP } from "node:net";
import { parseYaml, show } from "../config/yaml-checker.ts";
import { render, SchemaChecker, type Schema } from "../config/schema-check.ts";
import { checkDuration } from "../core/durations.ts";
import type { JwtConfig, LogLevel, RoleRule, ServerConfig } from "./config.ts";
import { capabilityProblem, ROOT_ROLE } from "./policy.ts";
import { lookupUser } from "./users.ts";
import {
  ALGORITHMS, DEFAULT_KEY_ALGORITHMS, DEFAULT_RUNBOOK_EXECUTIONS, DEFAULT_RUNBOOK_WINDOW_MS, ENV_BOOLEAN_RULE, envName,
  HOP_RULE, LISTEN_RULE, MAX_PROXY_HOPS, parseListen, PRODUCTION_SPELLINGS, SERVER_FORMATS, SERVER_SCHEMA,
} from "./config-schema.ts";

/** Checks one server config: the file (its checker's problems) and the environment (`VARIABLE: rule`). */
export class ServerConfigCheck {
  readonly c: SchemaChecker;
  readonly env: NodeJS.ProcessEnv;
  /** `VARIABLE: rule` (and `--listen: rule`), in the order found */
  readonly envProblems: string[] = [];
  /** every setting given, by path (`rateLimit.window`), its checked value when it has one */
  readonly values = new Map<string, unknown>();
  /** where each setting given came from: a variable, or the file with its line */
  readonly sources = new Map<string, { env: string } | { line: number }>();
  /** the checkers of variables holding YAML (COFFER_ROLES, COFFER_CLIENTS) */
  readonly #envCheckers = new Map<string, SchemaChecker>();
  #file: Record<string, unknown> = {};

  constructor(label: string, text: string, env: NodeJS.ProcessEnv) {
    const { doc, lines } = parseYaml(text, label);
    this.c = new SchemaChecker(label, doc, lines).use(SERVER_SCHEMA, SERVER_FORMATS);
    this.env = env;
    const contents = doc.contents;
    const empty = contents === null || (typeof contents === "object" && "value" in contents && contents.value === null);
    if (!empty) this.#file = (this.c.check(contents, SERVER_SCHEMA, "", 1) as Record<string, unknown> | undefined) ?? {};
    this.#readAll(SERVER_SCHEMA["properties"], "", this.#file);
  }

  /** Reads every setting of `props` (sections within sections too: `runbooks.rateLimit.window`). */
  #readAll(props: Record<string, Schema>, prefix: string, container: Record<string, unknown> | undefined): void {
    for (const [key, prop] of Object.entries<Schema>(props)) {
      const path = prefix === "" ? key : `${prefix}.${key}`;
      const sub: Record<string, Schema> | undefined = prop["properties"];
      if (sub === undefined) this.#read(path, key, prop, container);
      else this.#readAll(sub, path, container?.[key] as Record<string, unknown> | undefined);
    }
  }

  /** A setting from its variable when set and not empty, else from the file. */
  #read(path: string, key: string, leaf: Schema, container: Record<string, unknown> | undefined): void {
    const name = envName(path);
    const text = this.env[name];
    if (text !== undefined && text !== "") {
      this.sources.set(path, { env: name });
      const v = this.#fromEnv(name, text, leaf);
      if (v !== undefined) this.values.set(path, v);
    } else if (container !== undefined && this.c.at(container, key) !== undefined) {
      this.sources.set(path, { line: this.c.lineOf(container, key) });
      if (Object.hasOwn(container, key)) this.values.set(path, container[key]);
    }
  }

  /** A variable's text read by the setting's schema; its problems read `VARIABLE: rule` (no value: it may be a secret). */
  #fromEnv(name: string, text: string, leaf: Schema): unknown {
    const bad = (rule: string): undefined => void this.envProblems.push(`${name}: ${rule}`);
    switch (leaf["type"]) {
      case "string": {
        const r = this.c.textRule(text, leaf);
        return r === undefined ? text : bad(render(r.template.replace(/,? got \{value\}/, "").replace("{value}", ""), leaf, "", "", r.rule));
      }
      case "integer": {
        const v = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
        return Number.isSafeInteger(v) && v >= leaf["minimum"] ? v : bad(`must be ${leaf["x-expect"]}`);
      }
      case "boolean": {
        const t = text.toLowerCase();
        return t === "true" || t === "1" ? true : t === "false" || t === "0" ? false : bad(ENV_BOOLEAN_RULE);
      }
      case "array":
        return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
      case "object": {
        // YAML or JSON text of the whole map, checked by a checker of its own: `VARIABLE:line: rule`.
        try {
          const { doc, lines } = parseYaml(text, name);
          const c = new SchemaChecker(name, doc, lines).use(SERVER_SCHEMA, SERVER_FORMATS);
          this.#envCheckers.set(name, c);
          return c.check(doc.contents, leaf, "", 1);
        } catch (err) {
          return void this.envProblems.push((err as Error).message); // the YAML's own problems, `VARIABLE:line: …`
        }
      }
      default:
        return text;
    }
  }

  /** The checker that read `path` (the file's, or its variable's when it held YAML). */
  checkerOf(path: string): SchemaChecker {
    const src = this.sources.get(path);
    return (src !== undefined && "env" in src && this.#envCheckers.get(src.env)) || this.c;
  }

  /** Notes a problem with the setting `path`: `file:line: path rule[, got …]` or `VARIABLE: rule`. */
  bad(path: string, rule: string, got?: string): void {
    const src = this.sources.get(path);
    if (src === undefined) return;
    if ("env" in src) this.envProblems.push(`${src.env}: ${rule}`);
    else this.c.problem(src.line, `${path} ${rule}${got !== undefined ? `, got ${got}` : ""}`);
  }

  /** Notes a problem about a section (`jwt needs issuer …`): at its line in the file, else without one. */
  sectionProblem(section: string, rule: string): void {
    const at = this.c.at(this.#file, section);
    if (at !== undefined) this.c.problem(at.key, rule);
    else this.envProblems.push(rule);
  }

  /** Whether the file has `section`, or a variable sets one of its settings. */
  given(section: string): boolean {
    return this.c.at(this.#file, section) !== undefined || [...this.sources.keys()].some((k) => k.startsWith(`${section}.`));
  }

  value<T>(path: string): T | undefined {
    return this.values.get(path) as T | undefined;
  }

  /** Throws every problem: the file's by line, the variables' YAML problems, then the rest. */
  throwIfAny(): void {
    for (const c of this.#envCheckers.values()) {
      try {
        c.throwIfAny();
      } catch (err) {
        this.envProblems.push((err as Error).message);
      }
    }
    this.c.throwIfAny(this.envProblems);
  }

  /** The checked settings, with their defaults and the rules that need several of them. */
  config(file: string | undefined, overrides: { listen?: string; production?: boolean }, defaults: Pick<ServerConfig, "listen" | "rateLimit" | "limits">): ServerConfig {
    let listen = defaults.listen;
    const given = overrides.listen ?? this.value<string>("listen");
    if (given !== undefined) {
      const l = parseListen(given);
      if (l !== undefined) listen = l;
      else if (overrides.listen !== undefined) this.envProblems.push(`--listen: ${LISTEN_RULE}`);
    }
    const requests = this.value<number>("rateLimit.requests") ?? defaults.rateLimit.requests;
    const window = this.value<string>("rateLimit.window");
    const roles = this.value<Record<string, RoleRule[]>>("roles") ?? (Object.create(null) as Record<string, RoleRule[]>);
    this.ruleCapabilities(roles);
    const jwt = this.jwt();
    const tls = this.tls();
    const clients = this.clients(roles, tls);
    const database = this.url("database", ["postgres:", "postgresql:"], "must be a postgres:// or postgresql:// URL");
    const redis = this.url("redis", ["redis:", "rediss:"], "must be a redis:// or rediss:// URL");
    const production = overrides.production === true || (this.value<boolean>("production") ?? false);
    const cofferEnv = this.env["COFFER_ENV"];
    if (!production && cofferEnv !== undefined && PRODUCTION_SPELLINGS.test(cofferEnv)) {
      // COFFER_ENV used to switch the guard on: a deployment that relied on it must not run unguarded.
      this.envProblems.push(
        `COFFER_ENV=${cofferEnv.trim()} no longer turns on the server's production checks (COFFER_ENV only picks the .coffer.yml environment): ` +
          "set production: true in the server config, COFFER_PRODUCTION=1, or pass --production",
      );
    }
    const proxy = this.proxies();
    const runbooks = this.runbooks();
    return {
      ...(file !== undefined && { file }),
      listen,
      ...(jwt !== undefined && { jwt }),
      rateLimit: {
        requests,
        windowMs: window === undefined ? defaults.rateLimit.windowMs : msOf(window),
        ipRequests: this.value<number>("rateLimit.ipRequests") ?? 10 * requests,
      },
      limits: {
        bodyBytes: this.value<number>("limits.bodyBytes") ?? defaults.limits.bodyBytes,
        valueBytes: this.value<number>("limits.valueBytes") ?? defaults.limits.valueBytes,
      },
      roles,
      devLogin: this.value<boolean>("devLogin") ?? false,
      behindProxy: proxy.hops,
      ...(proxy.trusted !== undefined && { trustedProxies: proxy.trusted }),
      production,
      metrics: { public: this.value<boolean>("metrics.public") ?? false },
      ui: { enabled: this.value<boolean>("ui.enabled") ?? true },
      ...(this.value<string>("vault.mount") !== undefined && { vault: { mount: this.value<string>("vault.mount")! } }),
      log: { level: this.value<LogLevel>("log.level") ?? "info" },
      ...(database !== undefined && { database }),
      ...(redis !== undefined && { redis }),
      ...(tls !== undefined && { tls }),
      ...(clients !== undefined && { clients }),
      ...(runbooks !== undefined && { runbooks }),
    };
  }

  /**
   * Each rule grants only capabilities of its path's kind: `run` and `approve` on runbook paths
   * only, `list`, `write` and `delete` never on them (policy.ts capabilityProblem).
   */
  ruleCapabilities(roles: Record<string, RoleRule[]>): void {
    const c = this.checkerOf("roles");
    for (const [role, rules] of Object.entries(roles)) {
      rules.forEach((rule, i) => {
        // A rule whose path or capabilities broke the schema has its problem already.
        if (typeof rule.path !== "string" || !Array.isArray(rule.capabilities)) return;
        rule.capabilities.forEach((cap, j) => {
          const why = capabilityProblem(rule.path, cap);
          if (why !== undefined) c.problem(c.lineOf(rule.capabilities, j, c.lineOf(rules, i)), `role ${show(role)} rule ${i + 1} (${rule.path}): ${why}`);
        });
      });
    }
  }

  /**
   * `runbooks`: the directory (required once the section is given), the execution rate limit
   * (default 10 per 1m), `runAs` resolved to its uid and gid now (an unknown user or root is a
   * problem), `allowUnsandboxed` (default false).
   */
  runbooks(): ServerConfig["runbooks"] {
    if (!this.given("runbooks")) return undefined;
    if (!this.sources.has("runbooks.dir")) {
      this.sectionProblem("runbooks", "runbooks needs dir (COFFER_RUNBOOKS_DIR): the absolute path of the directory of runbook files");
    }
    const dir = this.value<string>("runbooks.dir");
    const window = this.value<string>("runbooks.rateLimit.window");
    const user = this.value<string>("runbooks.runAs");
    let runAs: { user: string; uid: number; gid: number } | undefined;
    if (user !== undefined) {
      const found = lookupUser(user);
      if ("rule" in found) this.bad("runbooks.runAs", found.rule);
      else if (found.uid === 0) this.bad("runbooks.runAs", `names ${show(user)} (uid 0): tempdir scripts would run as root; name an unprivileged user`);
      else runAs = found;
    }
    if (dir === undefined) return undefined;
    return {
      dir,
      rateLimit: {
        executions: this.value<number>("runbooks.rateLimit.executions") ?? DEFAULT_RUNBOOK_EXECUTIONS,
        windowMs: window === undefined ? DEFAULT_RUNBOOK_WINDOW_MS : msOf(window),
      },
      ...(runAs !== undefined && { runAs }),
      allowUnsandboxed: this.value<boolean>("runbooks.allowUnsandboxed") ?? false,
    };
  }

  jwt(): JwtConfig | undefined {
    if (!this.given("jwt")) return undefined;
    const missing = (rule: string): void => this.sectionProblem("jwt", rule);
    const sources = ["secret", "jwksFile", "jwksUrl"].filter((k) => this.sources.has(`jwt.${k}`));
    if (sources.length === 0) {
      missing("jwt needs one key source: secret (COFFER_JWT_SECRET), jwksFile (COFFER_JWT_JWKS_FILE) or jwksUrl (COFFER_JWT_JWKS_URL)");
    } else if (sources.length > 1) {
      missing(`jwt has ${sources.join(" and ")}: give exactly one of secret, jwksFile, jwksUrl`);
    }
    if (!this.sources.has("jwt.issuer")) missing("jwt needs issuer (COFFER_JWT_ISSUER): the iss tokens must carry");
    if (!this.sources.has("jwt.audience")) missing("jwt needs audience (COFFER_JWT_AUDIENCE): the aud tokens must carry");

    const hmac = sources.length === 1 && sources[0] === "secret";
    let algorithms = hmac ? ["HS256"] : [...DEFAULT_KEY_ALGORITHMS];
    const list = this.value<string[]>("jwt.algorithms");
    if (list !== undefined) {
      const rules = algorithmRules(list, sources.length === 1 ? hmac : undefined);
      for (const r of rules) this.bad("jwt.algorithms", r);
      if (rules.length === 0) algorithms = list;
    }
    const [secret, jwksFile, jwksUrl, issuer, audience, maxLifetime] = ["secret", "jwksFile", "jwksUrl", "issuer", "audience", "maxLifetime"].map((k) =>
      this.value<string>(`jwt.${k}`),
    );
    if (issuer === undefined || audience === undefined) return undefined;
    return {
      ...(secret !== undefined && { secret }),
      ...(jwksFile !== undefined && { jwksFile }),
      ...(jwksUrl !== undefined && { jwksUrl }),
      issuer,
      audience,
      rolesClaim: this.value<string>("jwt.rolesClaim") ?? "roles",
      algorithms,
      ...(maxLifetime !== undefined && { maxLifetimeMs: msOf(maxLifetime) }),
    };
  }

  tls(): ServerConfig["tls"] {
    if (!this.given("tls")) return undefined;
    for (const [k, what] of [["cert", "certificate chain (PEM)"], ["key", "private key (PEM)"]] as const) {
      if (!this.sources.has(`tls.${k}`)) this.sectionProblem("tls", `tls needs ${k} (${envName(`tls.${k}`)}): the absolute path of the ${what}`);
    }
    const [cert, key, clientCa] = ["cert", "key", "clientCa"].map((k) => this.value<string>(`tls.${k}`));
    if (cert === undefined || key === undefined) return undefined;
    return { cert, key, ...(clientCa !== undefined && { clientCa }) };
  }

  /** `clients`: certificate names → defined role names (or root); needs tls.clientCa. */
  clients(roles: Record<string, RoleRule[]>, tls: ServerConfig["tls"]): Record<string, string[]> | undefined {
    const clients = this.value<Record<string, string[]>>("clients");
    if (clients === undefined) return undefined;
    const c = this.checkerOf("clients");
    const before = c.problems.length;
    const out = Object.create(null) as Record<string, string[]>;
    for (const [name, list] of Object.entries(clients)) {
      out[name] = [];
      list.forEach((role, i) => {
        if (role !== ROOT_ROLE && !Object.hasOwn(roles, role)) {
          c.problem(c.lineOf(list, i), `client ${show(name)}: role ${show(role)} is not defined; roles: ${[ROOT_ROLE, ...Object.keys(roles)].join(", ")}`);
        } else if (!out[name]!.includes(role)) {
          out[name]!.push(role);
        }
      });
    }
    if (c.problems.length > before) return undefined;
    if (tls?.clientCa === undefined) {
      this.bad("clients", "needs tls.clientCa (COFFER_TLS_CLIENT_CA): client certificates are only asked for with a CA to check them");
      return undefined;
    }
    return out;
  }

  /**
   * `behindProxy` (true = 1 hop, false = 0, or a hop count) or `trustedProxies` (addresses or
   * CIDRs), not both: whose X-Forwarded-For the server believes.
   */
  proxies(): { hops: number; trusted?: string[] } {
    let hops = 0;
    const b = this.value<boolean | number | string>("behindProxy");
    if (typeof b === "string") {
      const t = b.trim().toLowerCase();
      const v = t === "true" ? 1 : t === "false" ? 0 : /^[0-9]{1,2}$/.test(t) ? Number(t) : undefined;
      if (v === undefined || v > MAX_PROXY_HOPS) this.bad("behindProxy", HOP_RULE);
      else hops = v;
    } else if (b !== undefined) {
      hops = b === true ? 1 : b === false ? 0 : b;
    }
    const list = this.value<string[]>("trustedProxies");
    if (list === undefined) return { hops };
    const rules: string[] = [];
    if (list.length === 0) rules.push("must not be empty; list the addresses or CIDRs of your proxies, e.g. [10.0.0.5, 10.1.0.0/16]");
    for (const entry of list) {
      const why = cidrRule(entry);
      if (why !== undefined) rules.push(`${show(entry)}: ${why}`);
    }
    if (this.sources.has("behindProxy")) rules.push("give behindProxy (a number of hops) or trustedProxies (addresses), not both");
    for (const r of rules) this.bad("trustedProxies", r);
    return rules.length > 0 ? { hops } : { hops: 0, trusted: list };
  }

  /** A URL with one of `schemes`; messages show only the scheme (the URL may hold a password). */
  url(path: string, schemes: readonly string[], rule: string): string | undefined {
    const s = this.value<string>(path);
    const u = s === undefined ? null : URL.parse(s);
    if (s !== undefined && (u === null || !schemes.includes(u.protocol))) this.bad(path, rule, u === null ? "something that is not a URL" : `a ${u.protocol}// URL`);
    else if (u?.hostname === "" && u.protocol.startsWith("redis")) this.bad(path, `${rule} with a host`);
    else return s;
    return undefined;
  }

}

/**
 * Why the `jwt.algorithms` list is refused, one rule per problem (empty when fine): `none`, unknown
 * or repeated names, and an algorithm that does not go with the key source (`hmac`: a secret;
 * undefined when the source is not known). createJwtVerifier (jwt.ts) applies the same rules.
 */
export function algorithmRules(list: readonly string[], hmac: boolean | undefined): string[] {
  const rules: string[] = [];
  const ok: string[] = [];
  if (list.length === 0) rules.push(`must not be empty; algorithms: ${ALGORITHMS.join(", ")}`);
  for (const a of list) {
    if (a.toLowerCase() === "none") rules.push(`"none" is refused: it accepts unsigned tokens, which anyone can forge`);
    else if (!ALGORITHMS.includes(a)) rules.push(`${show(a)} is unknown; algorithms: ${ALGORITHMS.join(", ")}`);
    else if (ok.includes(a)) rules.push(`${show(a)} is listed twice`);
    else if (hmac === true && !a.startsWith("HS")) rules.push(`${a} needs a key set (jwksFile or jwksUrl); with secret use HS256, HS384 or HS512`);
    else if (hmac === false && a.startsWith("HS")) rules.push(`${a} needs secret; with jwksFile or jwksUrl use RS*, PS*, ES* or EdDSA`);
    else ok.push(a);
  }
  return rules;
}

/** A checked duration's milliseconds. */
const msOf = (text: string): number => (checkDuration(text) as { ok: number }).ok;

/** Why `entry` is not an IP address or CIDR coffer accepts as a trusted proxy, or undefined. */
function cidrRule(entry: string): string | undefined {
  const [addr, bits, extra] = entry.split("/");
  const family = isIP(addr ?? "");
  if (extra !== undefined || family === 0) return "not an IP address or CIDR (e.g. 10.0.0.5, 10.1.0.0/16, fd00::/8)";
  if (bits === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) return `the prefix length must be a number from 1 to ${max}`;
  if (Number(bits) === 0) return "a /0 trusts every address, so any client could choose its own; list your proxies";
  return undefined;
}
