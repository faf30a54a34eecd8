/**
 * The project file `.coffer.yml` (docs/design.md §7): finding it, checking it against its schema
 * (`schema.ts`) and the rules that need the whole file, and turning one environment into a
 * {@link DeliveryPlan}. Every problem is a CofferError `E_CONFIG` naming the file, the line and
 * the rule; all problems of a file are reported at once.
 */
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import { CofferError } from "../errors.ts";
import type { ProviderSpec, SecretRef } from "../providers/provider.ts";
import { ENV_NAME_PATTERN, isSecretName, SECRET_NAME_RULE } from "../core/names.ts";
import { checkFileMode, unquotedModeRule } from "../core/file-mode.ts";
import { dangerousEnvRule, isDangerousEnvName } from "./dangerous-env.ts";
import type { DeliveryPlan, EnvDelivery, FileDelivery } from "./plan.ts";
import { grammarOf, PROVIDER_FORMATS } from "../providers/index.ts";
import { readConfigFile } from "./read.ts";
export { MAX_CONFIG_BYTES } from "./read.ts";
import { CONFIG_SCHEMA } from "./schema.ts";
import { SchemaChecker, type Formats } from "./schema-check.ts";
import { assertTrustedProjectFile, projectDirs, type TrustOptions } from "./trust.ts";
import { nameList, parseYaml, show } from "./yaml-checker.ts";
import type { WorkMeter } from "./yaml-checker.ts";

/** The file names looked for, in this order, in each directory. */
export const CONFIG_FILE_NAMES = [".coffer.yml", ".coffer.yaml"] as const;
/** The name of the local store provider, always present. */
export const STORE_PROVIDER = "store";
/** The default file mode of a delivered file. */
export const DEFAULT_FILE_MODE = 0o400;

const ENV_NAME_RE = new RegExp(ENV_NAME_PATTERN);

/** The `x-format` checks of the config schemas: the shared ones and each provider's. */
export const CONFIG_FORMATS: Formats = {
  ...PROVIDER_FORMATS,
  "secret-name": (s) => (isSecretName(s) ? undefined : SECRET_NAME_RULE),
  "dangerous-env-name": (s) =>
    !ENV_NAME_RE.test(s)
      ? `environment variable name ${show(s)} must match ${ENV_NAME_PATTERN}`
      : isDangerousEnvName(s)
        ? undefined
        : `${show(s)} is not on the dangerous list and needs no opt-in; remove it`,
  "file-mode": (s, number) => {
    if (number === true) return unquotedModeRule(s);
    const r = checkFileMode(s);
    return "rule" in r ? r.rule : undefined;
  },
};

/** One environment as written in the file (before `extends` is resolved). */
export interface EnvironmentConfig {
  name: string;
  /** line of the environment's key */
  line: number;
  extends?: string;
  /** line of the `extends:` value */
  extendsLine?: number;
  env: EnvDelivery[];
  files: FileDelivery[];
}

