/**
 * Issue 11 item 5: the directories above the store and the identity are checked as ssh checks
 * `authorized_keys`, and the audit chain's head is signed beside the identity so that an older
 * copy of the store (or replanted WAL frames) cannot silently roll a secret back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initCoffer, openStore } from "../../src/index.ts";
import { loadIdentity } from "../../src/identity/identity.ts";
import { assertSecureParents } from "../../src/core/fs-secure.ts";
import { tempDir } from "../helpers.ts";

const NOBODY = 65534;

test("replanting old WAL frames / an older copy of the store is refused", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  const store = join(home, "store.db");
  await initCoffer({ env, name: "alice" });
  const a = await openStore({ env });
  a.set("api/key", "before-rotation");
  // While the connection is open the change sits in WAL frames: save the file and its WAL.
  const saved = join(tempDir(t), "saved");
  mkdirSync(saved);
  for (const f of ["store.db", "store.db-wal"]) if (existsSync(join(home, f))) copyFileSync(join(home, f), join(saved, f));
  a.set("api/key", "after-rotation");
  a.close();

  for (const f of ["store.db-wal", "store.db-shm"]) rmSync(join(home, f), { force: true });
  for (const f of ["store.db", "store.db-wal"]) if (existsSync(join(saved, f))) copyFileSync(join(saved, f), join(home, f));
  chmodSync(store, 0o600);
  await assert.rejects(openStore({ env }), {
    code: "E_INTEGRITY",
    message: /is not the one last written: its audit chain has \d+ records, fewer than the \d+ signed .*`coffer audit accept`/,
  });
  // The replanted copy is internally consistent: only the signed head tells it apart.
  const accepted = await openStore({ env, acceptHead: true });
  try {
    assert.equal(accepted.verifyAudit().ok, true);
    assert.equal(accepted.get("api/key").reveal(), "before-rotation");
    assert.equal(accepted.headStatus.state, "diverged");
  } finally {
    accepted.close();
  }
});

test("a store whose chain diverges from the signed head (same length, other records) is refused", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const copy = join(tempDir(t), "copy.db");
  copyFileSync(join(home, "store.db"), copy);
  const a = await openStore({ env });
  a.set("k", "real");
  a.close();
  const headFile = onlyFile(join(home, "heads"));
  const realHead = readFileSync(headFile, "utf8");
  // Put the copy back and write one other record: the same count as the signed head, another hash.
  copyFileSync(copy, join(home, "store.db"));
  const b = await openStore({ env, acceptHead: true });
  b.set("k", "forged");
  b.close();
  writeFileSync(headFile, realHead);
  await assert.rejects(openStore({ env }), { code: "E_INTEGRITY", message: /its audit record 2 differs from the one signed/ });
});

function onlyFile(dir: string): string {
  const [only, ...more] = readdirSync(dir);
  assert.ok(only !== undefined && more.length === 0);
  return join(dir, only);
}

test("a tampered signed head is refused", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const file = onlyFile(join(home, "heads"));
  const head = JSON.parse(readFileSync(file, "utf8")) as { count: number };
  writeFileSync(file, JSON.stringify({ ...head, count: 1000 }));
  await assert.rejects(openStore({ env }), { code: "E_INTEGRITY", message: /signature that does not verify/ });
});

test("a store from before the signed head opens and gets a head", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const s = await openStore({ env });
  s.set("k", "v");
  s.close();
  rmSync(join(home, "heads"), { recursive: true }); // as a store written before signed heads
  const notices: string[] = [];
  const first = await openStore({ env, notice: (m) => notices.push(m) });
  assert.equal(first.headStatus.state, "new");
  first.close();
  assert.equal(notices.length, 1);
  assert.match(notices[0]!, /had no signed head .*signed one now at record 2/);
  assert.ok(existsSync(join(home, "heads")));
  const again = await openStore({ env, notice: (m) => notices.push(m) });
  assert.equal(again.headStatus.state, "ok");
  assert.equal(again.get("k").reveal(), "v");
  again.close();
  assert.equal(notices.length, 1);
});

test("reads do not re-sign the head, and a store read since its last write still opens", async (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name: "alice" });
  const s = await openStore({ env });
  s.set("k", "v");
  const file = onlyFile(join(home, "heads"));
  const before = readFileSync(file, "utf8");
  s.appendAudit({ action: "get", name: "k", version: 1, detail: { via: "cli" } }, { durable: false });
  assert.equal(readFileSync(file, "utf8"), before);
  s.close();
  const again = await openStore({ env });
  assert.equal(again.headStatus.state, "ok");
  again.close();
});

test("a world-writable store dir is refused", async (t) => {
  const root = tempDir(t);
  const data = join(root, "data");
  const env = { COFFER_IDENTITY: join(root, "id", "identity"), COFFER_STORE: join(data, "store.db") };
  await initCoffer({ env, name: "alice" });
  chmodSync(data, 0o777);
  await assert.rejects(openStore({ env }), {
    code: "E_PERMISSIONS",
    message: new RegExp(`the directory ${data} above the store is writable by others \\(mode 0777\\).*chmod go-w`),
  });
  // A directory higher up counts too, up to home or /.
  chmodSync(data, 0o700);
  chmodSync(root, 0o757);
  await assert.rejects(openStore({ env }), { code: "E_PERMISSIONS", message: new RegExp(`the directory ${root} above the (identity file|store)`) });
  chmodSync(root, 0o700);
  (await openStore({ env })).close();
});

test("a foreign-owned identity dir is refused", async (t) => {
  const root = tempDir(t);
  const idDir = join(root, "id");
  const env = { COFFER_IDENTITY: join(idDir, "identity"), COFFER_STORE: join(root, "data", "store.db") };
  await initCoffer({ env, name: "alice" });
  chownSync(idDir, NOBODY, NOBODY);
  const message = new RegExp(`the directory ${idDir} above the identity file is owned by uid ${NOBODY}, not by you`);
  await assert.rejects(loadIdentity(env.COFFER_IDENTITY), { code: "E_PERMISSIONS", message });
  await assert.rejects(openStore({ env }), { code: "E_PERMISSIONS", message });
});

test("a group-writable dir of a group that is not the user's own is refused", (t) => {
  const root = tempDir(t);
  const dir = join(root, "shared");
  mkdirSync(dir, { mode: 0o770 });
  chmodSync(dir, 0o770);
  chownSync(dir, process.getuid!(), NOBODY);
  assert.throws(() => assertSecureParents(join(dir, "store.db"), "store", root), { code: "E_PERMISSIONS", message: /writable by its group/ });
  chownSync(dir, process.getuid!(), process.getgid!());
  // Root's primary group on the test machines is its own private group (named root, no members).
  assertSecureParents(join(dir, "store.db"), "store", root);
});

test("a symlinked data dir pointing into another user's directory is refused", async (t) => {
  const root = tempDir(t);
  const env = { COFFER_IDENTITY: join(root, "id", "identity"), COFFER_STORE: join(root, "data", "store.db") };
  await initCoffer({ env, name: "alice" });
  const theirs = join(tempDir(t), "theirs");
  mkdirSync(theirs, { mode: 0o755 });
  renameSync(join(root, "data"), join(theirs, "data"));
  chownSync(theirs, NOBODY, NOBODY);
  symlinkSync(join(theirs, "data"), join(root, "data"));
  await assert.rejects(openStore({ env }), { code: "E_PERMISSIONS", message: new RegExp(`${theirs} above the store is owned by uid ${NOBODY}`) });
  // A symlink to a directory of the user's own is fine.
  chownSync(theirs, 0, 0);
  (await openStore({ env })).close();
});
