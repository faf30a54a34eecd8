import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, userEnv } from "./run-cli.ts";

/** The TCP ports that process `pid` listens on (its own sockets, from /proc). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A" && inodes.has(f[9] ?? "")) ports.push(Number.parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** Collects a child's stderr; resolves `ready` once its stdout has a line. */
function watch(child: ChildProcess): { err: () => string; ready: Promise<void>; exited: Promise<number | null> } {
  let err = "";
  let out = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const ready = new Promise<void>((resolve) => child.stdout!.on("data", (d: Buffer) => ((out += d.toString()), out.includes("\n") && resolve())));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { err: () => err, ready, exited };
}

test("SIGUSR1 to coffer run does not open Node's inspector to other local users", { timeout: 60_000 }, async (t) => {
  // The control: plain node opens its inspector on SIGUSR1, and this test sees it (port 0, so a
  // busy 9229 on this machine cannot make the test pass).
  const plain = spawn(process.execPath, ["--inspect-port=0", "-e", "console.log('ready'); setInterval(() => {}, 1000)"], { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => plain.kill("SIGKILL"));
  const p = watch(plain);
  await p.ready;
  plain.kill("SIGUSR1");
  while (!p.err().includes("Debugger listening")) await sleep(50);
  assert.ok(listeningPorts(plain.pid!).length > 0);
  plain.kill("SIGKILL");

  const home = tempDir(t);
  const dir = join(home, "proj");
  mkdirSync(dir);
  assert.equal(coffer(home, ["init"]).code, 0);
  assert.equal(coffer(home, ["set", "app/token"], { input: "tok-value-1" }).code, 0);
  writeFileSync(join(dir, ".coffer.yml"), "environments:\n  dev:\n    env:\n      TOKEN: app/token\n");
  const runtime = join(home, "run");
  mkdirSync(runtime, { mode: 0o700 });
  // The command ignores USR1 itself, so that passing the signal on to it changes nothing here.
  const child = spawn(process.execPath, ["--inspect-port=0", CLI, "run", "--", "sh", "-c", "trap '' USR1; echo ready; exec sleep 60"], {
    cwd: dir,
    env: userEnv(home, { XDG_RUNTIME_DIR: runtime }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  t.after(() => child.kill("SIGKILL"));
  const c = watch(child);
  await c.ready;
  child.kill("SIGUSR1");
  child.kill("SIGUSR1");
  await sleep(1500); // what the control needed, generously: an inspector would be up by now
  assert.doesNotMatch(c.err(), /Debugger listening/);
  assert.deepEqual(listeningPorts(child.pid!), []);
  assert.equal(child.exitCode, null, "coffer run is still running");
  child.kill("SIGTERM");
  assert.equal(await c.exited, 143, c.err());
});

test("Node's compile cache is kept in a per-user 0700 dir, never in the shared temp dir", (t) => {
  const home = tempDir(t);
  const tmp = join(home, "tmp");
  mkdirSync(tmp);
  assert.equal(coffer(home, ["--help"], { env: { TMPDIR: tmp, XDG_CACHE_HOME: "" } }).code, 0);
  const cache = join(home, ".cache", "coffer", "compile-cache");
  assert.equal(statSync(cache).mode & 0o777, 0o700);
  assert.ok(readdirSync(cache).length > 0, "the cache is used");
  assert.deepEqual(readdirSync(tmp), [], "nothing in TMPDIR");

  // XDG_CACHE_HOME is followed.
  const xdg = join(home, "xdg-cache");
  assert.equal(coffer(home, ["--help"], { env: { XDG_CACHE_HOME: xdg } }).code, 0);
  assert.equal(statSync(join(xdg, "coffer", "compile-cache")).mode & 0o777, 0o700);
});

test("a compile cache dir that others can read or write is not used", (t) => {
  const home = tempDir(t);
  const cache = join(home, ".cache", "coffer", "compile-cache");
  mkdirSync(cache, { recursive: true });
  chmodSync(cache, 0o777);
  const r = coffer(home, ["--help"], { env: { XDG_CACHE_HOME: "" } });
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(cache), [], "no code cached where another user could plant some");
  // Nor a cache dir below a parent that others can write (they could swap the dir).
  const home2 = tempDir(t);
  mkdirSync(join(home2, ".cache", "coffer"), { recursive: true });
  chmodSync(join(home2, ".cache", "coffer"), 0o777);
  assert.equal(coffer(home2, ["--help"], { env: { XDG_CACHE_HOME: "" } }).code, 0);
  const cache2 = join(home2, ".cache", "coffer", "compile-cache");
  assert.ok(!existsSync(cache2) || readdirSync(cache2).length === 0);
});
