/**
 * What `coffer agent` runs with (issue 5): the command-line pieces (`--provider SPEC`,
 * `--secrets ID[=ENV_NAME],…`, `--on-change`, `--poll-interval`, `--mode`, `--owner`) and the
 * system-wide `--config /etc/coffer/agent.yml --service NAME` file.
 *
 * Command-line problems are CofferError `E_USAGE`; config-file problems are `E_CONFIG` naming
 * `file:line: rule`, every problem of the file at once (the style of `src/config/load.ts`).
 * Messages name inputs, never secret values (there are none here).
 *
 * Layout of the agent's directory DIR (decided here, used by the agent and `coffer units`):
 * - DIR is flat. Each ID is written to `DIR/<fileNameOf(id)>`: the ID with every `/` replaced
 *   by `_` (`db/password` → `DIR/db_password`), the same name systemd's `LoadCredential=` needs
 *   (units.ts `credentialName`). No subdirectories: atomic replacement, cleanup and credentials
 *   stay one-level. The name never holds `/`, never starts with `.` and is never `.` or `..`,
 *   so it cannot leave DIR; see {@link fileNameOf}.
 * - Two IDs with the same file name (`a/b` and `a_b`) are refused.
 * - `DIR/secrets.env` holds the env lines, so the ID `secrets.env` is refused.
 * - Names starting with `.` never collide with an ID: they are free for the agent's temp files.
 */
import { isScalar, isSeq } from "yaml";
import { dangerousEnvRule, isDangerousEnvName } from "../config/dangerous-env.ts";
import { DEFAULT_VAULT_MOUNT, PROVIDER_NAME_PATTERN, SERVER_URL_RULE, VAULT_ADDRESS_PATTERN, validServerUrl } from "../config/load.ts";
import { readConfigFile } from "../config/read.ts";
import { tokenTransportRule } from "../core/token-transport.ts";
import { parseYaml, show, YamlChecker } from "../config/yaml-checker.ts";
import { checkDuration } from "../core/durations.ts";
import { checkFileMode, unquotedModeRule } from "../core/file-mode.ts";
import { CofferError } from "../errors.ts";
import type { ProviderSpec } from "../providers/provider.ts";
import { assertSecretName, ENV_NAME_PATTERN, isSecretName, SECRET_NAME_PATTERN } from "../core/names.ts";

/** One secret the agent delivers: its ID (a secret name) and its variable in `secrets.env`. */
export interface AgentSecret {
  id: string;
  env: string;
}

/** What the agent does after it replaced the files because a secret changed. */
export type OnChange =
  | { kind: "exit" }
  | { kind: "restart-unit"; unit: string }
  | { kind: "signal"; signal: NodeJS.Signals }
  | { kind: "exec"; command: string }
  | { kind: "none" };

/** One service's settings from the agent config file (unset options are absent: the caller defaults them). */
export interface AgentSettings {
  /** the backend with the service's `override:` applied */
  provider: ProviderSpec;
  /** vault only: read the token from this file at start (absolute path) */
  tokenFile?: string;
  secrets: AgentSecret[];
  dir?: string;
  watch?: boolean;
  pollIntervalMs?: number;
  onChange?: OnChange;
  mode?: number;
  owner?: string;
}

/** The env file's name in DIR. */
export const SECRETS_ENV_FILE = "secrets.env";
/** Bounds of `--poll-interval` / `pollInterval`, in ms. */
export const MIN_POLL_INTERVAL_MS = 100;
export const MAX_POLL_INTERVAL_MS = 60 * 60 * 1000;
/** The signals `--on-change signal:NAME` may send. */
export const ON_CHANGE_SIGNALS = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT"] as const satisfies readonly NodeJS.Signals[];
/** A systemd unit name for `restart-unit:` (also: not starting with `-`, at most 255 characters). */
export const UNIT_NAME_PATTERN = "^[a-zA-Z0-9:_.@\\-]+$";
/** A service's name in the agent config. */
export const SERVICE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.@-]*$";
/** A user for `--owner`: a name (at most 32 characters) or a numeric uid. */
export const OWNER_PATTERN = "^([A-Za-z_][A-Za-z0-9_.-]*\\$?|[0-9]+)$";

