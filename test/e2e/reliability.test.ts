/**
 * Reliability claims of the local store, tested with real processes:
 *  1. 8 processes × 200 `set`s on one store lose nothing;
 *  2. a writer killed with SIGKILL at random points, 100 times, leaves a store that opens,
 *     verifies its audit chain and holds every write that was acknowledged.
 *
 * Values never appear in a test name or an assertion message: they are compared with
 * `assert.ok(a === b, …)` and the messages name only secrets and versions.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initCoffer, openStore, type Store } from "../../src/index.ts";
import { burstName, burstValue, killName, killValue, SHARED_NAMES } from "../fixtures/writer.ts";

const WRITER = fileURLToPath(new URL("../fixtures/writer.ts", import.meta.url));

/** A running writer child: its stdout split into complete lines, its stderr kept for reports. */
interface Writer {
  child: ChildProcess;
  /** complete lines so far (a line cut short by a kill is never here) */
  lines: string[];
  stderr: () => string;
  /** resolves once the process has exited and its stdio is closed */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** calls `fn` for each complete line as it arrives */
  onLine: (fn: (line: string) => void) => void;
}

function startWriter(dir: string, args: string[]): Writer {
  const child = spawn(process.execPath, ["--no-warnings", WRITER, ...args], {
    env: { ...process.env, COFFER_HOME: dir },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let partial = "";
  let err = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) {
      lines.push(line);
      for (const fn of listeners) fn(line);
    }
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    err += chunk;
  });
  // A killed child's stdin may be gone before the parent writes to it.
  child.stdin!.on("error", () => {});
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    lines,
    stderr: () => err,
    closed,
    onLine: (fn) => {
      listeners.push(fn);
    },
  };
}

/** Kills `w` if it is still running after `ms` (a hung child must not hang the test). */
function guard(w: Writer, ms: number): { fired: () => boolean; clear: () => void } {
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    w.child.kill("SIGKILL");
  }, ms);
  return { fired: () => fired, clear: () => clearTimeout(timer) };
}

/** Asserts that `name` at `version` decrypts to `expected`, without ever printing the value. */
function assertHolds(store: Store, name: string, version: number, expected: string, what: string): void {
  let secret;
  try {
    secret = store.get(name, { version });
  } catch (err) {
    assert.fail(`${what}: ${name} v${version} cannot be read (${(err as Error).message})`);
  }
  try {
    assert.equal(secret.version, version, `${what}: ${name} v${version} came back as another version`);
    assert.ok(secret.reveal() === expected, `${what}: ${name} v${version} holds a different value than was written`);
  } finally {
    secret.dispose();
  }
}

function tempHome(): string {
  return mkdtempSync(join(tmpdir(), "coffer-rel-"));
}

const PROCESSES = 8;
const SETS = 200;

