/**
 * `coffer doctor`: checks what coffer relies on, on this machine, and says for each problem how to
 * fix it. Every check is the rule coffer itself applies (the same functions: the permission
 * checks of fs-secure.ts, the runtime dir choice and sweep of deliver/runtime-dir.ts, the project
 * file finder and trust rule, the saved tokens), so doctor cannot disagree with what a command
 * would then do. It never needs the identity's passphrase, never reads a value, and writes nothing.
 */
import { accessSync, constants, lstatSync, readlinkSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import { CofferError, PermissionsError } from "../../errors.ts";
import { assertPrivate, assertSecureParents, shellQuote } from "../../core/fs-secure.ts";
import { homeOf, resolvePaths } from "../../core/paths.ts";
import type { Command, Context } from "../command.ts";
import { printJson } from "../open.ts";

/** The oldest Node coffer runs on. */
export const NODE_FLOOR = 24;
/** A token that expires sooner than this is a warning. */
const EXPIRY_WARN_MS = 7 * 86_400_000;
/** A clock further than this from a server's is a warning (HTTP dates have whole seconds). */
const SKEW_WARN_S = 30;
/** How long doctor waits for a server. */
const SERVER_TIMEOUT_MS = 5_000;

export type Status = "ok" | "warn" | "fail";

/** One check's result: what `--json` prints, one object each. */
export interface Check {
  check: string;
  status: Status;
  detail: string;
  /** what to do about a warn or fail; null when ok */
  fix: string | null;
  /** for a logged-in server: what was found */
  server?: { url: string; reachable: boolean; tokenValid: boolean | null; expiresAt: string | null; clockSkewSeconds: number | null };
}

const ok = (check: string, detail: string): Check => ({ check, status: "ok", detail, fix: null });
const warn = (check: string, detail: string, fix: string): Check => ({ check, status: "warn", detail, fix });
const fail = (check: string, detail: string, fix: string): Check => ({ check, status: "fail", detail, fix });

export const doctor: Command = {
  name: "doctor",
  usage: "[--json]",
  details: [
    "Checks, each with the fix when it is not ok: the Node version; the identity and store files",
    "and their directories (owner, mode, symlinks, the directories above them); XDG_RUNTIME_DIR",
    "(where `coffer run` puts files: exists, 0700, yours, tmpfs); runtime dirs a killed `coffer run`",
    "or `coffer load` left behind; the project file `coffer run` would use here; each server",
    "`coffer login` saved a token for (reachable, token valid, expiry, clock skew); the age CLI.",
    "Never asks for the passphrase and reads no value. Exit status 1 when a check failed (warnings",
    "alone: 0). --json prints [{check, status, detail, fix}].",
  ].join("\n"),
  examples: ["coffer doctor", "coffer doctor --json | jq '.[] | select(.status != \"ok\")'", "coffer doctor --store ./team.db"],
  flags: { json: { type: "boolean", help: "print the checks as JSON: [{check, status, detail, fix}]" } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "doctor takes no arguments; usage: coffer doctor [--json]");
    const checks = await runChecks(ctx);
    if (ctx.flags.json === true) printJson(ctx, checks);
    else ctx.out(formatChecks(checks));
    return checks.some((c) => c.status === "fail") ? 1 : 0;
  },
};

/** Every check, in the order shown. */
export async function runChecks(ctx: Context): Promise<Check[]> {
  const paths = resolvePaths({ env: ctx.env, ...(ctx.store !== undefined && { store: ctx.store }) });
  const home = homeOf(ctx.env);
  const { runtimeBase } = await import("../../deliver/runtime-dir.ts");
  const servers = checkServers(ctx.env);
  return [
    checkNode(),
    fileCheck("identity", paths.identity, "identity file", home, "run `coffer init` (or `coffer restore` from a backup)"),
    dirCheck("identity dir", dirname(paths.identity), "identity directory"),
    fileCheck("store", paths.store, "store", home, "run `coffer init` (or `coffer restore` from a backup)"),
    dirCheck("store dir", dirname(paths.store), "store directory"),
    await checkRuntimeDir(ctx.env),
    await checkLeftovers(runtimeBase({ env: ctx.env })),
    await checkProjectFile(ctx.env),
    ...(await servers),
    checkAge(ctx.env),
  ];
}