const ENV_NAME_RE = new RegExp(ENV_NAME_PATTERN);
const MOUNT_RE = new RegExp(SECRET_NAME_PATTERN);
const VAULT_ADDRESS_RE = new RegExp(VAULT_ADDRESS_PATTERN);
const PROVIDER_NAME_RE = new RegExp(PROVIDER_NAME_PATTERN);
const UNIT_NAME_RE = new RegExp(UNIT_NAME_PATTERN);
const SERVICE_NAME_RE = new RegExp(SERVICE_NAME_PATTERN);
const OWNER_RE = new RegExp(OWNER_PATTERN);

const PROVIDER_FORMS = "folder:/absolute/dir, store, env, vault:https://host:8200[#mount] or server:https://host:8200";
const ON_CHANGE_FORMS = "exit, restart-unit:NAME, signal:HUP|USR1|USR2|TERM|INT, exec:CMD or none";
const SECRETS_FORM = "ID[=ENV_NAME],… (e.g. db/password,api/key=API_KEY)";

const usage = (message: string): CofferError => new CofferError("E_USAGE", message);

/** A result or the rule it broke (so the file checker can attach a line). */
type Checked<T> = { ok: T } | { rule: string };

function orThrow<T>(r: Checked<T>, prefix = ""): T {
  if ("ok" in r) return r.ok;
  throw usage(prefix + r.rule);
}

/* ---------------------------------------- provider ---------------------------------------- */

/**
 * Parses `--provider SPEC`: `folder:/abs/dir`, `store`, `env`, `vault:http(s)://host:port[#mount]`
 * (mount defaults to `secret`) or `server:http(s)://host:port[/path]` (a coffer team server);
 * tokens come from the environment as for `.coffer.yml`.
 * @throws CofferError E_USAGE naming the accepted forms
 */
export function parseProviderSpec(spec: string): ProviderSpec {
  if (spec === "store" || spec === "env") return { type: spec };
  if (spec.startsWith("folder:")) {
    const dir = spec.slice("folder:".length);
    if (!dir.startsWith("/")) {
      throw usage(`invalid provider ${show(spec)}: folder: needs an absolute directory, e.g. folder:/etc/secrets`);
    }
    return { type: "folder", dir };
  }
  if (spec.startsWith("vault:")) {
    const rest = spec.slice("vault:".length);
    const hash = rest.indexOf("#");
    const address = hash < 0 ? rest : rest.slice(0, hash);
    const mount = hash < 0 ? DEFAULT_VAULT_MOUNT : rest.slice(hash + 1);
    if (!validUrl(address)) {
      throw usage(`invalid provider ${show(spec)}: vault address ${show(address)} must be an http:// or https:// URL, e.g. vault:https://vault.internal:8200#secret`);
    }
    if (!validMount(mount)) {
      throw usage(`invalid provider ${show(spec)}: vault mount ${show(mount)} (after #) must match ${SECRET_NAME_PATTERN}`);
    }
    const transport = tokenTransportRule(address);
    if (transport !== undefined) throw usage(`invalid provider ${show(spec)}: it ${transport}`);
    return { type: "vault", address, mount };
  }
  if (spec.startsWith("server:")) {
    const url = spec.slice("server:".length);
    if (!validServerUrl(url)) throw usage(`invalid provider ${show(spec)}: server url ${show(url)} ${SERVER_URL_RULE}`);
    const transport = tokenTransportRule(url);
    if (transport !== undefined) throw usage(`invalid provider ${show(spec)}: it ${transport}`);
    return { type: "server", url };
  }
  throw usage(`invalid provider ${show(spec)}: use ${PROVIDER_FORMS}`);
}

/* ---------------------------------------- secrets ----------------------------------------- */

/**
 * The default variable of an ID in `secrets.env`: upper-cased, every character other than
 * A-Z and 0-9 replaced by `_`, and `_` put in front when it would start with a digit
 * (`db/prod-password` → `DB_PROD_PASSWORD`, `1password/key` → `_1PASSWORD_KEY`).
 */
