/**
 * `load()`: the library's one call for an app's secrets. It does what `coffer run` does before it
 * starts a command: finds `.coffer.yml` (refused unless trusted), picks the environment, resolves
 * every reference through its provider (all or nothing), writes the `files:` into a fresh private
 * runtime dir, and records the delivery in the local store's audit log. Instead of starting a
 * command it hands the values back.
 *
 * The library never prompts and installs no signal handler: an encrypted identity is opened with
 * `passphrase` or `COFFER_PASSPHRASE_FILE`, and the runtime dir goes at `dispose()` or when the
 * process exits (a process killed by a signal leaves it to the next coffer's sweep, which removes
 * a `run` dir once its process group is gone: docs/design.md, "Runtime dirs").
 */
import { findConfig, loadConfig, planFor } from "../config/load.ts";
import type { DeliveryPlan } from "../config/plan.ts";
import type { Secret } from "../core/secret.ts";
import { auditDelivery } from "../deliver/audit.ts";
import { disposeResolved, resolvePlan } from "../deliver/resolve.ts";
import { createRuntimeDir, writeRuntimeFile } from "../deliver/runtime-dir.ts";
import { ProviderSet } from "../providers/index.ts";

/** Options of {@link load}. */
export interface LoadOptions {
  /** the environment of `.coffer.yml` (default: `COFFER_ENV`, the file's `default:`, or its only one) */
  environment?: string;
  /** the project file (default: `.coffer.yml` or `.coffer.yaml` in `cwd` or a parent) */
  config?: string;
  /** where the project file is looked for (default: `process.cwd()`) */
  cwd?: string;
  /** the environment coffer reads its own settings from: COFFER_HOME, COFFER_TOKEN, … (default: `process.env`) */
  env?: NodeJS.ProcessEnv;
  /** the local store file (default: the user's) */
  store?: string;
  /** the identity's passphrase when it is encrypted (default: the file `COFFER_PASSPHRASE_FILE` names; never asked) */
  passphrase?: string;
  /** the base the runtime dir is made in (default: `$XDG_RUNTIME_DIR/coffer`, else `/dev/shm/coffer-UID`) */
  dir?: string;
  /** ask no server: `server` secrets come from the encrypted outage cache only, as `coffer run --offline` */
  offline?: boolean;
  /** told of what a user should know (a value served stale, a dangerous variable allowed, a runtime dir not on tmpfs); default: `process.emitWarning` */
  warn?: (message: string) => void;
}

/** What {@link load} gives back. Call `dispose()` when the values are no longer needed. */
export interface Loaded {
  /** the project file used */
  file: string;
  /** the environment delivered */
  environment: string;
  /** each `env:` variable and its value (a redacting `Secret`: `.reveal()` for the string) */
  env: Record<string, Secret>;
  /** each `files:` variable and the path of the file holding its value */
  files: Record<string, string>;
  /** the private runtime dir the files are in; null when the environment has no files */
  dir: string | null;
  /** zeroes the values and removes the runtime dir (also done when the process exits); safe to call twice */
  dispose(): void;
  [Symbol.dispose](): void;
}

/**
 * Resolves an environment of `.coffer.yml` through every provider it names.
 *
 * @example
 * import { load } from "coffer";
 * const { env, files, dispose } = await load({ environment: "prod" });
 * const db = new Pool({ connectionString: env.DATABASE_URL!.reveal(), ssl: { ca: readFileSync(files.DB_CA!) } });
 *
 * @throws CofferError E_CONFIG (no or bad project file, unknown environment), E_UNTRUSTED (a file
 *   another user owns), or the first failed reference's code with every failed variable named
 */
export async function load(options: LoadOptions = {}): Promise<Loaded> {
  const env = options.env ?? process.env;
  const warn = options.warn ?? ((m: string) => process.emitWarning(m, { code: "COFFER_WARNING" }));
  const file = options.config ?? findConfig(options.cwd ?? process.cwd(), { env });
  const plan = planFor(loadConfig(file, { env }), options.environment, env);
  if (plan.dangerous !== undefined) warn(`${plan.file} sets ${plan.dangerous.join(", ")}, allowed by its allowDangerous:`);
  const providers = new ProviderSet(plan.providers, {
    env,
    ...(options.store !== undefined && { storePath: options.store }),
    ...(options.passphrase !== undefined && { passphrase: async () => options.passphrase! }),
    ...(options.offline === true && { offline: true }),
    warn,
  });
  try {
    const resolved = await resolvePlan(plan, providers);
    try {
      const files = writeFiles(plan, resolved.files, options, env, warn);
      auditDelivery(providers, plan, "library");
      return loaded(plan, Object.fromEntries(resolved.env.map((e) => [e.variable, e.value])), files, () => disposeResolved(resolved));
    } catch (err) {
      disposeResolved(resolved);
      throw err;
    }
  } finally {
    await providers.close();
  }
}

type Written = { paths: Record<string, string>; dir: string | null; remove: () => void };

/** Writes the plan's files into a new runtime dir (none when there are no files). */
function writeFiles(plan: DeliveryPlan, files: { variable: string; value: Secret; mode: number }[], options: LoadOptions, env: NodeJS.ProcessEnv, warn: (m: string) => void): Written {
  if (plan.files.length === 0) return { paths: {}, dir: null, remove: () => {} };
  const dir = createRuntimeDir({ kind: "run", ...(options.dir !== undefined && { base: options.dir }), env, warn });
  try {
    const paths = Object.fromEntries(files.map((f) => [f.variable, writeRuntimeFile(dir.path, f.variable, f.value.bytes(), f.mode)]));
    return { paths, dir: dir.path, remove: () => dir.remove() };
  } catch (err) {
    dir.remove();
    throw err;
  }
}

function loaded(plan: DeliveryPlan, env: Record<string, Secret>, written: Written, zero: () => void): Loaded {
  let disposed = false;
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    process.off("exit", dispose);
    zero();
    written.remove();
  };
  process.on("exit", dispose);
  return { file: plan.file, environment: plan.environment, env, files: written.paths, dir: written.dir, dispose, [Symbol.dispose]: dispose };
}