test("8 processes × 200 sets on one store lose nothing", { timeout: 120_000 }, async (t) => {
  const dir = tempHome();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCoffer({ env: { COFFER_HOME: dir }, name: "tester" });

  const writers = Array.from({ length: PROCESSES }, (_, p) => startWriter(dir, ["burst", String(p), String(SETS)]));
  const guards = writers.map((w) => guard(w, 90_000));
  try {
    // Every child opens the store, says "ready", and waits: then all start writing together.
    await Promise.all(
      writers.map(
        (w, p) =>
          new Promise<void>((resolve, reject) => {
            if (w.lines.includes("ready")) return resolve();
            w.onLine((line) => {
              if (line === "ready") resolve();
            });
            void w.closed.then(({ code, signal }) =>
              reject(new Error(`writer ${p} exited before it was ready (code ${code}, signal ${signal}): ${w.stderr()}`)),
            );
          }),
      ),
    );
    for (const w of writers) w.child.stdin!.end("go\n");
    const exits = await Promise.all(writers.map((w) => w.closed));
    exits.forEach(({ code, signal }, p) => {
      assert.equal(guards[p]!.fired(), false, `writer ${p} hung and was killed`);
      assert.equal(signal, null, `writer ${p} died of ${signal}: ${writers[p]!.stderr()}`);
      assert.equal(code, 0, `writer ${p} exited ${code}: ${writers[p]!.stderr()}`);
    });
  } finally {
    for (const g of guards) g.clear();
    for (const w of writers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
  }

  // What each child says it wrote: at step i, this name at this version.
  const sharedVersions = new Map<string, Map<number, { p: number; i: number }>>();
  const expectedSharedSets = new Map<string, number>();
  const store = await openStore({ env: { COFFER_HOME: dir } });
  try {
    for (let p = 0; p < PROCESSES; p++) {
      const done = writers[p]!.lines.filter((l) => l.startsWith("done "));
      assert.equal(done.length, SETS, `writer ${p} acknowledged ${done.length} sets, not ${SETS}`);
      const lastShared = new Map<string, number>();
      done.forEach((line, i) => {
        const [, name, v, step] = line.split(" ");
        const version = Number(v);
        assert.equal(Number(step), i, `writer ${p}: acknowledgements out of order`);
        assert.equal(name, burstName(p, i), `writer ${p} step ${i}: wrote an unexpected name`);
        if (name!.startsWith("shared/")) {
          expectedSharedSets.set(name!, (expectedSharedSets.get(name!) ?? 0) + 1);
          // One process's own writes to a name get increasing versions.
          assert.ok(version > (lastShared.get(name!) ?? 0), `writer ${p}: ${name} versions went backwards`);
          lastShared.set(name!, version);
          const byVersion = sharedVersions.get(name!) ?? new Map<number, { p: number; i: number }>();
          assert.equal(byVersion.has(version), false, `${name} v${version} was acknowledged to two writers`);
          byVersion.set(version, { p, i });
          sharedVersions.set(name!, byVersion);
        } else {
          assert.equal(version, 1, `${name} should be at version 1, was acknowledged as v${version}`);
        }
      });
    }

    // Every name unique to a process holds exactly its value.
    let uniqueNames = 0;
    for (let p = 0; p < PROCESSES; p++) {
      for (let i = 0; i < SETS; i++) {
        const name = burstName(p, i);
        if (name.startsWith("shared/")) continue;
        uniqueNames++;
        assertHolds(store, name, 1, burstValue(p, i), "unique name");
        const current = store.get(name);
        assert.equal(current.version, 1, `${name}: the current version is not 1`);
        current.dispose();
      }
    }

    // Each shared name has one version per set made to it, every one decrypting to the value
    // that its writer was told it got.
    assert.equal(expectedSharedSets.size, SHARED_NAMES);
    let sharedSets = 0;
    for (const [name, sets] of expectedSharedSets) {
      sharedSets += sets;
      const history = store.history(name);
      assert.equal(history.length, sets, `${name} has ${history.length} versions, not ${sets}`);
      assert.deepEqual(
        history.map((h) => h.version),
        Array.from({ length: sets }, (_, k) => k + 1),
        `${name}: versions are not 1..${sets}`,
      );
      const byVersion = sharedVersions.get(name)!;
      assert.equal(byVersion.size, sets, `${name}: acknowledged versions do not cover the history`);
      for (const { version } of history) {
        const who = byVersion.get(version);
        assert.ok(who !== undefined, `${name} v${version} was never acknowledged`);
        assertHolds(store, name, version, burstValue(who.p, who.i), "shared name");
      }
    }
    assert.equal(uniqueNames + sharedSets, PROCESSES * SETS);
    assert.equal(store.list().length, uniqueNames + SHARED_NAMES, "the store lists other secrets than were written");

    const verification = store.verifyAudit();
    assert.equal(verification.ok, true, `audit chain broken at ${verification.brokenAt}: ${verification.reason}`);
    assert.equal(verification.records, 1 + PROCESSES * SETS);
    const log = store.auditLog();
    assert.equal(log.length, 1 + PROCESSES * SETS);
    assert.equal(log.filter((r) => r.action === "set").length, PROCESSES * SETS);
  } finally {
    store.close();
  }
});

const ITERATIONS = 100;

interface Ack {
  iter: number;
  i: number;
  name: string;
  version: number;
}

test("a writer SIGKILLed at random points 100 times loses no acknowledged write", { timeout: 150_000 }, async (t) => {
  const dir = tempHome();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await initCoffer({ env: { COFFER_HOME: dir }, name: "tester" });

  const acks: Ack[] = [];
  let killedBeforeOpen = 0;
  let killedWithoutAck = 0;

  for (let iter = 0; iter < ITERATIONS; iter++) {
    const w = startWriter(dir, ["kill", String(iter)]);
    const hung = guard(w, 30_000);
    // Node needs ~150 ms just to start the child, so a delay counted from the spawn mostly
    // lands before the store is open; most iterations therefore count from the "open" line.
    const fromSpawn = iter % 4 === 0;
    let killer: NodeJS.Timeout | undefined;
    let killed = false;
    const kill = (): void => {
      killed = true;
      w.child.kill("SIGKILL");
    };
    if (fromSpawn) {
      killer = setTimeout(kill, randomInt(20, 251));
    } else {
      w.onLine((line) => {
        if (line === "open") killer = setTimeout(kill, randomInt(0, 201));
      });
    }
    let exit;
    try {
      exit = await w.closed;
    } finally {
      hung.clear();
      clearTimeout(killer);
    }
    assert.equal(hung.fired(), false, `iteration ${iter}: the writer hung (stderr: ${w.stderr()})`);
    assert.ok(killed, `iteration ${iter}: the writer exited by itself (code ${exit.code}): ${w.stderr()}`);
    assert.equal(exit.signal, "SIGKILL", `iteration ${iter}: the writer was not killed by SIGKILL`);

    if (!w.lines.includes("open")) killedBeforeOpen++;
    const fresh: Ack[] = [];
    for (const line of w.lines) {
      if (!line.startsWith("ack ")) continue;
      const [, name, v, step] = line.split(" ");
      const i = Number(step);
      assert.equal(i, fresh.length, `iteration ${iter}: acknowledgements out of order`);
      assert.equal(name, killName(iter, i), `iteration ${iter} step ${i}: acknowledged an unexpected name`);
      fresh.push({ iter, i, name: name!, version: Number(v) });
    }
    if (fresh.length === 0) killedWithoutAck++;
    acks.push(...fresh);

    // After every kill: the store opens, its chain verifies, and every acknowledged write of
    // this iteration is there with its exact value.
    const store = await openStore({ env: { COFFER_HOME: dir } });
    try {
      const verification = store.verifyAudit();
      assert.equal(verification.ok, true, `iteration ${iter}: audit chain broken at ${verification.brokenAt}: ${verification.reason}`);
      for (const a of fresh) assertHolds(store, a.name, a.version, killValue(a.iter, a.i), `iteration ${iter}`);
    } finally {
      store.close();
    }
  }

  t.diagnostic(`${acks.length} acknowledged writes; ${killedBeforeOpen} kills before the store was open; ${killedWithoutAck} kills before any acknowledgement`);
  assert.ok(acks.length > 0, "no write was ever acknowledged, so nothing was tested");

  const store = await openStore({ env: { COFFER_HOME: dir } });
  try {
    // Every acknowledged write, of every iteration, is still there.
    for (const a of acks) assertHolds(store, a.name, a.version, killValue(a.iter, a.i), "at the end");

    // Nothing else is there but whole writes: each version of each secret decrypts to a value
    // the writer wrote to that very name, no write appears twice, versions have no gaps, and
    // the audit holds one "set" per version.
    const seen = new Set<string>();
    let versions = 0;
    for (const info of store.list()) {
      const history = store.history(info.name);
      assert.deepEqual(
        history.map((h) => h.version),
        Array.from({ length: info.version }, (_, k) => k + 1),
        `${info.name}: versions are not 1..${info.version}`,
      );
      for (const { version } of history) {
        versions++;
        const secret = store.get(info.name, { version });
        try {
          const m = /^v-(\d+)-(\d+)$/.exec(secret.reveal());
          assert.ok(m !== null, `${info.name} v${version} holds a value no writer wrote`);
          const key = `${m[1]}-${m[2]}`;
          assert.equal(killName(Number(m[1]), Number(m[2])), info.name, `${info.name} v${version} holds a value written to another name`);
          assert.equal(seen.has(key), false, `${info.name} v${version} repeats a write`);
          seen.add(key);
        } finally {
          secret.dispose();
        }
      }
    }
    assert.ok(versions >= acks.length);
    const verification = store.verifyAudit();
    assert.equal(verification.ok, true, `audit chain broken at ${verification.brokenAt}: ${verification.reason}`);
    assert.equal(verification.records, 1 + versions, "the audit does not hold exactly one record per version");
    const log = store.auditLog();
    assert.equal(log.filter((r) => r.action === "set").length, versions);
  } finally {
    store.close();
  }
});
