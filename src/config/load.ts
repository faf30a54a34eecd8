/**
 * The project file `.coffer.yml` (docs/design.md §7): finding it, parsing it with line numbers,
 * checking every rule by hand (no ajv at runtime: startup cost), and turning one environment
 * into a {@link DeliveryPlan}. Every problem is a CofferError `E_CONFIG` whose message names
 * the file, the line and the rule; all problems of a file are reported at once.
 *
 * The same rules are written as a JSON Schema for editors in `schema.ts`; a test keeps the two
 * from drifting.
 */
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import { isAlias, isMap, isScalar, isSeq } from "yaml";
import type { Pair } from "yaml";
import { CofferError } from "../errors.ts";
import type { ProviderSpec, SecretRef } from "../providers/provider.ts";
import { ENV_NAME_PATTERN, isSecretName, SECRET_NAME_PATTERN } from "../core/names.ts";
import { dangerousEnvRule, isDangerousEnvName } from "./dangerous-env.ts";
import { tokenTransportRule } from "../core/token-transport.ts";
import { checkFileMode, unquotedModeRule } from "../core/file-mode.ts";
import type { DeliveryPlan, EnvDelivery, FileDelivery } from "./plan.ts";
import { readConfigFile } from "./read.ts";
export { MAX_CONFIG_BYTES } from "./read.ts";
import { assertTrustedProjectFile, projectDirs, type TrustOptions } from "./trust.ts";
import { nameList, parseYaml, show, YamlChecker } from "./yaml-checker.ts";
import type { WorkMeter } from "./yaml-checker.ts";

/** The file names looked for, in this order, in each directory. */
export const CONFIG_FILE_NAMES = [".coffer.yml", ".coffer.yaml"] as const;
/** A provider's name in `providers:`. */
export const PROVIDER_NAME_PATTERN = "^[a-z][a-z0-9_-]*$";
/** An environment's name in `environments:`. */
export const ENVIRONMENT_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";
/** A Vault address. */
export const VAULT_ADDRESS_PATTERN = "^https?://[^\\s/?#@]+(/[^\\s?#]*)?$";
/**
 * A coffer server's URL (provider type `server`): http or https, a host, an optional path; no
 * credentials, query or fragment.
 */
export const SERVER_URL_PATTERN = "^https?://[^\\s/?#@]+(/[^\\s?#]*)?$";
/** The variable a `server` provider reads its API token from, unless `tokenEnv` says otherwise. */
export const DEFAULT_SERVER_TOKEN_ENV = "COFFER_TOKEN";
/** The provider types of `providers:`. */
export const PROVIDER_TYPES = ["store", "folder", "env", "vault", "server"] as const;
/** The name of the local store provider, always present. */
export const STORE_PROVIDER = "store";
/** The default file mode of a delivered file. */
export const DEFAULT_FILE_MODE = 0o400;
/** The default KV v2 mount of a vault provider. */
export const DEFAULT_VAULT_MOUNT = "secret";

const ENV_NAME_RE = new RegExp(ENV_NAME_PATTERN);
const PROVIDER_NAME_RE = new RegExp(PROVIDER_NAME_PATTERN);
const ENVIRONMENT_NAME_RE = new RegExp(ENVIRONMENT_NAME_PATTERN);
const VAULT_ADDRESS_RE = new RegExp(VAULT_ADDRESS_PATTERN);
const SERVER_URL_RE = new RegExp(SERVER_URL_PATTERN);
const MOUNT_RE = new RegExp(SECRET_NAME_PATTERN);

/** One environment as written in the file (before `extends` is resolved). */
export interface EnvironmentConfig {
  name: string;
  /** line of the environment's key */
  line: number;
  /** the parent environment's name, if any */
  extends?: string;
  /** line of the `extends:` value */
  extendsLine?: number;
  /** declared env entries, in order */
  env: EnvDelivery[];
  /** declared file entries, in order */
  files: FileDelivery[];
}

