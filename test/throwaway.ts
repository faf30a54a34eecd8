/**
 * Throw-away PostgreSQL and Redis servers for the tests, so `npm test` needs nothing running on
 * the machine and never touches the machine's own servers. Each lives in its own temp dir (data,
 * sockets, log), listens on a free loopback port, and is removed when stopped.
 *
 * PostgreSQL comes from the Debian packages (`/usr/lib/postgresql/<version>/bin`, the newest
 * found; else `initdb` on PATH). `initdb` refuses root, so as root the cluster belongs to the
 * `postgres` user (commands run through `runuser -u postgres --`); otherwise to the caller.
 * Connections over 127.0.0.1 need the cluster's random password (scram-sha-256), which is in the
 * returned URL. Redis is `redis-server` without persistence.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/**
 * What this process has started and not yet stopped, by temp dir: each entry stops its server
 * (if running) and removes the dir. Entered as soon as the dir exists, so an interruption during a
 * start leaves nothing behind either.
 */
const live = new Map<string, () => void>();

/** Stops every throw-away server this process started and removes their dirs (synchronous: safe in exit and signal handlers). */
export function stopAllThrowaway(): void {
  for (const [dir, stop] of [...live]) {
    live.delete(dir);
    stop();
  }
}

function stopLive(dir: string): void {
  const stop = live.get(dir);
  live.delete(dir);
  stop?.();
}

const INSTALL_HELP = "install the Debian packages (`apt-get install -y postgresql redis-server`; `.ci/run` does) or point the tests at running servers with COFFER_TEST_POSTGRES_URL / COFFER_TEST_REDIS_URL";

/** A running throw-away PostgreSQL cluster. */
export interface ThrowawayPostgres {
  /** Admin URL (superuser `postgres`, password included) over 127.0.0.1. */
  url: string;
  /** The cluster's data dir (for pg_ctl). */
  dataDir: string;
}

/** A running throw-away Redis. */
export interface ThrowawayRedis {
  url: string;
  dir: string;
}

/** A free TCP port on 127.0.0.1 (free a moment ago: callers retry when it is taken since). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      s.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** The directory holding initdb and pg_ctl: the newest `/usr/lib/postgresql/<n>/bin`, else PATH's. */
export function postgresBinDir(): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base)
    ? readdirSync(base).filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(base, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] !== undefined) return join(base, versions[0], "bin");
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"))) return dir;
  }
  throw new Error(`no PostgreSQL server programs (initdb, pg_ctl) under ${base}/<version>/bin or on PATH: ${INSTALL_HELP}`);
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** uid and gid of the `postgres` user (root runs the cluster as it). */
function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`running as root, the throw-away PostgreSQL must run as the \`postgres\` user (initdb refuses root), and there is none: ${INSTALL_HELP}`);
  }
}

/** The command line running PostgreSQL program `prog` (as `postgres` when root). */
function pgCommand(prog: string, args: string[]): [string, string[]] {
  const bin = join(postgresBinDir(), prog);
  return isRoot() ? ["runuser", ["-u", "postgres", "--", bin, ...args]] : [bin, args];
}

function pgFailure(prog: string, args: string[], err: unknown): Error {
  const e = err as { stderr?: string; stdout?: string; message: string };
  return new Error(`${prog} ${args[0] ?? ""} failed: ${(e.stderr || e.stdout || e.message).trim()}`, { cause: err });
}

const PG_OPTIONS = { encoding: "utf8", timeout: 120_000, cwd: "/" } as const;

/** Runs PostgreSQL program `prog` and waits (synchronous: for setup and exit handlers); throws with its output on failure. */
function pgRun(prog: string, args: string[]): string {
  const [cmd, argv] = pgCommand(prog, args);
  try {
    return execFileSync(cmd, argv, { ...PG_OPTIONS, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    throw pgFailure(prog, args, err);
  }
}

/** {@link pgRun} without blocking the event loop (a server in this process keeps running meanwhile). */
function pgRunAsync(prog: string, args: string[]): Promise<string> {
  const [cmd, argv] = pgCommand(prog, args);
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, PG_OPTIONS, (err, stdout) => (err ? reject(pgFailure(prog, args, err)) : resolve(stdout)));
  });
}