/** The checks as text: one line each, the fix indented under a warn or fail. */
export function formatChecks(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.check.length));
  const lines = checks.flatMap((c) => [
    `${c.status.padEnd(4)}  ${c.check.padEnd(width)}  ${c.detail}`,
    ...(c.fix !== null ? [`${" ".repeat(width + 8)}fix: ${c.fix}`] : []),
  ]);
  const failed = checks.filter((c) => c.status === "fail").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  lines.push("", failed + warned === 0 ? "everything is ok" : `${failed} failed, ${warned} ${warned === 1 ? "warning" : "warnings"}`);
  return `${lines.join("\n")}\n`;
}

function checkNode(): Check {
  const version = process.versions.node;
  const major = Number(version.split(".")[0]);
  return major >= NODE_FLOOR
    ? ok("node", `Node ${version} (coffer needs ${NODE_FLOOR} or newer)`)
    : fail("node", `Node ${version}: coffer needs Node ${NODE_FLOOR} or newer`, `install Node ${NODE_FLOOR} or newer (e.g. \`nvm install ${NODE_FLOOR}\`), or use the single binary`);
}

// A PermissionsError's message is "what is wrong; what to run": split it into detail and fix.
function fromPermissions(check: string, err: unknown): Check {
  if (!(err instanceof PermissionsError)) throw err;
  const at = err.message.lastIndexOf("; ");
  return at === -1 ? fail(check, err.message, "make it yours and private (chmod 600 for a file, 700 for a directory)") : fail(check, err.message.slice(0, at), err.message.slice(at + 2));
}

/** The identity or the store: there, a regular file (a symlink is followed, as coffer does), private, in safe directories. */
function fileCheck(check: string, path: string, what: string, home: string, missing: string): Check {
  const link = lstatOrUndefined(path);
  if (link === undefined) return fail(check, `no ${what} at ${path}`, missing);
  let target: string | undefined;
  if (link.isSymbolicLink()) {
    target = resolve(dirname(path), readlinkSync(path));
    const st = statOrUndefined(path);
    if (st === undefined) return fail(check, `${what} ${path} is a symlink to ${target}, which does not exist`, `point it at your ${what}, or remove it: \`rm ${shellQuote(path)}\``);
  }
  if (!statSync(path).isFile()) return fail(check, `${what} ${path} is not a regular file`, `move it away and put your ${what} there`);
  try {
    assertSecureParents(path, what, home);
    assertPrivate(path, what);
  } catch (err) {
    return fromPermissions(check, err);
  }
  if (target !== undefined) {
    return warn(check, `${what} ${path} is a symlink to ${target}; coffer follows it and both pass the checks, but the file's safety now depends on where the link points`,
      `keep the file itself there: \`mv ${shellQuote(target)} ${shellQuote(path)}\``);
  }
  return ok(check, `${path} (yours, ${modeOf(path)})`);
}

/** A directory coffer made 0700: still the user's and private. */
function dirCheck(check: string, dir: string, what: string): Check {
  if (lstatOrUndefined(dir) === undefined) return ok(check, `${dir} does not exist yet (coffer init makes it 0700)`);
  try {
    assertPrivate(dir, what);
  } catch (err) {
    return fromPermissions(check, err);
  }
  return ok(check, `${dir} (yours, ${modeOf(dir)})`);
}