/** A checked `.coffer.yml`. */
export interface ProjectConfig {
  /** the file's path, as given to {@link loadConfig} */
  file: string;
  /** the `default:` environment, if any */
  defaultEnvironment?: string;
  /** every provider by name, `store` included; vault `mount` defaulted */
  providers: Map<string, ProviderSpec>;
  /** environments by name, in file order */
  environments: Map<string, EnvironmentConfig>;
  /** `allowDangerous:`: the variables on the dangerous list (dangerous-env.ts) the file may set */
  allowDangerous?: readonly string[];
}

/**
 * Finds the project file: `.coffer.yml` (or `.coffer.yaml`) in `cwd` or the nearest parent, looking
 * no higher than the user's home, a filesystem boundary or a shared sticky directory such as
 * `/tmp` (see {@link projectDirs}). Whether the file found may be obeyed is {@link loadConfig}'s check.
 * @returns the file's absolute path
 * @throws CofferError E_CONFIG when there is none
 */
export function findConfig(cwd: string, options: TrustOptions = {}): string {
  const start = resolve(cwd);
  let last = start;
  for (const dir of projectDirs(start, options)) {
    last = dir;
    for (const name of CONFIG_FILE_NAMES) {
      const candidate = join(dir, name);
      if (isFile(candidate, options)) return candidate;
    }
  }
  const upTo = last === start ? "" : ` or its parents up to ${last}`;
  throw new CofferError(
    "E_CONFIG",
    `no .coffer.yml in ${start}${upTo} (the search stops at your home, a filesystem boundary, or a shared directory such as /tmp); create one or pass --config F`,
  );
}

