import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { findConfig, loadConfig } from "../../src/config/load.ts";
import {
  addTrusted, assertTrustedProjectFile, isSharedStickyDir, projectDirs, readTrustList, removeTrusted, trustListPath, untrustedReason,
} from "../../src/config/trust.ts";
import type { OwnerStat, TrustOptions } from "../../src/config/trust.ts";
import { tempDir } from "../helpers.ts";

const YML = "environments:\n  dev:\n    env:\n      A: app/a\n";
const OTHER = 65534; // nobody
const ME = 1000;

function st(uid: number, mode: number, kind: "file" | "dir" = "file", dev = 1): OwnerStat {
  return { uid, mode, dev, isFile: () => kind === "file", isDirectory: () => kind === "dir" };
}

/** A fake file system: path → stat. */
function fakeStat(entries: Record<string, OwnerStat>): (p: string) => OwnerStat | undefined {
  return (p) => entries[p];
}

function code(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message };
  }
  assert.fail("expected an error");
}

// Tests below chown files to another uid, which only root may do; CI runs them as root.
const asRoot = process.getuid?.() === 0 ? {} : { skip: "needs root to chown a file to another user" };

/* ----------------------------------- the rule, with injected stats ------------------------ */

test("the ownership rule: another user's file or directory, or one others can write, is refused; yours, root's and group-writable are fine", () => {
  const mine = st(ME, 0o100644);
  const myDir = st(ME, 0o40755, "dir");
  assert.equal(untrustedReason(mine, myDir, ME), undefined);
  assert.equal(untrustedReason(st(0, 0o100644), st(0, 0o40755, "dir"), ME), undefined, "root's files are trusted");
  assert.equal(untrustedReason(st(ME, 0o100664), st(ME, 0o42775, "dir"), ME), undefined, "group-writable is fine");
  assert.equal(untrustedReason(st(OTHER, 0o100644), myDir, ME), `it is owned by uid ${OTHER}, not by you (uid ${ME}) or root`);
  assert.equal(untrustedReason(st(ME, 0o100666), myDir, ME), "others can write it (mode 0666)");
  assert.equal(untrustedReason(mine, st(OTHER, 0o40755, "dir"), ME), `its directory is owned by uid ${OTHER}, not by you (uid ${ME}) or root`);
  assert.equal(untrustedReason(mine, st(ME, 0o40777, "dir"), ME), "others can write its directory (mode 0777)");
  assert.equal(untrustedReason(mine, st(0, 0o41777, "dir"), ME), undefined, "a sticky directory protects a file you own");
});

test("root is refused a project file in a user's checkout until it is trusted", (t) => {
  const home = tempDir(t);
  const options: TrustOptions = {
    uid: 0,
    env: { HOME: home },
    stat: fakeStat({ "/home/u/app": st(ME, 0o40755, "dir") }),
  };
  const err = code(() => assertTrustedProjectFile("/home/u/app/.coffer.yml", st(ME, 0o100644), options));
  assert.equal(err.code, "E_PERMISSIONS");
  assert.match(err.message, /^refusing the project file \/home\/u\/app\/\.coffer\.yml: it is owned by uid 1000, not by you \(uid 0\) or root; .* run `coffer trust \/home\/u\/app`$/);
  addTrusted(home, { env: { HOME: home } }); // an unrelated dir does not help
  assert.equal(code(() => assertTrustedProjectFile("/home/u/app/.coffer.yml", st(ME, 0o100644), options)).code, "E_PERMISSIONS");
  writeFileSync(trustListPath({ HOME: home }), `${readFileSync(trustListPath({ HOME: home }), "utf8")}/home/u/app\n`);
  assertTrustedProjectFile("/home/u/app/.coffer.yml", st(ME, 0o100644), options);
});

test("a project file others can write says to chmod it or trust it", () => {
  const err = code(() => assertTrustedProjectFile("/p/.coffer.yml", st(ME, 0o100646), { uid: ME, env: { HOME: "/nonexistent" }, stat: fakeStat({ "/p": st(ME, 0o40755, "dir") }) }));
  assert.match(err.message, /others can write it \(mode 0646\);.* run `chmod o-w \/p\/\.coffer\.yml`, or `coffer trust \/p`$/);
});