export function defaultEnvName(id: string): string {
  const name = id.toUpperCase().replace(/[^A-Z0-9]/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** The longest file name {@link fileNameOf} gives: leaves room in NAME_MAX (255) for a temp-file prefix and suffix. */
export const MAX_FILE_NAME = 200;

/**
 * The file name in DIR an ID is written to: the ID with every `/` replaced by `_`
 * (`db/password` → `db_password`). It cannot leave DIR: a valid secret name has only
 * `[A-Za-z0-9_.-]` and `/`, starts each segment with a letter or digit and has no `..`, so the
 * result has no `/`, does not start with `.` and is not `.` or `..`. Not injective (`a/b` and
 * `a_b` share a name): {@link parseSecretIds} and the config refuse such pairs.
 * @throws CofferError E_INVALID_NAME for an invalid secret name; E_USAGE for `secrets.env` (the
 *   env file) or a name longer than {@link MAX_FILE_NAME}
 */
export function fileNameOf(id: string): string {
  assertSecretName(id);
  const rule = fileRule(id);
  if (rule !== undefined) throw usage(rule);
  const name = id.replaceAll("/", "_");
  // Belt and braces: the name rules already guarantee this.
  if (name.includes("/") || name.startsWith(".") || name.includes("\0")) {
    throw new CofferError("E_INVALID_NAME", `invalid secret name ${show(id)}: not a plain file name`);
  }
  return name;
}

/** Why an (otherwise valid) ID cannot have a file in DIR, if it cannot. */
function fileRule(id: string): string | undefined {
  if (id === SECRETS_ENV_FILE) return reservedRule(id);
  if (id.length > MAX_FILE_NAME) return `secret ${show(id)} cannot be delivered: its file name would be longer than ${MAX_FILE_NAME} characters`;
  return undefined;
}

function reservedRule(id: string): string {
  return `secret ${show(id)} cannot be delivered: DIR/${SECRETS_ENV_FILE} is the env file; deliver it from a subpath or rename it`;
}

function secretItem(item: string): Checked<AgentSecret> {
  const eq = item.indexOf("=");
  const id = eq < 0 ? item : item.slice(0, eq);
  if (!isSecretName(id)) {
    return {
      rule: `invalid secret ID ${show(id)}: IDs are path-like segments of letters, digits, '_', '.', '-', each starting with a letter or digit, separated by single '/', at most 256 characters`,
    };
  }
  const env = eq < 0 ? defaultEnvName(id) : item.slice(eq + 1);
  if (!ENV_NAME_RE.test(env)) {
    return { rule: `${show(item)}: environment variable name ${show(env)} must match ${ENV_NAME_PATTERN}` };
  }
  return { ok: { id, env } };
}

/** Conflicts between entries, each reported at the later entry's index. */
function secretConflicts(secrets: readonly AgentSecret[]): { index: number; rule: string }[] {
  const out: { index: number; rule: string }[] = [];
  secrets.forEach((s, i) => {
    const rule = fileRule(s.id);
    if (rule !== undefined) {
      out.push({ index: i, rule });
      return;
    }
    for (const earlier of secrets.slice(0, i)) {
      if (earlier.id === s.id) {
        out.push({ index: i, rule: `secret ${show(s.id)} is listed twice` });
        return;
      }
      if (earlier.env === s.env) {
        out.push({
          index: i,
          rule: `secrets ${show(earlier.id)} and ${show(s.id)} both use the variable ${s.env}; give one another name with ID=ENV_NAME`,
        });
        return;
      }
      const file = s.id.replaceAll("/", "_");
      if (earlier.id.replaceAll("/", "_") === file) {
        out.push({ index: i, rule: `secrets ${show(earlier.id)} and ${show(s.id)} would both be the file DIR/${file} ("/" becomes "_"); deliver only one` });
        return;
      }
    }
  });
  return out;
}

/**
 * Parses `--secrets ID[=ENV_NAME],…` (spaces around entries are ignored). ENV_NAME defaults to
 * {@link defaultEnvName}. Refuses invalid IDs or names, empty entries, an ID, a variable or a
 * file name ({@link fileNameOf}) given twice, and the ID `secrets.env`.
 * @throws CofferError E_USAGE naming the entry
 */
export function parseSecretIds(list: string): AgentSecret[] {
  if (list.trim() === "") throw usage(`--secrets is empty: give ${SECRETS_FORM}`);
  const secrets = list.split(",").map((raw, i) => {
    const item = raw.trim();
    if (item === "") throw usage(`--secrets: entry ${i + 1} is empty (a stray comma?); give ${SECRETS_FORM}`);
    return orThrow(secretItem(item), "--secrets: ");
  });
  const conflict = secretConflicts(secrets)[0];
  if (conflict !== undefined) throw usage(`--secrets: ${conflict.rule}`);
  return secrets;
}

/* --------------------------------------- on-change ---------------------------------------- */

function onChange(s: string): Checked<OnChange> {
  const bad = (why: string): Checked<OnChange> => ({ rule: `invalid on-change action ${show(s)}: ${why}` });
  if (s === "exit" || s === "none") return { ok: { kind: s } };
  if (s.startsWith("restart-unit:")) {
    const unit = s.slice("restart-unit:".length);
    if (!UNIT_NAME_RE.test(unit) || unit.startsWith("-") || unit.length > 255) {
      return bad(`unit name ${show(unit)} must match ${UNIT_NAME_PATTERN}, not start with "-" and have at most 255 characters`);
    }
    return { ok: { kind: "restart-unit", unit } };
  }
  if (s.startsWith("signal:")) {
    const raw = s.slice("signal:".length).toUpperCase();
    const name = raw.startsWith("SIG") ? raw : `SIG${raw}`;
    const signal = ON_CHANGE_SIGNALS.find((x) => x === name);
    if (signal === undefined) return bad("signal must be one of HUP, USR1, USR2, TERM, INT (with or without SIG)");
    return { ok: { kind: "signal", signal } };
  }
  if (s.startsWith("exec:")) {
    const command = s.slice("exec:".length);
    if (command.trim() === "") return bad("exec: needs a command, e.g. exec:/usr/local/bin/reload");
    if (command.includes("\0")) return bad("the command must not contain NUL");
    return { ok: { kind: "exec", command } };
  }
  return bad(`use ${ON_CHANGE_FORMS}`);
}

/**
 * Parses `--on-change`: `exit`, `none`, `restart-unit:NAME` (a systemd unit name),
 * `signal:NAME` (HUP, USR1, USR2, TERM or INT, with or without SIG, any case) or `exec:CMD`.
 * @throws CofferError E_USAGE naming the accepted forms
 */
export function parseOnChange(s: string): OnChange {
  return orThrow(onChange(s));
}

/* --------------------------------- interval, mode, owner ---------------------------------- */

function interval(s: string): Checked<number> {
  const r = checkDuration(s, { min: MIN_POLL_INTERVAL_MS, max: MAX_POLL_INTERVAL_MS });
  return "ok" in r ? r : { rule: `invalid interval ${show(s)}: ${r.rule}` };
}

/**
 * Parses `--poll-interval`: a duration (core/durations.ts: `30s`, `500ms`, `2m`), 100ms to 1h.
 * @returns milliseconds, between 100 and 3 600 000
 * @throws CofferError E_USAGE
 */
export function parseInterval(s: string): number {
  return orThrow(interval(s));
}

function mode(s: string): Checked<number> {
  const r = checkFileMode(s);
  return "ok" in r ? r : { rule: `invalid mode ${show(s)}: ${r.rule}` };
}

/**
 * Parses `--mode`: the file-mode rule of core/file-mode.ts (3-4 octal digits; the owner reads,
 * group and others do not write, no setuid/setgid/sticky bits), as for `.coffer.yml` files.
 * @throws CofferError E_USAGE naming the broken rule
 */
export function parseMode(s: string): number {
  return orThrow(mode(s));
}

function owner(s: string): Checked<string> {
  if (!OWNER_RE.test(s) || s.length > 32) {
    return { rule: `invalid owner ${show(s)}: a user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32 characters) or a numeric uid` };
  }
  return { ok: s };
}

/**
 * Checks `--owner`: a user name or a numeric uid (whether it exists is the agent's business).
 * @throws CofferError E_USAGE
 */
export function parseOwner(s: string): string {
  return orThrow(owner(s));
}

/* -------------------------------------- config file --------------------------------------- */

/**
 * Reads the agent config (`--config F`) and returns the settings of one service.
 *
 * The file holds `backends:` (name → `{ type: folder, dir }`, `{ type: vault, address, mount?,
 * namespace?, tokenEnv?, tokenFile? }`, `{ type: server, url, tokenEnv? }`, `{ type: store }` or
 * `{ type: env }`) and `services:`
 * (name → `{ backend, secrets: [ID or ID=ENV_NAME, …], override?, dir?, watch?, pollInterval?,
 * onChange?, mode?, owner? }`). `override:` replaces settings of the chosen backend (not its
 * type). The top level and every backend are checked; of `services:` only the chosen entry is
 * checked deeply, so a mistake in another service's entry does not stop this service. A variable
 * on the dangerous list (dangerous-env.ts: PATH, LD_*, …) is refused unless the service's
 * `allowDangerous: [NAME, …]` names it; the file may be at most 1 MiB (MAX_CONFIG_BYTES).
 * @throws CofferError E_CONFIG listing every problem as `file:line: rule`; for an unknown
 *   service, listing the services
 */
export function loadAgentConfig(path: string, service: string): AgentSettings {
  return parseAgentConfig(readConfigFile(path, "agent config file"), path, service);
}

/**
 * Parses and checks agent-config text (what {@link loadAgentConfig} does after reading).
 * @param file - the name messages show
 * @throws CofferError E_CONFIG listing every problem
 */
export function parseAgentConfig(text: string, file: string, service: string): AgentSettings {
  const { doc, lines } = parseYaml(text, file);
  const c = new Checker(file, doc, lines);
  const settings = c.root(doc.contents, service);
  c.throwIfAny();
  if (settings === undefined) throw new CofferError("E_INTERNAL", `${file}: the agent config was not checked`);
  return settings;
}

/** A backend as written: its type and its settings with their lines. */
interface Backend {
  type: ProviderSpec["type"];
  line: number;
  fields: Map<string, { value: string; line: number }>;
}

const BACKEND_TYPES = ["store", "folder", "env", "vault", "server"] as const;
const BACKEND_KEYS: Record<ProviderSpec["type"], readonly string[]> = {
  store: [],
  env: [],
  folder: ["dir"],
  vault: ["address", "mount", "namespace", "tokenEnv", "tokenFile"],
  server: ["url", "tokenEnv"],
};
const SERVICE_KEYS = ["backend", "override", "secrets", "allowDangerous", "dir", "watch", "pollInterval", "onChange", "mode", "owner"] as const;

/** The rule a backend setting breaks, if any. */
function fieldRule(key: string, value: string): string | undefined {
  switch (key) {
    case "dir":
    case "tokenFile":
      return value.startsWith("/") ? undefined : `${key} ${show(value)} must be an absolute path (starting with /)`;
    case "address":
      if (!validUrl(value)) return `address ${show(value)} must be an http:// or https:// URL`;
      return tokenTransportRule(value);
    case "url":
      if (!validServerUrl(value)) return `url ${show(value)} ${SERVER_URL_RULE}`;
      return tokenTransportRule(value);
    case "mount":
    case "namespace":
      return validMount(value) ? undefined : `${key} ${show(value)} must match ${SECRET_NAME_PATTERN}`;
    case "tokenEnv":
      return ENV_NAME_RE.test(value) ? undefined : `tokenEnv: environment variable name ${show(value)} must match ${ENV_NAME_PATTERN}`;
    default:
      return undefined;
  }
}

/** Walks the YAML tree with the rules of the agent config (the generic steps are {@link YamlChecker}'s). */
class Checker extends YamlChecker {
  root(contents: unknown, service: string): AgentSettings | undefined {
    if (contents === null || contents === undefined || (isScalar(contents) && contents.value === null)) {
      this.problem(1, "the file is empty; it needs backends: and services:");
      return undefined;
    }
    const map = this.asMap(contents, 1, "the top level");
    if (map === undefined) return undefined;
    const top = this.entries(map, "the top level");
    this.unknownKeys(top, ["backends", "services"], "the top level");

    const backends = new Map<string, Backend>();
    // undefined when backends: is missing or not a map (reported once, not again per service)
    let written: string[] | undefined;
    const backendsEntry = top.find((e) => e.key === "backends");
    if (backendsEntry === undefined) this.problem(1, "missing backends: a map of backend names to { type, … }");
    else written = this.backends(backendsEntry.value, backendsEntry.line, backends);

    const servicesEntry = top.find((e) => e.key === "services");
    if (servicesEntry === undefined) {
      this.problem(1, "missing services: a map of service names to { backend, secrets, … }");
      return undefined;
    }
    const servicesMap = this.asMap(servicesEntry.value, servicesEntry.line, "services");
    if (servicesMap === undefined) return undefined;
    const services = this.entries(servicesMap, "services");
    const chosen = services.find((s) => s.key === service);
    if (chosen === undefined) {
      const known = services.map((s) => s.key).join(", ") || "(none)";
      this.problem(servicesEntry.line, `unknown service ${show(service)}; services: ${known}`);
      return undefined;
    }
    if (!SERVICE_NAME_RE.test(service)) {
      this.problem(chosen.line, `service name ${show(service)} must match ${SERVICE_NAME_PATTERN}`);
      return undefined;
    }
    return this.service(service, chosen.value, chosen.line, backends, written);
  }

  /** Checks every backend; returns the names written (undefined when backends: is not a map). */
  backends(node: unknown, line: number, out: Map<string, Backend>): string[] | undefined {
    const map = this.asMap(node, line, "backends");
    if (map === undefined) return undefined;
    const written: string[] = [];
    for (const { key: name, line: nameLine, value } of this.entries(map, "backends")) {
      written.push(name);
      if (!PROVIDER_NAME_RE.test(name)) {
        this.problem(nameLine, `backend name ${show(name)} must match ${PROVIDER_NAME_PATTERN}`);
        continue;
      }
      const b = this.backend(name, value, nameLine);
      if (b !== undefined) out.set(name, b);
    }
    return written;
  }

  backend(name: string, node: unknown, line: number): Backend | undefined {
    const where = `backend ${show(name)}`;
    const map = this.asMap(node, line, where);
    if (map === undefined) return undefined;
    const keys = this.entries(map, where);
    const typeEntry = keys.find((k) => k.key === "type");
    if (typeEntry === undefined) {
      this.problem(line, `${where} needs type: one of ${BACKEND_TYPES.join(", ")}`);
      return undefined;
    }
    const typeText = this.asStringAt(typeEntry.value, typeEntry.line, `${where} type`);
    if (typeText === undefined) return undefined;
    const type = BACKEND_TYPES.find((t) => t === typeText.value);
    if (type === undefined) {
      this.problem(typeText.line, `${where} type ${show(typeText.value)} is unknown; types: ${BACKEND_TYPES.join(", ")}`);
      return undefined;
    }
    const before = this.problems.length;
    const fields = this.fields(keys.filter((k) => k !== typeEntry), type, `${where} (type ${type})`, ["type"]);
    if (this.problems.length > before) return undefined;
    if (type === "folder" && !fields.has("dir")) this.problem(line, `${where} (type folder) needs dir: an absolute directory path`);
    if (type === "vault" && !fields.has("address")) this.problem(line, `${where} (type vault) needs address: an http:// or https:// URL`);
    if (type === "server" && !fields.has("url")) this.problem(line, `${where} (type server) needs url: the http:// or https:// URL of a coffer server`);
    if (fields.has("tokenEnv") && fields.has("tokenFile")) {
      this.problem(line, `${where}: give tokenEnv or tokenFile, not both`);
    }
    if (this.problems.length > before) return undefined;
    return { type, line, fields };
  }

  /** The string settings of a backend of `type` (or of an override), checked one by one. */
  fields(
    keys: { key: string; line: number; value: unknown }[],
    type: ProviderSpec["type"],
    where: string,
    alsoAllowed: readonly string[],
  ): Map<string, { value: string; line: number }> {
    const allowed = BACKEND_KEYS[type];
    this.unknownKeys(keys, [...alsoAllowed, ...allowed], where);
    const out = new Map<string, { value: string; line: number }>();
    for (const { key, line, value } of keys) {
      if (!allowed.includes(key)) continue;
      const s = this.asStringAt(value, line, `${where} ${key}`);
      if (s === undefined) continue;
      const rule = fieldRule(key, s.value);
      if (rule !== undefined) this.problem(s.line, `${where} ${rule}`);
      else out.set(key, s);
    }
    return out;
  }

  service(name: string, node: unknown, line: number, backends: Map<string, Backend>, written: readonly string[] | undefined): AgentSettings | undefined {
    const where = `service ${show(name)}`;
    const map = this.asMap(node, line, where);
    if (map === undefined) return undefined;
    const keys = this.entries(map, where);
    this.unknownKeys(keys, SERVICE_KEYS, where);
    const get = (k: (typeof SERVICE_KEYS)[number]) => keys.find((e) => e.key === k);
    const before = this.problems.length;

    // backend + override
    let provider: ProviderSpec | undefined;
    let tokenFile: string | undefined;
    const backendEntry = get("backend");
    const overrideEntry = get("override");
    if (backendEntry === undefined) {
      this.problem(line, `${where} needs backend: the name of one of backends:`);
    } else {
      const b = this.asStringAt(backendEntry.value, backendEntry.line, `${where} backend`);
      const backend = b === undefined ? undefined : backends.get(b.value);
      // A backend written but broken has its problems reported already.
      if (b !== undefined && backend === undefined && written !== undefined && !written.includes(b.value)) {
        this.problem(b.line, `${where}: backend ${show(b.value)} is not in backends:; backends: ${written.join(", ") || "(none)"}`);
      }
      if (backend !== undefined) {
        const fields = new Map(backend.fields);
        if (overrideEntry !== undefined) {
          const om = this.asMap(overrideEntry.value, overrideEntry.line, `${where} override`);
          if (om !== undefined) {
            const ow = `${where} override (backend ${show(b?.value ?? "")}, type ${backend.type})`;
            const ok = this.entries(om, ow);
            const typeKey = ok.find((k) => k.key === "type");
            if (typeKey !== undefined) this.problem(typeKey.line, `${ow}: type cannot be overridden; choose another backend`);
            const given = this.fields(ok.filter((k) => k !== typeKey), backend.type, ow, []);
            if (given.has("tokenEnv") && given.has("tokenFile")) this.problem(overrideEntry.line, `${ow}: give tokenEnv or tokenFile, not both`);
            for (const [k, v] of given) {
              if (k === "tokenEnv") fields.delete("tokenFile");
              if (k === "tokenFile") fields.delete("tokenEnv");
              fields.set(k, v);
            }
          }
        }
        const f = (k: string): string | undefined => fields.get(k)?.value;
        switch (backend.type) {
          case "store":
          case "env":
            provider = { type: backend.type };
            break;
          case "folder":
            provider = { type: "folder", dir: f("dir") ?? "" };
            break;
          case "vault": {
            const namespace = f("namespace");
            const tokenEnv = f("tokenEnv");
            tokenFile = f("tokenFile");
            provider = {
              type: "vault",
              address: f("address") ?? "",
              mount: f("mount") ?? DEFAULT_VAULT_MOUNT,
              ...(namespace !== undefined && { namespace }),
              ...(tokenEnv !== undefined && { tokenEnv }),
            };
            break;
          }
          case "server": {
            const tokenEnv = f("tokenEnv");
            provider = { type: "server", url: f("url") ?? "", ...(tokenEnv !== undefined && { tokenEnv }) };
            break;
          }
        }
      }
    }

    // allowDangerous, before the secrets it lets through
    const allowed: string[] = [];
    const allowEntry = get("allowDangerous");
    if (allowEntry !== undefined) {
      const seq = this.deref(allowEntry.value, allowEntry.line);
      if (!isSeq(seq)) {
        if (seq !== undefined || allowEntry.value === null) {
          this.problem(seq === null || seq === undefined ? allowEntry.line : this.line(seq), `${where} allowDangerous must be a list of variable names, got ${this.kind(seq)}`);
        }
      } else {
        for (const item of seq.items) {
          const s = this.asStringAt(item, this.line(seq), `${where} allowDangerous entry`);
          if (s === undefined) continue;
          if (!isDangerousEnvName(s.value)) this.problem(s.line, `${where} allowDangerous: ${show(s.value)} is not on the dangerous list and needs no opt-in; remove it`);
          else allowed.push(s.value);
        }
      }
    }

    // secrets
    const secrets: AgentSecret[] = [];
    const secretLines: number[] = [];
    const secretsEntry = get("secrets");
    if (secretsEntry === undefined) {
      this.problem(line, `${where} needs secrets: a list of ID or ID=ENV_NAME`);
    } else {
      const seq = this.deref(secretsEntry.value, secretsEntry.line);
      if (!isSeq(seq)) {
        if (seq !== undefined || secretsEntry.value === null) {
          this.problem(seq === null || seq === undefined ? secretsEntry.line : this.line(seq), `${where} secrets must be a list of ID or ID=ENV_NAME, got ${this.kind(seq)}`);
        }
      } else {
        if (seq.items.length === 0) this.problem(secretsEntry.line, `${where} secrets is empty; list at least one ID`);
        for (const item of seq.items) {
          const s = this.asStringAt(item, this.line(seq), `${where} secrets entry`);
          if (s === undefined) continue;
          const r = secretItem(s.value.trim());
          if ("rule" in r) this.problem(s.line, `${where} secrets: ${r.rule}`);
          else if (isDangerousEnvName(r.ok.env) && !allowed.includes(r.ok.env)) {
            this.problem(s.line, `${where} secrets: ${dangerousEnvRule(r.ok.env, `the service's allowDangerous: [${r.ok.env}]`)}; or give it another name with ID=ENV_NAME`);
          } else {
            secrets.push(r.ok);
            secretLines.push(s.line);
          }
        }
        for (const { index, rule } of secretConflicts(secrets)) {
          this.problem(secretLines[index] ?? secretsEntry.line, `${where} secrets: ${rule}`);
        }
      }
    }

    const out: Omit<AgentSettings, "provider" | "secrets"> = {};
    const str = (k: (typeof SERVICE_KEYS)[number]) => {
      const e = get(k);
      return e === undefined ? undefined : this.asStringAt(e.value, e.line, `${where} ${k}`);
    };
    const dir = str("dir");
    if (dir !== undefined) {
      if (!dir.value.startsWith("/")) this.problem(dir.line, `${where} dir ${show(dir.value)} must be an absolute path (starting with /)`);
      else out.dir = dir.value;
    }
    const watchEntry = get("watch");
    if (watchEntry !== undefined) {
      const w = this.deref(watchEntry.value, watchEntry.line);
      if (isScalar(w) && typeof w.value === "boolean") out.watch = w.value;
      else if (w !== undefined || watchEntry.value === null) {
        this.problem(w === null || w === undefined ? watchEntry.line : this.line(w), `${where} watch must be true or false, got ${this.kind(w)}`);
      }
    }
    const poll = str("pollInterval");
    if (poll !== undefined) {
      const r = interval(poll.value);
      if ("rule" in r) this.problem(poll.line, `${where} pollInterval: ${r.rule}`);
      else out.pollIntervalMs = r.ok;
    }
    const change = str("onChange");
    if (change !== undefined) {
      const r = onChange(change.value);
      if ("rule" in r) this.problem(change.line, `${where} onChange: ${r.rule}`);
      else out.onChange = r.ok;
    }
    const modeEntry = get("mode");
    if (modeEntry !== undefined) {
      const m = this.deref(modeEntry.value, modeEntry.line);
      if (isScalar(m) && typeof m.value === "number") {
        this.problem(this.line(m), `${where} mode ${unquotedModeRule(m.source ?? String(m.value))}`);
      } else {
        const s = this.asStringAt(modeEntry.value, modeEntry.line, `${where} mode`);
        if (s !== undefined) {
          const r = mode(s.value);
          if ("rule" in r) this.problem(s.line, `${where} mode: ${r.rule}`);
          else out.mode = r.ok;
        }
      }
    }
    const own = str("owner");
    if (own !== undefined) {
      const r = owner(own.value);
      if ("rule" in r) this.problem(own.line, `${where} owner: ${r.rule}`);
      else out.owner = r.ok;
    }

    if (this.problems.length > before || provider === undefined) return undefined;
    return { provider, ...(tokenFile !== undefined && { tokenFile }), secrets, ...out };
  }
}

function validMount(s: string): boolean {
  return MOUNT_RE.test(s) && !s.includes("..");
}

function validUrl(s: string): boolean {
  if (!VAULT_ADDRESS_RE.test(s)) return false;
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
  } catch {
    return false;
  }
}