function isFile(path: string, options: TrustOptions): boolean {
  if (options.stat !== undefined) return options.stat(path)?.isFile() === true;
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads, parses and checks a project file. The file must be trusted: owned by the caller or
 * root, not writable by others, in such a directory, or in one `coffer trust` recorded
 * (see `trust.ts`); and at most {@link MAX_CONFIG_BYTES} long.
 * @param path - the file; messages show it as given
 * @throws PermissionsError E_PERMISSIONS for an untrusted file; CofferError E_CONFIG listing
 *   every problem as `file:line: rule`, joined by "; "
 */
export function loadConfig(path: string, options: TrustOptions = {}): ProjectConfig {
  const text = readConfigFile(path, "config file", (st) => assertTrustedProjectFile(path, st, options));
  return parseConfig(text, path);
}

/**
 * Parses and checks project-file text (what {@link loadConfig} does after reading).
 * @param file - the name messages show
 * @param meter - counts the steps of coffer's passes over the file (tests check they are linear)
 * @throws CofferError E_CONFIG listing every problem
 */
export function parseConfig(text: string, file: string, meter?: WorkMeter): ProjectConfig {
  const { doc, lines } = parseYaml(text, file, meter);
  const checker = new Checker(file, doc, lines);
  try {
    const config = checker.root(doc.contents);
    checker.throwIfAny();
    return config;
  } finally {
    if (meter !== undefined) meter.steps += checker.meter.steps;
  }
}

/** The names of the environments, in file order. */
export function listEnvironments(config: ProjectConfig): string[] {
  return [...config.environments.keys()];
}

/**
 * Chooses an environment and resolves it into a plan.
 *
 * The environment is `environment` if given, else `COFFER_ENV` from `env`, else the file's
 * `default:`, else the only one when there is exactly one. `extends` chains are resolved: the
 * child's entry for a variable replaces the parent's (also moving it between env and files).
 * @throws CofferError E_CONFIG for an unknown or ambiguous environment, an unknown parent or a cycle
 */
export function planFor(config: ProjectConfig, environment?: string, env: NodeJS.ProcessEnv = process.env): DeliveryPlan {
  const names = listEnvironments(config);
  const known = nameList(names);
  let name: string;
  let source: string;
  const fromEnv = env["COFFER_ENV"];
  if (environment !== undefined) {
    name = environment;
    source = "";
  } else if (fromEnv !== undefined && fromEnv !== "") {
    name = fromEnv;
    source = " (from COFFER_ENV)";
  } else if (config.defaultEnvironment !== undefined) {
    name = config.defaultEnvironment;
    source = " (from default:)";
  } else if (names.length === 1 && names[0] !== undefined) {
    name = names[0];
    source = "";
  } else {
    throw new CofferError(
      "E_CONFIG",
      `${config.file}: which environment? choose one with --env NAME, COFFER_ENV or default: in the file; environments: ${known}`,
    );
  }
  if (!config.environments.has(name)) {
    throw new CofferError("E_CONFIG", `${config.file}: unknown environment ${JSON.stringify(name)}${source}; environments: ${known}`);
  }

  // Walk up the chain, then apply from the root down.
  const chain: EnvironmentConfig[] = [];
  const seen: string[] = [];
  const seenSet = new Set<string>();
  let current: string | undefined = name;
  let from: EnvironmentConfig | undefined;
  while (current !== undefined) {
    if (seenSet.has(current)) {
      throw new CofferError("E_CONFIG", `${config.file}:${from?.extendsLine ?? 0}: ${cycleRule([...seen, current])}`);
    }
    const e = config.environments.get(current);
    if (e === undefined) {
      throw new CofferError(
        "E_CONFIG",
        `${config.file}:${from?.extendsLine ?? 0}: environment ${JSON.stringify(from?.name)} extends unknown environment ${JSON.stringify(current)}; environments: ${known}`,
      );
    }
    seen.push(current);
    seenSet.add(current);
    chain.push(e);
    from = e;
    current = e.extends;
  }

  const envs = new Map<string, EnvDelivery>();
  const files = new Map<string, FileDelivery>();
  for (const e of chain.reverse()) {
    for (const d of e.env) {
      files.delete(d.variable);
      envs.set(d.variable, d);
    }
    for (const d of e.files) {
      envs.delete(d.variable);
      files.set(d.variable, d);
    }
  }
  const providers: Record<string, ProviderSpec> = { [STORE_PROVIDER]: { type: "store" } };
  for (const d of [...envs.values(), ...files.values()]) {
    const spec = config.providers.get(d.ref.provider);
    if (spec !== undefined) providers[d.ref.provider] = spec;
  }
  const dangerous = [...envs.keys(), ...files.keys()].filter(isDangerousEnvName);
  return {
    file: config.file,
    environment: name,
    ...(dangerous.length > 0 && { dangerous }),
    providers,
    env: [...envs.values()].map((d) => ({ ...d, ref: { ...d.ref } })),
    files: [...files.values()].map((d) => ({ ...d, ref: { ...d.ref } })),
  };
}

function cycleRule(chain: string[]): string {
  return `extends cycle: ${chain.join(" → ")}; an environment may not extend itself, directly or through others`;
}

/* ------------------------------------------------------------------------------------------ */

/** Walks the YAML tree with the rules of `.coffer.yml`. */
class Checker extends YamlChecker {
  // The providers listed in "not a configured provider" messages: built once, not per reference.
  #knownProviders: string | undefined;
  #allow = new Set<string>();

  root(contents: unknown): ProjectConfig {
    const config: ProjectConfig = { file: this.file, providers: new Map(), environments: new Map() };
    config.providers.set(STORE_PROVIDER, { type: "store" });
    if (contents === null || contents === undefined || (isScalar(contents) && contents.value === null)) {
      this.problem(1, "the file is empty; it needs an environments: map (see `coffer config schema`)");
      return config;
    }
    const map = this.asMap(contents, 1, "the top level");
    if (map === undefined) return config;
    const top = this.entries(map, "the top level");
    this.unknownKeys(top, ["providers", "environments", "default", "allowDangerous"], "the top level");

    const allow = top.find((e) => e.key === "allowDangerous");
    if (allow !== undefined) {
      config.allowDangerous = this.allowDangerous(allow.value, allow.line);
      this.#allow = new Set(config.allowDangerous);
    }

    const providers = top.find((e) => e.key === "providers");
    if (providers !== undefined) this.providers(providers.value, providers.line, config);

    const environments = top.find((e) => e.key === "environments");
    if (environments === undefined) {
      this.problem(1, "missing environments: a map of environment names to their env: and files:");
    } else {
      this.environments(environments.value, environments.line, config);
    }

    const def = top.find((e) => e.key === "default");
    if (def !== undefined) {
      const name = this.asString(def.value, def.line, "default");
      if (name !== undefined) {
        if (!config.environments.has(name)) {
          const known = nameList(config.environments.keys());
          this.problem(this.line(def.value), `default names unknown environment ${show(name)}; environments: ${known}`);
        } else {
          config.defaultEnvironment = name;
        }
      }
    }
    this.extendsChains(config);
    return config;
  }

  /** `allowDangerous: [NAME, …]`: names on the dangerous list only. */
  allowDangerous(node: unknown, line: number): string[] {
    const seq = this.deref(node, line);
    if (!isSeq(seq)) {
      if (seq !== undefined || node === null) {
        this.problem(seq === null || seq === undefined ? line : this.line(seq), `allowDangerous must be a list of variable names, got ${this.kind(seq)}`);
      }
      return [];
    }
    const names: string[] = [];
    for (const item of seq.items) {
      const s = this.asStringAt(item, this.line(seq), "allowDangerous entry");
      if (s === undefined) continue;
      if (!ENV_NAME_RE.test(s.value)) this.problem(s.line, `allowDangerous: environment variable name ${show(s.value)} must match ${ENV_NAME_PATTERN}`);
      else if (!isDangerousEnvName(s.value)) this.problem(s.line, `allowDangerous: ${s.value} is not on the dangerous list and needs no opt-in; remove it`);
      else names.push(s.value);
    }
    return names;
  }

  providers(node: unknown, line: number, config: ProjectConfig): void {
    const map = this.asMap(node, line, "providers");
    if (map === undefined) return;
    for (const { key: name, line: nameLine, value } of this.entries(map, "providers")) {
      if (name === STORE_PROVIDER) {
        this.problem(nameLine, `provider name "store" is reserved: the local store is always there as store; remove it or choose another name`);
        continue;
      }
      if (!PROVIDER_NAME_RE.test(name)) {
        this.problem(nameLine, `provider name ${show(name)} must match ${PROVIDER_NAME_PATTERN}`);
        continue;
      }
      const spec = this.providerSpec(name, value, nameLine);
      if (spec !== undefined) config.providers.set(name, spec);
    }
  }

  providerSpec(name: string, node: unknown, line: number): ProviderSpec | undefined {
    const where = `provider ${show(name)}`;
    const map = this.asMap(node, line, where);
    if (map === undefined) return undefined;
    const keys = this.entries(map, where);
    const get = (k: string) => keys.find((e) => e.key === k);
    const typeEntry = get("type");
    if (typeEntry === undefined) {
      this.problem(line, `${where} needs type: one of ${PROVIDER_TYPES.join(", ")}`);
      return undefined;
    }
    const type = this.asString(typeEntry.value, typeEntry.line, `${where} type`);
    if (type === undefined) return undefined;
    const str = (k: string): string | undefined => {
      const e = get(k);
      return e === undefined ? undefined : this.asString(e.value, e.line, `${where} ${k}`);
    };
    switch (type) {
      case "store":
      case "env":
        this.unknownKeys(keys, ["type"], `${where} (type ${type})`);
        return { type };
      case "folder": {
        this.unknownKeys(keys, ["type", "dir"], `${where} (type folder)`);
        if (get("dir") === undefined) {
          this.problem(line, `${where} (type folder) needs dir: an absolute directory path`);
          return undefined;
        }
        const dir = str("dir");
        if (dir === undefined) return undefined;
        if (!dir.startsWith("/")) {
          this.problem(this.line(get("dir")?.value), `${where} dir ${show(dir)} must be an absolute path (starting with /)`);
          return undefined;
        }
        return { type: "folder", dir };
      }
      case "vault": {
        this.unknownKeys(keys, ["type", "address", "mount", "namespace", "tokenEnv"], `${where} (type vault)`);
        let ok = true;
        if (get("address") === undefined) {
          this.problem(line, `${where} (type vault) needs address: an http:// or https:// URL`);
          ok = false;
        }
        const address = str("address");
        if (address !== undefined && !validUrl(address)) {
          this.problem(this.line(get("address")?.value), `${where} address ${show(address)} must be an http:// or https:// URL`);
          ok = false;
        } else if (address !== undefined && tokenTransportRule(address) !== undefined) {
          this.problem(this.line(get("address")?.value), `${where} ${tokenTransportRule(address)}`);
          ok = false;
        }
        const mount = str("mount");
        if (mount !== undefined && !MOUNT_RE.test(mount)) {
          this.problem(this.line(get("mount")?.value), `${where} mount ${show(mount)} must match ${SECRET_NAME_PATTERN}`);
          ok = false;
        }
        const namespace = str("namespace");
        if (namespace !== undefined && !MOUNT_RE.test(namespace)) {
          this.problem(this.line(get("namespace")?.value), `${where} namespace ${show(namespace)} must match ${SECRET_NAME_PATTERN}`);
          ok = false;
        }
        const tokenEnv = str("tokenEnv");
        if (tokenEnv !== undefined && !ENV_NAME_RE.test(tokenEnv)) {
          this.problem(
            this.line(get("tokenEnv")?.value),
            `${where} tokenEnv: environment variable name ${show(tokenEnv)} must match ${ENV_NAME_PATTERN}`,
          );
          ok = false;
        }
        if (!ok || address === undefined) return undefined;
        if ((get("mount") !== undefined && mount === undefined) || (get("namespace") !== undefined && namespace === undefined)) return undefined;
        if (get("tokenEnv") !== undefined && tokenEnv === undefined) return undefined;
        return {
          type: "vault",
          address,
          mount: mount ?? DEFAULT_VAULT_MOUNT,
          ...(namespace !== undefined && { namespace }),
          ...(tokenEnv !== undefined && { tokenEnv }),
        };
      }
      case "server": {
        this.unknownKeys(keys, ["type", "url", "tokenEnv"], `${where} (type server)`);
        let ok = true;
        if (get("url") === undefined) {
          this.problem(line, `${where} (type server) needs url: the http:// or https:// URL of a coffer server`);
          ok = false;
        }
        const url = str("url");
        if (url !== undefined && !validServerUrl(url)) {
          this.problem(this.line(get("url")?.value), `${where} url ${show(url)} ${SERVER_URL_RULE}`);
          ok = false;
        } else if (url !== undefined && tokenTransportRule(url) !== undefined) {
          this.problem(this.line(get("url")?.value), `${where} ${tokenTransportRule(url)}`);
          ok = false;
        }
        const tokenEnv = str("tokenEnv");
        if (tokenEnv !== undefined && !ENV_NAME_RE.test(tokenEnv)) {
          this.problem(
            this.line(get("tokenEnv")?.value),
            `${where} tokenEnv: environment variable name ${show(tokenEnv)} must match ${ENV_NAME_PATTERN}`,
          );
          ok = false;
        }
        if (!ok || url === undefined) return undefined;
        if (get("tokenEnv") !== undefined && tokenEnv === undefined) return undefined;
        return { type: "server", url, ...(tokenEnv !== undefined && { tokenEnv }) };
      }
      default:
        this.problem(this.line(typeEntry.value), `${where} type ${show(type)} is unknown; types: ${PROVIDER_TYPES.join(", ")}`);
        return undefined;
    }
  }

  environments(node: unknown, line: number, config: ProjectConfig): void {
    const map = this.asMap(node, line, "environments");
    if (map === undefined) return;
    const entries = this.entries(map, "environments");
    if (entries.length === 0) this.problem(line, "environments is empty; define at least one environment");
    for (const { key: name, line: nameLine, value } of entries) {
      if (!ENVIRONMENT_NAME_RE.test(name)) {
        this.problem(nameLine, `environment name ${show(name)} must match ${ENVIRONMENT_NAME_PATTERN}`);
        continue;
      }
      const e = this.environment(name, value, nameLine, config);
      if (e !== undefined) config.environments.set(name, e);
    }
  }

  environment(name: string, node: unknown, line: number, config: ProjectConfig): EnvironmentConfig | undefined {
    const where = `environment ${show(name)}`;
    const map = this.asMap(node, line, where);
    if (map === undefined) return undefined;
    const keys = this.entries(map, where);
    this.unknownKeys(keys, ["env", "files", "extends"], where);
    const out: EnvironmentConfig = { name, line, env: [], files: [] };

    const ext = keys.find((k) => k.key === "extends");
    if (ext !== undefined) {
      const parent = this.asString(ext.value, ext.line, `${where} extends`);
      if (parent !== undefined) {
        if (!ENVIRONMENT_NAME_RE.test(parent)) {
          this.problem(this.line(ext.value), `${where} extends ${show(parent)}: environment names must match ${ENVIRONMENT_NAME_PATTERN}`);
        } else {
          out.extends = parent;
          out.extendsLine = this.line(ext.value);
        }
      }
    }

    const envKey = keys.find((k) => k.key === "env");
    if (envKey !== undefined) {
      const envMap = this.asMap(envKey.value, envKey.line, `${where} env`);
      if (envMap !== undefined) {
        for (const { key: variable, line: varLine, value } of this.entries(envMap, `${where} env`)) {
          if (!this.variableName(variable, varLine)) continue;
          const ref = this.ref(value, varLine, `${variable}`, config, false);
          if (ref !== undefined) out.env.push({ variable, ref: ref.ref, line: varLine });
        }
      }
    }

    const filesKey = keys.find((k) => k.key === "files");
    if (filesKey !== undefined) {
      const filesMap = this.asMap(filesKey.value, filesKey.line, `${where} files`);
      if (filesMap !== undefined) {
        const envVars = new Set(envKey === undefined ? [] : this.namesIn(envKey.value));
        for (const { key: variable, line: varLine, value } of this.entries(filesMap, `${where} files`)) {
          if (!this.variableName(variable, varLine)) continue;
          if (envVars.has(variable)) {
            this.problem(varLine, `variable ${variable} is in both env and files of ${where}; keep one`);
            continue;
          }
          const ref = this.ref(value, varLine, `${variable}`, config, true);
          if (ref !== undefined) out.files.push({ variable, ref: ref.ref, mode: ref.mode ?? DEFAULT_FILE_MODE, line: varLine });
        }
      }
    }
    return out;
  }

  /** Key names of a map node, without reporting problems (they are reported elsewhere). */
  namesIn(node: unknown): string[] {
    let n = node;
    for (let i = 0; i < 16 && isAlias(n); i++) n = this.resolveAlias(n);
    if (!isMap(n)) return [];
    return (n.items as Pair<unknown, unknown>[]).flatMap((p) => {
      const k = p.key;
      return isScalar(k) ? [typeof k.value === "string" ? k.value : (k.source ?? String(k.value))] : [];
    });
  }

  variableName(name: string, line: number): boolean {
    if (!ENV_NAME_RE.test(name)) {
      this.problem(line, `environment variable name ${show(name)} must match ${ENV_NAME_PATTERN}`);
      return false;
    }
    if (isDangerousEnvName(name) && !this.#allow.has(name)) {
      this.problem(line, dangerousEnvRule(name, `the top-level allowDangerous: [${name}]`));
      return false;
    }
    return true;
  }

  /** A reference (and a file mode when `file`); problems name `variable`. */
  ref(
    node: unknown,
    line: number,
    variable: string,
    config: ProjectConfig,
    file: boolean,
  ): { ref: SecretRef; mode?: number } | undefined {
    const n = this.deref(node, line);
    if (n === undefined && node !== null && node !== undefined) return undefined;
    if (isScalar(n) && typeof n.value === "string") {
      const name = n.value;
      if (!isSecretName(name)) {
        this.problem(this.line(n), `${variable}: invalid secret name ${show(name)}: ${SECRET_NAME_RULE}`);
        return undefined;
      }
      return { ref: { provider: STORE_PROVIDER, path: name } };
    }
    if (!isMap(n)) {
      const what = file ? "a secret name or { secret, from?, key?, version?, mode? }" : "a secret name or { secret, from?, key?, version? }";
      const hint = isScalar(n) && n.value !== null && typeof n.source === "string" ? ` (quote it: "${n.source}")` : "";
      this.problem(n === null || n === undefined ? line : this.line(n), `${variable} must be ${what}, got ${this.kind(n)}${hint}`);
      return undefined;
    }
    const keys = this.entries(n, variable);
    const allowed = file ? ["from", "secret", "path", "key", "version", "mode"] : ["from", "secret", "path", "key", "version"];
    const before = this.problems.length;
    const modeInEnv = file ? undefined : keys.find((k) => k.key === "mode");
    if (modeInEnv !== undefined) this.problem(modeInEnv.line, `${variable}: mode only applies to files:, not env:`);
    this.unknownKeys(
      keys.filter((k) => k !== modeInEnv),
      allowed,
      variable,
    );
    const get = (k: string) => keys.find((e) => e.key === k);

    let provider = STORE_PROVIDER;
    const fromEntry = get("from");
    if (fromEntry !== undefined) {
      const from = this.asString(fromEntry.value, fromEntry.line, `${variable} from`);
      if (from !== undefined) {
        if (!config.providers.has(from)) {
          const known = (this.#knownProviders ??= nameList(config.providers.keys()));
          this.problem(this.line(fromEntry.value), `${variable}: from: ${show(from)} is not a configured provider; providers: ${known}`);
        } else {
          provider = from;
        }
      }
    }
    const spec = config.providers.get(provider);

    const secretEntry = get("secret");
    const pathEntry = get("path");
    let path: string | undefined;
    if (secretEntry !== undefined && pathEntry !== undefined) {
      this.problem(pathEntry.line, `${variable}: give either secret or path (they are synonyms), not both`);
    } else if (secretEntry === undefined && pathEntry === undefined) {
      this.problem(this.line(n), `${variable} needs secret: (or path:) naming the value in its provider`);
    } else {
      const e = (secretEntry ?? pathEntry)!;
      path = this.asString(e.value, e.line, `${variable} ${e.key}`);
      if (path !== undefined) {
        const at = this.line(e.value);
        if (spec?.type === "store" || spec?.type === "folder" || spec?.type === "server") {
          if (!isSecretName(path)) {
            this.problem(at, `${variable}: invalid secret name ${show(path)}: ${SECRET_NAME_RULE}`);
            path = undefined;
          }
        } else if (spec?.type === "env") {
          if (!ENV_NAME_RE.test(path)) {
            this.problem(at, `${variable}: environment variable name ${show(path)} (provider ${provider}) must match ${ENV_NAME_PATTERN}`);
            path = undefined;
          }
        } else if (path.length === 0) {
          this.problem(at, `${variable}: ${e.key} must not be empty`);
          path = undefined;
        }
      }
    }

    const keyEntry = get("key");
    let key: string | undefined;
    if (keyEntry !== undefined) {
      key = this.asString(keyEntry.value, keyEntry.line, `${variable} key`);
      if (key !== undefined && key.length === 0) {
        this.problem(this.line(keyEntry.value), `${variable}: key must not be empty`);
        key = undefined;
      } else if (key !== undefined && spec !== undefined && spec.type !== "vault") {
        this.problem(keyEntry.line, `${variable}: key only applies to vault providers (provider ${provider} is type ${spec.type})`);
        key = undefined;
      }
    }

    const versionEntry = get("version");
    let version: number | undefined;
    if (versionEntry !== undefined) {
      const v = this.deref(versionEntry.value, versionEntry.line);
      if (isScalar(v) && typeof v.value === "number" && Number.isSafeInteger(v.value) && v.value >= 1) {
        version = v.value;
      } else if (v !== undefined || versionEntry.value === null) {
        this.problem(v === null || v === undefined ? versionEntry.line : this.line(v), `${variable}: version must be a positive integer, got ${this.kind(v)}`);
      }
    }

    let mode: number | undefined;
    const modeEntry = file ? get("mode") : undefined;
    if (modeEntry !== undefined) {
      const m = this.deref(modeEntry.value, modeEntry.line);
      if (isScalar(m) && typeof m.value === "string") {
        mode = this.fileMode(m.value, this.line(m), variable);
      } else if (isScalar(m) && typeof m.value === "number") {
        this.problem(this.line(m), `${variable}: mode ${unquotedModeRule(m.source ?? String(m.value))}`);
      } else if (m !== undefined || modeEntry.value === null) {
        this.problem(m === null || m === undefined ? modeEntry.line : this.line(m), `${variable}: mode must be a string of 3-4 octal digits, e.g. "0400", got ${this.kind(m)}`);
      }
    }

    if (this.problems.length > before || path === undefined) return undefined;
    const ref: SecretRef = {
      provider,
      path,
      ...(key !== undefined && { key }),
      ...(version !== undefined && { version }),
    };
    return { ref, ...(mode !== undefined && { mode }) };
  }

  fileMode(text: string, line: number, variable: string): number | undefined {
    const r = checkFileMode(text);
    if ("ok" in r) return r.ok;
    this.problem(line, `${variable}: mode ${show(text)} ${r.rule}`);
    return undefined;
  }

  /**
   * Unknown parents and cycles, each reported once with the `extends:` line. Each environment is
   * walked once (a file of thousands of environments in one chain stays linear).
   */
  extendsChains(config: ProjectConfig): void {
    const known = nameList(config.environments.keys());
    for (const e of config.environments.values()) {
      this.meter.steps++;
      if (e.extends !== undefined && !config.environments.has(e.extends)) {
        this.problem(e.extendsLine ?? e.line, `environment ${show(e.name)} extends unknown environment ${show(e.extends)}; environments: ${known}`);
      }
    }
    const order = new Map<string, number>();
    for (const name of config.environments.keys()) order.set(name, order.size);
    const done = new Set<string>();
    for (const start of config.environments.values()) {
      const path: EnvironmentConfig[] = [];
      const onPath = new Map<string, number>();
      let cur: EnvironmentConfig | undefined = start;
      while (cur !== undefined && !done.has(cur.name) && !onPath.has(cur.name)) {
        this.meter.steps++;
        onPath.set(cur.name, path.length);
        path.push(cur);
        cur = cur.extends === undefined ? undefined : config.environments.get(cur.extends);
      }
      const at = cur === undefined ? undefined : onPath.get(cur.name);
      if (at !== undefined) {
        // A new cycle: report it once, starting from its first member in file order.
        const cycle = path.slice(at);
        let firstAt = 0;
        cycle.forEach((e, i) => {
          if ((order.get(e.name) ?? 0) < (order.get(cycle[firstAt]!.name) ?? 0)) firstAt = i;
        });
        const ordered = [...cycle.slice(firstAt), ...cycle.slice(0, firstAt)];
        const first = ordered[0]!;
        this.problem(first.extendsLine ?? first.line, cycleRule([...ordered.map((e) => e.name), first.name]));
      }
      for (const e of path) done.add(e.name);
    }
  }
}

const SECRET_NAME_RULE =
  "names are path-like segments of letters, digits, '_', '.', '-', each starting with a letter or digit, separated by single '/', no '..', at most 256 characters";

function validUrl(s: string): boolean {
  if (!VAULT_ADDRESS_RE.test(s)) return false;
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
  } catch {
    return false;
  }
}

/** What a `server` provider's url must be, for messages. */
export const SERVER_URL_RULE = "must be an http:// or https:// URL without credentials, query or fragment, e.g. https://coffer.internal:8200";

/**
 * Whether `s` is a usable coffer-server URL: http(s), a host, an optional path; no user or
 * password (tokens go in `tokenEnv`, never in the URL), no query, no fragment.
 */
export function validServerUrl(s: string): boolean {
  if (!SERVER_URL_RE.test(s)) return false;
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "" && u.username === "" && u.password === "" && u.search === "" && u.hash === "";
  } catch {
    return false;
  }
}