/* ---------------------------------------- the walk ---------------------------------------- */

test("a project file in /tmp above the checkout is never read (the walk stops before a root-owned sticky dir)", () => {
  const fs = {
    "/": st(0, 0o40755, "dir"),
    "/tmp": st(0, 0o41777, "dir"),
    "/tmp/.coffer.yml": st(OTHER, 0o100644),
    "/tmp/work": st(ME, 0o40755, "dir"),
    "/tmp/work/app": st(ME, 0o40755, "dir"),
  };
  const options: TrustOptions = { uid: ME, home: "/home/u", stat: fakeStat(fs) };
  assert.deepEqual([...projectDirs("/tmp/work/app", options)], ["/tmp/work/app", "/tmp/work"]);
  assert.match(code(() => findConfig("/tmp/work/app", options)).message, /^no \.coffer\.yml in \/tmp\/work\/app or its parents up to \/tmp\/work \(the search stops/);
  assert.deepEqual([...projectDirs("/tmp", options)], [], "not even when the walk starts there");
});

test("the walk stops at a sticky dir others can write, whoever owns it, as /dev/shm", () => {
  assert.equal(isSharedStickyDir(st(0, 0o41777, "dir")), true);
  assert.equal(isSharedStickyDir(st(OTHER, 0o41777, "dir")), true);
  assert.equal(isSharedStickyDir(st(ME, 0o40777, "dir")), false, "not sticky: the ownership rule refuses what is in it");
  const options: TrustOptions = { uid: ME, home: "/home/u", stat: fakeStat({ "/dev": st(0, 0o40755, "dir"), "/dev/shm": st(OTHER, 0o41777, "dir"), "/dev/shm/x": st(ME, 0o40700, "dir") }) };
  assert.deepEqual([...projectDirs("/dev/shm/x", options)], ["/dev/shm/x"]);
});

test("a project file above the user's home is never read", () => {
  const fs = {
    "/": st(0, 0o40755, "dir"),
    "/.coffer.yml": st(0, 0o100644),
    "/home": st(0, 0o40755, "dir"),
    "/home/.coffer.yml": st(0, 0o100644),
    "/home/u": st(ME, 0o40700, "dir"),
    "/home/u/src": st(ME, 0o40755, "dir"),
  };
  const options: TrustOptions = { uid: ME, home: "/home/u", stat: fakeStat(fs) };
  assert.deepEqual([...projectDirs("/home/u/src", options)], ["/home/u/src", "/home/u"]);
  assert.equal(code(() => findConfig("/home/u/src", options)).code, "E_CONFIG");
  // Outside home the walk goes on to / (a server's /srv/app checkout with /srv's file).
  assert.deepEqual([...projectDirs("/home", options)], ["/home", "/"]);
});

test("a project file across a filesystem boundary is never read", () => {
  const fs = {
    "/": st(0, 0o40755, "dir", 1),
    "/.coffer.yml": st(0, 0o100644, "file", 1),
    "/mnt": st(0, 0o40755, "dir", 1),
    "/mnt/usb": st(ME, 0o40755, "dir", 2),
    "/mnt/usb/app": st(ME, 0o40755, "dir", 2),
  };
  const options: TrustOptions = { uid: ME, home: "/home/u", stat: fakeStat(fs) };
  assert.deepEqual([...projectDirs("/mnt/usb/app", options)], ["/mnt/usb/app", "/mnt/usb"]);
  assert.equal(code(() => findConfig("/mnt/usb/app", options)).code, "E_CONFIG");
});

test("the real /tmp is never looked in", (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, "a"));
  const dirs = [...projectDirs(join(dir, "a"))];
  assert.ok(!dirs.includes(tmpdir()), dirs.join(", "));
  assert.ok(isSharedStickyDir(statSync(tmpdir())));
});

/* ------------------------------- real files owned by others ------------------------------- */

