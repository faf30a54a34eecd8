import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { recordedDir, removeRecordedDir, sweepRuntimeDirs } from "../../src/deliver/runtime-dir.ts";
import { tempDir } from "../helpers.ts";

/** A pid that existed and is gone (a finished child, reaped), and its process group. */
function gonePid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

function ownGroup(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

function plant(base: string, id: string, owner: object): string {
  const dir = join(base, id);
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, ".coffer-owner"), JSON.stringify({ created: new Date().toISOString(), ...owner }), { mode: 0o600 });
  writeFileSync(join(dir, "KEY"), "k");
  return dir;
}

test("a link planted in the runtime base under a dir's name is never swept, nor what it points to", (t) => {
  const root = tempDir(t);
  const base = join(root, "base");
  mkdirSync(base, { mode: 0o700 });
  const victim = join(root, "victim");
  mkdirSync(victim);
  writeFileSync(join(victim, ".coffer-owner"), JSON.stringify({ kind: "run", pid: gonePid() }));
  symlinkSync(victim, join(base, "0123456789abcdef"));
  assert.deepEqual(sweepRuntimeDirs(base), []);
  assert.equal(removeRecordedDir(base, join(base, "0123456789abcdef")), false);
  assert.ok(existsSync(join(victim, ".coffer-owner")));
});

test("a path with .. or . is never taken for a recorded dir, even when it leads to one", (t) => {
  const base = join(tempDir(t), "base");
  mkdirSync(base, { mode: 0o700 });
  const dir = plant(base, "0123456789abcdef", { kind: "load", pid: gonePid() });
  assert.ok(recordedDir(base, dir));
  for (const p of [`${base}/0123456789abcdef/../0123456789abcdef`, `${base}/./0123456789abcdef`, `${base}/..`, `${base}/0123456789abcdef/..`]) {
    assert.equal(recordedDir(base, p), undefined, p);
    assert.equal(removeRecordedDir(base, p), false, p);
  }
  assert.ok(existsSync(dir));
});

test("a run dir is swept only when no process of its process group is left", (t) => {
  const base = join(tempDir(t), "base");
  mkdirSync(base, { mode: 0o700 });
  const dead = gonePid();
  const orphaned = plant(base, "0000000000000001", { kind: "run", pid: dead, pgid: ownGroup() });
  const gone = plant(base, "0000000000000002", { kind: "run", pid: dead, pgid: dead });
  assert.deepEqual(sweepRuntimeDirs(base), [gone]);
  assert.ok(existsSync(join(orphaned, "KEY")), "a live member of the group still uses it");
});

test("a load dir lives while its link points at it, or without one while its session lives", (t) => {
  const root = tempDir(t);
  const base = join(root, "base");
  mkdirSync(base, { mode: 0o700 });
  const dead = gonePid();
  const link = join(root, ".env");
  const linked = plant(base, "0000000000000001", { kind: "load", pid: dead, link });
  symlinkSync(join(linked, ".env"), link);
  const unlinked = plant(base, "0000000000000002", { kind: "load", pid: dead, link: join(root, "gone.env") });
  const session = plant(base, "0000000000000003", { kind: "load", pid: dead, sid: ownGroup() });
  const ended = plant(base, "0000000000000004", { kind: "load", pid: dead, sid: dead });
  assert.deepEqual(sweepRuntimeDirs(base).sort(), [unlinked, ended]);
  assert.ok(existsSync(linked) && existsSync(session));
});

test("a dir in the runtime base without coffer's record is never swept, however old", (t) => {
  const base = join(tempDir(t), "base");
  mkdirSync(base, { mode: 0o700 });
  const foreign = join(base, "0123456789abcdef");
  mkdirSync(foreign, { mode: 0o700 });
  writeFileSync(join(foreign, "data"), "x");
  utimesSync(foreign, new Date(0), new Date(0));
  assert.deepEqual(sweepRuntimeDirs(base), []);
  assert.ok(existsSync(join(foreign, "data")));
});