/** The last lines of the cluster's log, for an error message. */
function logTail(dataDir: string): string {
  try {
    return readFileSync(join(dataDir, "..", "postgres.log"), "utf8").trim().split("\n").slice(-8).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Creates and starts a throw-away PostgreSQL cluster in a fresh temp dir on a free port.
 * @throws Error saying what is missing (programs, the postgres user) or why it did not start
 */
export async function startPostgres(): Promise<ThrowawayPostgres> {
  const bin = postgresBinDir(); // fail early, before making anything
  const dir = mkdtempSync(join(tmpdir(), "coffer-test-pg-"));
  const dataDir = join(dir, "data");
  live.set(dir, () => {
    if (existsSync(join(dataDir, "postmaster.pid"))) {
      try {
        pgRun("pg_ctl", ["stop", "-D", dataDir, "-m", "immediate", "-w", "-t", "30"]);
      } catch {
        // already stopped: remove the dir regardless
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    const owner = isRoot() ? postgresUser() : undefined;
    if (owner !== undefined) chownSync(dir, owner.uid, owner.gid);
    const password = randomBytes(18).toString("hex");
    const pwfile = join(dir, "pwfile");
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner !== undefined) chownSync(pwfile, owner.uid, owner.gid);
    pgRun("initdb", [
      "-D", dataDir, "-U", "postgres", `--pwfile=${pwfile}`,
      "--auth-host=scram-sha-256", "--auth-local=peer",
      "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions",
    ]);
    rmSync(pwfile);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      // In the config file, not on pg_ctl's command line, so a plain `pg_ctl restart` keeps them.
      // fsync off: a throw-away cluster need not survive a machine crash, only clean restarts.
      appendFileSync(join(dataDir, "postgresql.conf"),
        `\n# coffer tests\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nfsync = off\n`);
      try {
        pgRun("pg_ctl", ["start", "-D", dataDir, "-w", "-t", "60", "-l", join(dir, "postgres.log")]);
        return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, dataDir };
      } catch (err) {
        if (attempt >= 3) throw new Error(`the throw-away PostgreSQL (${bin}) did not start: ${(err as Error).message}\n${logTail(dataDir)}`, { cause: err });
      }
    }
  } catch (err) {
    stopLive(dir);
    throw err;
  }
}

/** Restarts the throw-away cluster at `dataDir` (a fast shutdown, then a start); resolves once it accepts connections. */
export async function restartPostgres(dataDir: string): Promise<void> {
  await pgRunAsync("pg_ctl", ["restart", "-D", dataDir, "-w", "-t", "60", "-m", "fast", "-l", join(dataDir, "..", "postgres.log")]);
}

/** Starts the throw-away cluster at `dataDir` again when it is not running. */
export async function ensurePostgresRunning(dataDir: string): Promise<void> {
  try {
    await pgRunAsync("pg_ctl", ["status", "-D", dataDir]);
  } catch {
    await pgRunAsync("pg_ctl", ["start", "-D", dataDir, "-w", "-t", "60", "-l", join(dataDir, "..", "postgres.log")]);
  }
}

/** Resolves when something on 127.0.0.1:`port` answers Redis's PING with PONG. */
function redisPong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (d) => done(d.toString().startsWith("+PONG")));
  });
}

/**
 * Starts a throw-away `redis-server` (no persistence) on a free port, as a child of this process.
 * @throws Error when redis-server is missing or does not answer within 30 s
 */
export async function startRedis(): Promise<ThrowawayRedis> {
  const dir = mkdtempSync(join(tmpdir(), "coffer-test-redis-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    live.set(dir, () => {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<Error>((resolve) => {
      child.once("error", (e) => resolve(e));
      child.once("exit", (code) => resolve(new Error(`redis-server exited (${code}): ${stderr.trim()}`)));
    });
    let failure: Error | undefined;
    const deadline = Date.now() + 30_000;
    while (failure === undefined) {
      const ready = await Promise.race([redisPong(port), exited]);
      if (ready === true) {
        child.unref();
        child.stderr.destroy();
        return { url: `redis://127.0.0.1:${port}`, dir };
      }
      if (ready instanceof Error) failure = ready;
      else if (Date.now() > deadline) {
        child.kill("SIGKILL");
        failure = new Error("redis-server did not answer PING within 30 s");
      } else await new Promise((r) => setTimeout(r, 50));
    }
    if (attempt >= 3 || (failure as NodeJS.ErrnoException).code === "ENOENT") {
      stopLive(dir);
      throw new Error(`the throw-away Redis did not start: ${failure.message}; ${INSTALL_HELP}`, { cause: failure });
    }
  }
}