/** XDG_RUNTIME_DIR, as `coffer run` chooses where files go (runtime-dir.ts's runtimeBase). */
async function checkRuntimeDir(env: NodeJS.ProcessEnv): Promise<Check> {
  const { onMemoryFs, runtimeBase } = await import("../../deliver/runtime-dir.ts");
  const problems: string[] = [];
  const base = runtimeBase({ env, warn: (m) => problems.push(m) });
  const xdg = env.XDG_RUNTIME_DIR;
  const fix = "log in through systemd-logind (it makes /run/user/$UID, 0700, on tmpfs), or point XDG_RUNTIME_DIR at a 0700 dir of yours on tmpfs";
  if (problems.length > 0) {
    const shm = onMemoryFs("/dev/shm") ? "" : ", and /dev/shm is not tmpfs either: files may reach a disk";
    const uses = problems.some((m) => m.includes(base)) ? "" : `; coffer run uses ${base}`;
    return warn("runtime dir", `${problems.join("; ")}${uses}${shm}`, fix);
  }
  if (!onMemoryFs(xdg!)) return warn("runtime dir", `XDG_RUNTIME_DIR=${xdg!} is not on tmpfs or ramfs: files coffer run delivers may reach a disk`, fix);
  return ok("runtime dir", `XDG_RUNTIME_DIR=${xdg!} (yours, 0700, tmpfs); coffer run uses ${base}`);
}

/** Runtime dirs no process uses any more under the base `coffer run` uses: what its next sweep removes. */
async function checkLeftovers(base: string): Promise<Check> {
  const { unusedRuntimeDirs } = await import("../../deliver/runtime-dir.ts");
  const left = unusedRuntimeDirs(base);
  if (left.length === 0) return ok("leftover dirs", `none in ${base}`);
  const list = left.map((d) => `${d.path} (${d.owner.kind}, pid ${d.owner.pid}, ${d.owner.created})`).join(", ");
  return warn("leftover dirs", `${left.length} runtime ${left.length === 1 ? "dir" : "dirs"} left by a coffer that was killed, still holding delivered files: ${list}`,
    `the next \`coffer run\` or \`coffer load\` removes them; or now: \`rm -r ${left.map((d) => shellQuote(d.path)).join(" ")}\``);
}

/** The project file `coffer run` would use here, and whether it may be obeyed and is valid. */
async function checkProjectFile(env: NodeJS.ProcessEnv): Promise<Check> {
  const { findConfig, loadConfig } = await import("../../config/load.ts");
  let file: string;
  try {
    file = findConfig(process.cwd(), { env });
  } catch (err) {
    if (err instanceof CofferError && err.code === "E_CONFIG") return ok("project file", `none here or above (${process.cwd()}); \`coffer run\` needs a .coffer.yml or --config F`);
    throw err;
  }
  try {
    const config = loadConfig(file, { env });
    const envs = [...config.environments.keys()];
    const dflt = config.defaultEnvironment !== undefined ? ` (default ${config.defaultEnvironment})` : "";
    return ok("project file", `${file}: ${envs.length === 0 ? "no environments" : `environments ${envs.join(", ")}${dflt}`}`);
  } catch (err) {
    if (err instanceof PermissionsError) return fail("project file", err.message, `if you trust it: \`coffer trust ${shellQuote(dirname(file))}\``);
    if (err instanceof CofferError) return fail("project file", err.message, "fix it: `coffer config check` lists every problem with its line");
    throw err;
  }
}