test("a .coffer.yml owned by another user in a parent directory is refused", asRoot, (t) => {
  const root = tempDir(t);
  const parent = join(root, "shared");
  const cwd = join(parent, "checkout");
  mkdirSync(cwd, { recursive: true });
  const file = join(parent, ".coffer.yml");
  writeFileSync(file, YML);
  chownSync(file, OTHER, OTHER);
  const env = { HOME: join(root, "home") };
  assert.equal(findConfig(cwd, { env }), file, "found: the walk does not skip it");
  const err = code(() => loadConfig(file, { env }));
  assert.equal(err.code, "E_PERMISSIONS");
  assert.equal(
    err.message,
    `refusing the project file ${file}: it is owned by uid ${OTHER}, not by you (uid 0) or root; a project file chooses where tokens go and what commands run with, ` +
      `so coffer obeys one only when you or root own it and others cannot write it. If you trust it, run \`coffer trust ${parent}\``,
  );
});

test("a .coffer.yml in a directory another user owns is refused, even when the file is yours", asRoot, (t) => {
  const dir = join(tempDir(t), "theirs");
  mkdirSync(dir);
  const file = join(dir, ".coffer.yml");
  writeFileSync(file, YML);
  chownSync(dir, OTHER, OTHER);
  assert.match(code(() => loadConfig(file, { env: { HOME: "/nonexistent" } })).message, /its directory is owned by uid 65534/);
});

test("--config F is checked the same way; coffer trust DIR accepts it, --remove takes it back", asRoot, (t) => {
  const root = tempDir(t);
  const env = { HOME: join(root, "home"), XDG_CONFIG_HOME: join(root, "config") };
  const dir = join(root, "checkout");
  mkdirSync(dir);
  const file = join(dir, "project.yml");
  writeFileSync(file, YML);
  chownSync(file, ME, ME);
  chownSync(dir, ME, ME);
  assert.equal(code(() => loadConfig(file, { env })).code, "E_PERMISSIONS");
  assert.deepEqual(addTrusted(dir, { env }), { dir, added: true });
  assert.deepEqual(addTrusted(file, { env }), { dir, added: false }, "a file stands for its directory");
  assert.equal(statSync(trustListPath(env)).mode & 0o777, 0o600);
  assert.deepEqual(readTrustList({ env }), [dir]);
  assert.deepEqual([...loadConfig(file, { env }).environments.keys()], ["dev"]);
  assert.equal(removeTrusted(dir, { env }), dir);
  assert.equal(removeTrusted(dir, { env }), undefined);
  assert.equal(code(() => loadConfig(file, { env })).code, "E_PERMISSIONS");
});

test("a project file others can write is refused; a group-writable one is obeyed", (t) => {
  const dir = tempDir(t);
  const file = join(dir, ".coffer.yml");
  writeFileSync(file, YML);
  chmodSync(file, 0o664);
  loadConfig(file, { env: { HOME: "/nonexistent" } });
  chmodSync(file, 0o666);
  assert.match(code(() => loadConfig(file, { env: { HOME: "/nonexistent" } })).message, /others can write it \(mode 0666\)/);
  chmodSync(file, 0o644);
  chmodSync(dir, 0o777);
  assert.match(code(() => loadConfig(file, { env: { HOME: "/nonexistent" } })).message, /others can write its directory \(mode 0777\)/);
});

test("a trust list others can write or own is not believed", asRoot, (t) => {
  const root = tempDir(t);
  const env = { HOME: root, XDG_CONFIG_HOME: join(root, "config") };
  addTrusted(root, { env });
  const list = trustListPath(env);
  chmodSync(list, 0o666);
  assert.match(code(() => readTrustList({ env })).message, /can be written by group or others; run `chmod 600 /);
  chmodSync(list, 0o600);
  chownSync(list, OTHER, OTHER);
  assert.match(code(() => readTrustList({ env })).message, /is owned by uid 65534, not by you \(uid 0\)/);
  assert.equal(dirname(list), join(root, "config", "coffer"));
});