/** A checked `.coffer.yml`. */
export interface ProjectConfig {
  /** the file's path, as given to {@link loadConfig} */
  file: string;
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
  const checker = new SchemaChecker(file, doc, lines).use(CONFIG_SCHEMA, CONFIG_FORMATS);
  try {
    const config = projectConfig(checker, doc.contents);
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
  const fromEnv = env["COFFER_ENV"];
  const [name, source] =
    environment !== undefined ? [environment, ""]
    : fromEnv !== undefined && fromEnv !== "" ? [fromEnv, " (from COFFER_ENV)"]
    : config.defaultEnvironment !== undefined ? [config.defaultEnvironment, " (from default:)"]
    : [names.length === 1 ? names[0] : undefined, ""];
  if (name === undefined) {
    throw new CofferError(
      "E_CONFIG",
      `${config.file}: which environment? choose one with --env NAME, COFFER_ENV or default: in the file; environments: ${known}`,
    );
  }
  if (!config.environments.has(name)) {
    throw new CofferError("E_CONFIG", `${config.file}: unknown environment ${JSON.stringify(name)}${source}; environments: ${known}`);
  }

  // Walk up the chain, then apply from the root down.
  const { chain, cycleAt, unknown } = chainOf(config, config.environments.get(name)!);
  const last = chain.at(-1)!;
  if (cycleAt !== undefined) throw new CofferError("E_CONFIG", `${config.file}:${last.extendsLine ?? 0}: ${cycleRule([...chain, chain[cycleAt]!].map((e) => e.name))}`);
  if (unknown) {
    throw new CofferError("E_CONFIG", `${config.file}:${last.extendsLine ?? 0}: environment ${show(last.name)} extends unknown environment ${show(last.extends!)}; environments: ${known}`);
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

/**
 * The environments from `start` up its `extends:` chain, stopping before one in `done`. It ends
 * at a root, before an unknown parent (`unknown`), or where it meets itself (`cycleAt`: the index
 * of the environment the last one extends).
 */
function chainOf(config: ProjectConfig, start: EnvironmentConfig, done?: ReadonlySet<string>): { chain: EnvironmentConfig[]; cycleAt?: number; unknown?: boolean } {
  const chain: EnvironmentConfig[] = [];
  const at = new Map<string, number>();
  for (let cur: EnvironmentConfig | undefined = start; cur !== undefined && done?.has(cur.name) !== true; ) {
    at.set(cur.name, chain.length);
    chain.push(cur);
    if (cur.extends === undefined) break;
    const cycleAt = at.get(cur.extends);
    if (cycleAt !== undefined) return { chain, cycleAt };
    cur = config.environments.get(cur.extends);
    if (cur === undefined) return { chain, unknown: true };
  }
  return { chain };
}

function cycleRule(chain: string[]): string {
  return `extends cycle: ${chain.join(" → ")}; an environment may not extend itself, directly or through others`;
}

/* ------------------------------------------------------------------------------------------ */

/** Checks the file against {@link CONFIG_SCHEMA}, then the rules that need the whole file. */
function projectConfig(c: SchemaChecker, contents: unknown): ProjectConfig {
  const config: ProjectConfig = { file: c.file, providers: new Map([[STORE_PROVIDER, { type: "store" }]]), environments: new Map() };
  if (c.isEmpty(contents)) {
    c.problem(1, "the file is empty; it needs an environments: map (see `coffer config schema`)");
    return config;
  }
  const top = c.check(contents, CONFIG_SCHEMA, "", 1) as RawConfig | undefined;
  if (top === undefined) return config;
  for (const [name, settings] of Object.entries(top.providers ?? {})) {
    config.providers.set(name, grammarOf(settings["type"] as string)!.spec(settings) as ProviderSpec);
  }
  if (top.allowDangerous !== undefined) config.allowDangerous = top.allowDangerous;
  const allow = new Set(config.allowDangerous);
  const knownProviders = nameList(config.providers.keys());
  for (const [name, raw] of Object.entries(top.environments ?? {})) {
    const where = `environment ${show(name)}`;
    const e: EnvironmentConfig = { name, line: c.at(top.environments!, name)!.key, env: [], files: [] };
    if (raw.extends !== undefined) {
      e.extends = raw.extends;
      e.extendsLine = c.lineOf(raw, "extends");
    }
    for (const kind of ["env", "files"] as const) {
      const map = raw[kind] ?? {};
      for (const [variable, value] of Object.entries(map)) {
        const line = c.at(map, variable)!.key;
        if (kind === "files" && raw.env !== undefined && Object.hasOwn(raw.env, variable)) {
          c.problem(line, `variable ${variable} is in both env and files of ${where}; keep one`);
          continue;
        }
        if (isDangerousEnvName(variable) && !allow.has(variable)) {
          c.problem(line, dangerousEnvRule(variable, `the top-level allowDangerous: [${variable}]`));
          continue;
        }
        const ref = secretRef(c, value, variable, c.lineOf(map, variable), config, knownProviders);
        if (ref === undefined) continue;
        if (kind === "env") e.env.push({ variable, ref, line });
        else e.files.push({ variable, ref, mode: fileMode(value), line });
      }
    }
    config.environments.set(name, e);
  }
  if (top.default !== undefined) {
    if (!config.environments.has(top.default)) {
      c.problem(c.lineOf(top, "default"), `default names unknown environment ${show(top.default)}; environments: ${nameList(config.environments.keys())}`);
    } else {
      config.defaultEnvironment = top.default;
    }
  }
  extendsChains(c, config);
  return config;
}

/** `.coffer.yml` as the schema checked it. */
interface RawConfig {
  providers?: Record<string, Record<string, unknown>>;
  environments?: Record<string, { extends?: string; env?: Record<string, RawRef>; files?: Record<string, RawRef> }>;
  allowDangerous?: string[];
  default?: string;
}
type RawRef = string | { from?: string; secret?: string; path?: string; key?: string; version?: number; mode?: string };

function fileMode(value: RawRef): number {
  const m = typeof value === "string" || value.mode === undefined ? undefined : checkFileMode(value.mode);
  return m !== undefined && "ok" in m ? m.ok : DEFAULT_FILE_MODE;
}

/** A reference's rules that need the providers: `from:` configured, `secret:` in the provider's grammar, `key:` only where values have keys. */
function secretRef(c: SchemaChecker, value: RawRef, variable: string, line: number, config: ProjectConfig, knownProviders: string): SecretRef | undefined {
  if (typeof value === "string") return { provider: STORE_PROVIDER, path: value };
  const before = c.problems.length;
  let provider = STORE_PROVIDER;
  if (value.from !== undefined && !config.providers.has(value.from)) {
    c.problem(c.lineOf(value, "from"), `${variable}: from: ${show(value.from)} is not a configured provider; providers: ${knownProviders}`);
  } else if (value.from !== undefined) {
    provider = value.from;
  }
  const spec = config.providers.get(provider);
  const grammar = spec === undefined ? undefined : grammarOf(spec.type);
  const given = (["secret", "path"] as const).filter((k) => c.at(value, k) !== undefined);
  if (given.length === 2) c.problem(c.at(value, "path")!.key, `${variable}: give either secret or path (they are synonyms), not both`);
  else if (given.length === 0) c.problem(line, `${variable} needs secret: (or path:) naming the value in its provider`);
  const path = value.secret ?? value.path;
  if (path !== undefined && grammar?.path === "secret-name" && !isSecretName(path)) {
    c.problem(c.lineOf(value, given[0]!), `${variable}: invalid secret name ${show(path)}: ${SECRET_NAME_RULE}`);
  } else if (path !== undefined && grammar?.path === "env-name" && !ENV_NAME_RE.test(path)) {
    c.problem(c.lineOf(value, given[0]!), `${variable}: environment variable name ${show(path)} (provider ${provider}) must match ${ENV_NAME_PATTERN}`);
  }
  if (value.key !== undefined && spec !== undefined && grammar?.keys !== true) {
    c.problem(c.at(value, "key")!.key, `${variable}: key only applies to providers whose values are maps of keys: vault, store and server (provider ${provider} is type ${spec.type})`);
  }
  if (c.problems.length > before || path === undefined) return undefined;
  return { provider, path, ...(value.key !== undefined && { key: value.key }), ...(value.version !== undefined && { version: value.version }) };
}

/**
 * Unknown parents and cycles, each reported once with the `extends:` line. Each environment is
 * walked once (a file of thousands of environments in one chain stays linear).
 */
function extendsChains(c: SchemaChecker, config: ProjectConfig): void {
  const known = nameList(config.environments.keys());
  for (const e of config.environments.values()) {
    c.meter.steps++;
    if (e.extends !== undefined && !config.environments.has(e.extends)) {
      c.problem(e.extendsLine ?? e.line, `environment ${show(e.name)} extends unknown environment ${show(e.extends)}; environments: ${known}`);
    }
  }
  const order = new Map<string, number>();
  for (const name of config.environments.keys()) order.set(name, order.size);
  const done = new Set<string>();
  for (const start of config.environments.values()) {
    const { chain, cycleAt } = chainOf(config, start, done);
    c.meter.steps += chain.length;
    if (cycleAt !== undefined) {
      // A new cycle: report it once, starting from its first member in file order.
      const cycle = chain.slice(cycleAt);
      const firstAt = cycle.reduce((first, e, i) => ((order.get(e.name) ?? 0) < (order.get(cycle[first]!.name) ?? 0) ? i : first), 0);
      const ordered = [...cycle.slice(firstAt), ...cycle.slice(0, firstAt)];
      const first = ordered[0]!;
      c.problem(first.extendsLine ?? first.line, cycleRule([...ordered.map((e) => e.name), first.name]));
    }
    for (const e of chain) done.add(e.name);
  }
}