/** Each server a token is saved for: reachable, the token valid (GET /v1/auth/self), its expiry, the clock skew. */
async function checkServers(env: NodeJS.ProcessEnv): Promise<Check[]> {
  const { loadServerTls, loadToken, savedServers, tokenFilePath } = await import("../../client/token-file.ts");
  let urls: string[];
  try {
    urls = savedServers(env);
  } catch (err) {
    if (err instanceof PermissionsError) return [fromPermissions("servers", err)];
    if (err instanceof CofferError) return [fail("servers", err.message, `remove ${tokenFilePath(env)} and run \`coffer login URL\` again`)];
    throw err;
  }
  if (urls.length === 0) return [ok("servers", "not logged in to any server (`coffer login URL` saves a token)")];
  const { CofferClient } = await import("../../client/client.ts");
  return Promise.all(urls.map(async (url): Promise<Check> => {
    const check = `server ${url}`;
    const facts = { url, reachable: false, tokenValid: null as boolean | null, expiresAt: null as string | null, clockSkewSeconds: null as number | null };
    const relogin = `\`coffer login ${url}\` with a valid token (or \`coffer logout ${url}\` to forget it)`;
    let date: string | null = null;
    let sentAt = 0;
    let answeredAt = 0;
    const tls = loadServerTls(url, env);
    const options = { url, token: loadToken(url, env)!, timeoutMs: SERVER_TIMEOUT_MS, ...(tls !== undefined && { tls }) };
    let send: typeof fetch;
    try {
      send = new CofferClient(options).fetch; // reads and checks the TLS files saved for it
    } catch (err) {
      if (!(err instanceof CofferError)) throw err;
      return { ...fail(check, `the client settings saved for it are not usable: ${err.message}`, `\`coffer login ${url}\` again (with --ca/--cert/--key as needed)`), server: facts };
    }
    try {
      const client = new CofferClient({
        ...options,
        fetch: async (input, init) => {
          sentAt = Date.now();
          const res = await send(input, init);
          answeredAt = Date.now();
          facts.reachable = true;
          date = res.headers.get("date");
          return res;
        },
      });
      const self = await client.self();
      facts.tokenValid = true;
      facts.expiresAt = self.expiresAt;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (!facts.reachable) return { ...fail(check, `unreachable: ${message}`, `start the server or check the URL; ${relogin}`), server: facts };
      if (err instanceof CofferError && err.code === "E_UNAUTHENTICATED") {
        facts.tokenValid = false;
        return { ...fail(check, `the saved token is not valid (expired or revoked): ${message}`, relogin), server: facts };
      }
      return { ...fail(check, `reachable, but asking who the token is failed: ${message}`, "check the server's logs; `coffer whoami --server URL --debug` shows more"), server: facts };
    }
    const serverTime = date === null ? Number.NaN : Date.parse(date);
    if (!Number.isNaN(serverTime)) facts.clockSkewSeconds = Math.round((Math.floor((sentAt + answeredAt) / 2000) * 1000 - serverTime) / 1000);
    const expiry = facts.expiresAt === null ? "never expires" : `expires ${facts.expiresAt}`;
    const skew = facts.clockSkewSeconds === null ? "no Date header" : `clock skew ${facts.clockSkewSeconds}s`;
    const detail = `reachable, token valid, ${expiry}, ${skew}`;
    if (facts.clockSkewSeconds !== null && Math.abs(facts.clockSkewSeconds) > SKEW_WARN_S) {
      return { ...warn(check, `${detail}: this machine's clock is ${Math.abs(facts.clockSkewSeconds)}s ${facts.clockSkewSeconds > 0 ? "ahead of" : "behind"} the server's (tokens and JWTs carry times)`, "synchronise the clock: `timedatectl set-ntp true` (or your NTP client)"), server: facts };
    }
    if (facts.expiresAt !== null && Date.parse(facts.expiresAt) - Date.now() < EXPIRY_WARN_MS) {
      return { ...warn(check, `${detail}: the token expires within 7 days`, `get a new token and \`coffer login ${url}\` with it`), server: facts };
    }
    return { ...ok(check, detail), server: facts };
  }));
}

/** The age CLI, which reads coffer's identity, backups and store keys (interop, not needed by coffer). */
function checkAge(env: NodeJS.ProcessEnv): Check {
  const path = (env.PATH ?? "").split(":").filter((d) => d.startsWith("/")).map((d) => join(d, "age")).find(isExecutable);
  if (path === undefined) {
    return warn("age", "the age CLI is not on PATH (coffer does not need it; it lets you open your identity and backups with a standard tool)",
      "install it: `apt install age`, `brew install age`, or https://github.com/FiloSottile/age/releases");
  }
  const r = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 5_000, stdio: ["ignore", "pipe", "ignore"] });
  const version = r.status === 0 ? r.stdout.trim() : "";
  return ok("age", `${path}${version !== "" ? ` ${version}` : ""}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function modeOf(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}
