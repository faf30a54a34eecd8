import { test } from "node:test";
import assert from "node:assert/strict";
import { internalsOf } from "../../src/store/internal.ts";
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { TestContext } from "node:test";
import { initCoffer, openStore, type Store } from "../../src/index.ts";
import { backupStore, readAgeHeader, restoreBackup, type BackupContainer, type RestoreOptions } from "../../src/store/backup.ts";
import { decryptWithIdentity, encryptToRecipients, generateAgeIdentity } from "../../src/crypto/age.ts";
import { cardOf, loadIdentity, renderIdentityText, type Identity } from "../../src/identity/identity.ts";
import { cardFingerprint } from "../../src/identity/card.ts";
import { tempDir } from "../helpers.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";
import { asV1, splitV2 } from "./backup-parts.ts";

interface Home {
  dir: string;
  env: NodeJS.ProcessEnv;
  identityPath: string;
  storePath: string;
}

function emptyHome(t: TestContext): Home {
  const dir = tempDir(t);
  return { dir, env: { COFFER_HOME: dir }, identityPath: join(dir, "identity"), storePath: join(dir, "store.db") };
}

async function initHome(t: TestContext, name = "alice"): Promise<{ home: Home; store: Store; identity: Identity }> {
  const home = emptyHome(t);
  await initCoffer({ env: home.env, name });
  const store = await openStore({ env: home.env });
  t.after(() => store.close());
  return { home, store, identity: await loadIdentity(home.identityPath) };
}

/** A store with a bit of everything: versions, a removed secret, binary, sharing tables. */
function populate(store: Store): void {
  store.set("db/prod/password", "pw-one", { description: "primary db" });
  store.set("db/prod/password", "pw-two\n");
  store.set("tls/blob", Buffer.from([0, 255, 10, 13, 0]), { rotationSeconds: 86400 });
  store.set("old/token", "gone-soon");
  store.remove("old/token");
  const now = new Date().toISOString();
  internalsOf(store).write(() => {
    internalsOf(store).driver.stmt("INSERT INTO members (name, card, recipient, signing_key, fingerprint, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run("bob", "coffer-card:v1:bob:age1…:k", "age1bob", "k", "FPRBOB", now, "alice");
    internalsOf(store).driver.stmt("INSERT INTO grants (member, pattern, granted_at, granted_by) VALUES (?, ?, ?, ?)").run("bob", "db/*", now, "alice");
    internalsOf(store).driver.stmt("INSERT INTO trusted (fingerprint, card, trusted_at) VALUES (?, ?, ?)").run("FPRCAROL", "coffer-card:v1:carol:x:y", now);
    internalsOf(store).driver.stmt("INSERT INTO exports (bundle_id, member, name, version, exported_at, exported_by) VALUES (?, ?, ?, ?, ?, ?)")
      .run("b1", "bob", "db/prod/password", 2, now, "alice");
    internalsOf(store).driver.stmt("INSERT INTO imports (name, source, source_version, bundle_id, imported_at) VALUES (?, ?, ?, ?, ?)")
      .run("ext/key", "carol", 3, "b0", now);
  });
}

function rows(store: Store, table: string): unknown[] {
  return internalsOf(store).driver.stmt(`SELECT * FROM ${table}`).all().map((r) => JSON.stringify(r, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v))).sort();
}

const SHARING_TABLES = ["members", "grants", "trusted", "exports", "imports", "store_keys", "meta"];

/** Restore options for `home` with consent to nothing (the library default). */
function into(home: Home, file: string, extra: Partial<RestoreOptions> = {}): RestoreOptions {
  return { env: home.env, file, ...extra };
}

function assertEmpty(home: Home): void {
  assert.deepEqual(readdirSync(home.dir), [], "nothing was written");
}

/** The backup's content as a v1 container (from which the forgeries below are made as v1 backups). */
async function containerOf(file: string, identity: Identity): Promise<BackupContainer> {
  return asV1(splitV2(await decryptWithIdentity(readFileSync(file), identity.secretKey, "test")));
}

/** Writes `container` as an unsigned backup (as before signatures) encrypted to `identity`, after `edit` changed its snapshot. */
async function forged(dir: string, container: BackupContainer, identity: Identity, edit?: (db: DatabaseSync) => void, json?: string): Promise<string> {
  const c = { ...container };
  if (edit !== undefined) {
    const path = join(dir, `edit-${Math.random().toString(36).slice(2)}.db`);
    writeFileSync(path, Buffer.from(c.store, "base64"));
    const db = new DatabaseSync(path);
    edit(db);
    db.close();
    c.store = readFileSync(path).toString("base64");
  }
  const out = join(dir, `forged-${Math.random().toString(36).slice(2)}.age`);
  writeFileSync(out, await encryptToRecipients(Buffer.from(json ?? JSON.stringify(c)), [identity.recipient]), { mode: 0o600 });
  return out;
}

test("a backup to the owner's recipient restores into an empty home: every table, value and version; the chain ends backup, restore", async (t) => {
  const { home, store, identity } = await initHome(t);
  populate(store);
  const out = join(tempDir(t), "coffer.backup");
  const r = await backupStore(store, { out, recipients: [identity.recipient], identityFile: home.identityPath, identity });
  assert.equal(r.verified, "decrypted");
  assert.equal(r.to, "recipient");
  assert.deepEqual(r.recipients, [identity.recipient]);
  assert.equal(r.identity, true);
  assert.equal(r.secrets, 2);
  assert.equal(r.versions, 4);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.deepEqual(await readAgeHeader(readFileSync(out)), { kind: "recipients", stanzas: ["X25519"] });
  assert.ok(readFileSync(out, "utf8").startsWith("-----BEGIN AGE ENCRYPTED FILE-----\n"));
  const parts = splitV2(await decryptWithIdentity(readFileSync(out), identity.secretKey, "test"));
  assert.ok(parts.headerLine.startsWith('{"format":"coffer-backup/v2",'));
  assert.deepEqual(Object.keys(parts.header).sort(), ["created", "format", "head", "identity", "recipient", "schema", "storeBytes"]);
  assert.equal(parts.header.schema, SCHEMA_VERSION.store);
  assert.equal(parts.header.identity, readFileSync(home.identityPath, "utf8"));
  assert.equal(parts.snapshot.subarray(0, 16).toString("latin1"), "SQLite format 3\0");
  assert.equal(parts.snapshot.length, parts.header.storeBytes);
  assert.equal(JSON.parse(parts.signatureLine).format, "coffer-backup-signature/v2");

  const fresh = emptyHome(t);
  const restored = await restoreBackup(into(fresh, out, { identityFile: home.identityPath }));
  assert.equal(restored.identityAction, "written");
  assert.equal(restored.replaced, false);
  assert.equal(restored.secrets, 2);
  assert.equal(restored.versions, 4);
  assert.deepEqual(readFileSync(fresh.identityPath), readFileSync(home.identityPath));
  assert.equal(statSync(fresh.identityPath).mode & 0o777, 0o600);
  assert.equal(statSync(fresh.storePath).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(fresh.dir).sort(), ["heads", "identity", "store.db"], "no temp files left");

  const back = await openStore({ env: fresh.env });
  t.after(() => back.close());
  assert.deepEqual(back.list("", { deleted: true }), store.list("", { deleted: true }));
  assert.deepEqual(back.history("db/prod/password"), store.history("db/prod/password"));
  assert.equal(back.get("db/prod/password").reveal(), "pw-two\n");
  assert.equal(back.get("db/prod/password", { version: 1 }).reveal(), "pw-one");
  assert.deepEqual(Buffer.from(back.get("tls/blob").bytes()), Buffer.from([0, 255, 10, 13, 0]));
  assert.throws(() => back.get("old/token"), { code: "E_NOT_FOUND", message: /was removed/ });
  for (const table of [...SHARING_TABLES, "secrets", "versions"]) assert.deepEqual(rows(back, table), rows(store, table), table);
  const original = store.auditLog();
  const chain = back.auditLog();
  assert.deepEqual(chain.slice(0, original.length), original);
  assert.deepEqual(chain.slice(original.length - 1).map((a) => a.action), ["backup", "restore"]);
  assert.deepEqual(original.at(-1)?.detail, { to: "recipient", identity: true });
  assert.equal(chain.length, restored.auditRecords);
  assert.deepEqual(back.verifyAudit(), { ok: true, records: chain.length });
  // The journal mode of the store (WAL) survives the snapshot.
  assert.equal((internalsOf(back).driver.stmt("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode, "wal");
});

test("a passphrase backup: scrypt 2^18, one stanza; a wrong passphrase writes nothing; the right one restores", async (t) => {
  const { home, store } = await initHome(t);
  store.set("k", "passphrase-protected-value");
  const out = join(tempDir(t), "p.backup");
  const said: string[] = [];
  const r = await backupStore(store, { out, passphrase: "correct horse battery", identityFile: home.identityPath, progress: (m) => said.push(m) });
  assert.equal(r.verified, "decrypted");
  assert.equal(r.logN, 18);
  assert.ok(said.some((m) => /scrypt 2\^18/.test(m)) && said.some((m) => /decrypting it again/.test(m)), said.join("|"));
  assert.deepEqual(await readAgeHeader(readFileSync(out)), { kind: "passphrase", logN: 18 });
  const binary = Buffer.from(readFileSync(out, "utf8").split("\n").slice(1, -2).join(""), "base64").toString("latin1");
  assert.match(binary, /^age-encryption\.org\/v1\n-> scrypt \S+ 18\n/);
  assert.ok(!readFileSync(out).includes("passphrase-protected-value"));

  const fresh = emptyHome(t);
  await assert.rejects(restoreBackup(into(fresh, out, { passphrase: "wrong" })), { code: "E_DECRYPT", message: /wrong passphrase/ });
  assertEmpty(fresh);
  let asked = 0;
  const restored = await restoreBackup(into(fresh, out, { passphrase: async () => (asked++, "correct horse battery") }));
  assert.equal(asked, 1);
  assert.equal(restored.identityAction, "written");
  const back = await openStore({ env: fresh.env });
  t.after(() => back.close());
  assert.equal(back.get("k").reveal(), "passphrase-protected-value");
  assert.equal(back.verifyAudit().ok, true);
});

test("restoring over an existing store needs consent; with it the store is replaced and a stale WAL is not replayed into it", async (t) => {
  const { home, store, identity } = await initHome(t);
  store.set("kept", "from-backup");
  const out = join(tempDir(t), "b.backup");
  await backupStore(store, { out, recipients: [identity.recipient], identityFile: home.identityPath, identity });
  store.set("later", "written-after-the-backup");
  const auditBefore = store.auditLog().length;

  await assert.rejects(restoreBackup(into(home, out)), { code: "E_CANCELLED", message: /already exists .*--yes/ });
  const seen: unknown[] = [];
  await assert.rejects(restoreBackup(into(home, out, { replace: async (info) => (seen.push(info), false) })), {
    code: "E_CANCELLED", message: /cancelled; nothing was changed/,
  });
  assert.equal(seen.length, 1);
  assert.deepEqual(Object.keys(seen[0] as object).sort(), ["backupCreated", "backupSecrets", "existingSecrets", "store"]);
  assert.equal((seen[0] as { existingSecrets: number }).existingSecrets, 2);
  assert.equal((seen[0] as { backupSecrets: number }).backupSecrets, 1);
  assert.equal(store.get("later").reveal(), "written-after-the-backup");
  assert.equal(store.auditLog().length, auditBefore);

  // Leave a WAL with frames of the old database next to it, as a crashed writer would.
  store.set("in-wal", "x");
  const wal = `${home.storePath}-wal`;
  assert.ok(existsSync(wal));
  copyFileSync(wal, `${wal}.saved`);
  store.close();
  copyFileSync(`${wal}.saved`, wal);

  const r = await restoreBackup(into(home, out, { replace: true }));
  assert.equal(r.replaced, true);
  assert.equal(r.identityAction, "kept");
  const back = await openStore({ env: home.env });
  t.after(() => back.close());
  assert.deepEqual(back.list().map((i) => i.name), ["kept"]);
  assert.equal((internalsOf(back).driver.stmt("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check, "ok");
  assert.deepEqual(back.auditLog().slice(-2).map((a) => [a.action, a.detail?.replaced]), [["backup", undefined], ["restore", true]]);
  assert.equal(back.verifyAudit().ok, true);
});

test("identities: another key at the target is a conflict; a backup without one adopts --identity or uses the existing one", async (t) => {
  const { home, store, identity } = await initHome(t);
  store.set("k", "v");
  const dir = tempDir(t);
  const withId = join(dir, "with.backup");
  const without = join(dir, "without.backup");
  await backupStore(store, { out: withId, recipients: [identity.recipient], identityFile: home.identityPath, identity });
  const r = await backupStore(store, { out: without, recipients: [identity.recipient], identityFile: null, identity });
  assert.equal(r.identity, false);
  assert.equal((await containerOf(without, identity)).identity, null);

  // Someone else's identity lives at the target: refused, nothing written.
  const other = emptyHome(t);
  await initCoffer({ env: other.env, name: "mallory" });
  const otherIdentity = readFileSync(other.identityPath);
  const otherStore = readFileSync(other.storePath);
  await assert.rejects(restoreBackup(into(other, withId, { identityFile: home.identityPath, replace: true })), {
    code: "E_CONFLICT", message: /is not the one in the backup/,
  });
  // Without an identity in the backup, the existing one is used, and it cannot open this store.
  await assert.rejects(restoreBackup(into(other, without, { identityFile: home.identityPath, replace: true })), {
    code: "E_DECRYPT", message: /cannot open the store in this backup/,
  });
  assert.deepEqual(readFileSync(other.identityPath), otherIdentity);
  assert.deepEqual(readFileSync(other.storePath), otherStore);

  // An empty home and no identity anywhere: it says what to give.
  const empty = emptyHome(t);
  await assert.rejects(restoreBackup(into(empty, without)), { code: "E_NOT_INITIALIZED", message: /--identity FILE/ });
  assertEmpty(empty);
  const adopted = await restoreBackup(into(empty, without, { identityFile: home.identityPath }));
  assert.equal(adopted.identityAction, "adopted");
  assert.equal(adopted.backupHasIdentity, false);
  assert.deepEqual(readFileSync(empty.identityPath), readFileSync(home.identityPath));
  const back = await openStore({ env: empty.env });
  t.after(() => back.close());
  assert.equal(back.get("k").reveal(), "v");
});

test("a backup to another key (an offline backup key) is checked by its header only, and that key restores it; a card works as a recipient", async (t) => {
  const { home, store, identity } = await initHome(t);
  store.set("k", "v");
  const dir = tempDir(t);
  const offlineKey = await generateAgeIdentity();
  const offlineFile = join(dir, "offline.key");
  writeFileSync(offlineFile, renderIdentityText(offlineKey, "offline"), { mode: 0o600 });
  const offline = await loadIdentity(offlineFile);
  const out = join(dir, "to-offline.backup");
  const r = await backupStore(store, { out, recipients: [offline.recipient], identityFile: home.identityPath, identity });
  assert.equal(r.verified, "header");
  assert.equal(r.secrets, 1);
  await assert.rejects(decryptWithIdentity(readFileSync(out), identity.secretKey, "x"), { code: "E_DECRYPT" });
  assert.equal((await containerOf(out, offline)).identity, readFileSync(home.identityPath, "utf8"));

  // Alice's own key is not a recipient: refused, nothing written.
  const fresh = emptyHome(t);
  await assert.rejects(restoreBackup(into(fresh, out, { identityFile: home.identityPath })), { code: "E_DECRYPT", message: /not one of its recipients/ });
  assertEmpty(fresh);
  // The offline key opens it, but did not sign it: the maker's fingerprint must be given.
  await assert.rejects(restoreBackup(into(fresh, out, { identityFile: offlineFile })), {
    code: "E_UNTRUSTED",
    message: new RegExp(`signed by "alice" \\(fingerprint ${cardFingerprint(cardOf(identity))}\\), not by your identity .*--from ${cardFingerprint(cardOf(identity))}`),
  });
  assertEmpty(fresh);
  await assert.rejects(restoreBackup(into(fresh, out, { identityFile: offlineFile, from: "AAAAAAAAAAAAAAAA" })), { code: "E_UNTRUSTED", message: /given with --from/ });
  // With --from, alice's identity comes out of the backup and opens the store.
  const restored = await restoreBackup(into(fresh, out, { identityFile: offlineFile, from: cardFingerprint(cardOf(identity)).toLowerCase() }));
  assert.deepEqual(restored.signedBy, { name: "alice", fingerprint: cardFingerprint(cardOf(identity)) });
  assert.equal(restored.identityAction, "written");
  assert.deepEqual(readFileSync(fresh.identityPath), readFileSync(home.identityPath));
  const back = await openStore({ env: fresh.env });
  t.after(() => back.close());
  assert.equal(back.get("k").reveal(), "v");

  const both = join(dir, "both.backup");
  const r2 = await backupStore(store, { out: both, recipients: [offline.recipient, cardOf(identity), identity.recipient], identityFile: null, identity });
  assert.deepEqual(r2.recipients, [offline.recipient, identity.recipient], "a card becomes its recipient; duplicates go");
  assert.equal(r2.verified, "decrypted");
  assert.deepEqual(await readAgeHeader(readFileSync(both)), { kind: "recipients", stanzas: ["X25519", "X25519"] });
});

test("refusals before anything is recorded: no or two encryptions, bad recipient, weak work factor, existing or protected --out", async (t) => {
  const { home, store, identity } = await initHome(t);
  const dir = tempDir(t);
  const out = join(dir, "b.backup");
  const base = { out, identityFile: home.identityPath, identity };
  const before = store.auditLog().length;
  await assert.rejects(backupStore(store, base), { code: "E_USAGE" });
  await assert.rejects(backupStore(store, { ...base, passphrase: "p", recipients: [identity.recipient] }), { code: "E_USAGE" });
  await assert.rejects(backupStore(store, { ...base, passphrase: "" }), { code: "E_INVALID_VALUE" });
  await assert.rejects(backupStore(store, { ...base, passphrase: "p", logN: 16 }), { code: "E_INVALID_VALUE", message: /2\^18/ });
  await assert.rejects(backupStore(store, { ...base, recipients: ["age1nope"] }), { code: "E_INVALID_VALUE" });
  await assert.rejects(backupStore(store, { ...base, recipients: ["ssh-ed25519 AAAA"] }), { code: "E_INVALID_VALUE" });
  for (const bad of [home.storePath, `${home.storePath}-wal`, home.identityPath]) {
    await assert.rejects(backupStore(store, { ...base, out: bad, recipients: [identity.recipient], force: true }), { code: "E_CONFLICT", message: /refusing to write the backup over/ });
  }
  await assert.rejects(backupStore(store, { ...base, out: join(dir, "no", "such", "dir"), recipients: [identity.recipient] }), { code: "E_NOT_FOUND" });
  writeFileSync(out, "precious");
  await assert.rejects(backupStore(store, { ...base, recipients: [identity.recipient] }), { code: "E_CONFLICT", message: /--force/ });
  assert.equal(readFileSync(out, "utf8"), "precious");
  assert.equal(store.auditLog().length, before, "no backup record for a refused backup");
  assert.ok(existsSync(home.storePath));

  await backupStore(store, { ...base, recipients: [identity.recipient], force: true });
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ["b.backup"], "no temp file left");
  assert.equal((await readAgeHeader(readFileSync(out))).kind, "recipients");
  assert.equal(store.auditLog().length, before + 1);
});

test("a damaged, foreign or forged backup is refused before anything is written", async (t) => {
  const { home, store, identity } = await initHome(t);
  store.set("k", "v");
  const dir = tempDir(t);
  const out = join(dir, "good.backup");
  await backupStore(store, { out, recipients: [identity.recipient], identityFile: home.identityPath, identity });
  const good = readFileSync(out);
  const c = await containerOf(out, identity);
  const fresh = emptyHome(t);
  const tryRestore = async (file: string, code: string, message: RegExp) => {
    await assert.rejects(restoreBackup(into(fresh, file, { identityFile: home.identityPath, allowUnsigned: true })), { code, message });
    assertEmpty(fresh);
  };

  // One byte of the armored body changed to another base64 character.
  const flipped = Buffer.from(good);
  const at = Math.floor(flipped.length / 2) + (flipped[Math.floor(flipped.length / 2)] === 0x0a ? 1 : 0);
  flipped[at] = flipped[at] === 0x41 ? 0x42 : 0x41;
  writeFileSync(join(dir, "flipped"), flipped);
  await tryRestore(join(dir, "flipped"), "E_DECRYPT", /tampered/);
  writeFileSync(join(dir, "truncated"), good.subarray(0, good.length - 100));
  await tryRestore(join(dir, "truncated"), "E_DECRYPT", /./);
  writeFileSync(join(dir, "plain"), "SQLite format 3\0 not age at all");
  await tryRestore(join(dir, "plain"), "E_DECRYPT", /not a readable age file/);
  await assert.rejects(restoreBackup(into(fresh, join(dir, "missing"))), { code: "E_NOT_FOUND" });

  // Authentic age, but not what a backup holds.
  await tryRestore(await forged(dir, c, identity, undefined, "not json"), "E_INTEGRITY", /not JSON/);
  await tryRestore(await forged(dir, { ...c, format: "coffer-backup/v9" as "coffer-backup/v1" }, identity), "E_INTEGRITY", /newer than this coffer/);
  await tryRestore(await forged(dir, { ...c, store: "AAAA" }, identity), "E_INTEGRITY", /not a readable SQLite database|integrity/);
  await tryRestore(await forged(dir, c, identity, (db) => db.exec("UPDATE audit SET actor = 'mallory' WHERE seq = 2")), "E_INTEGRITY", /broken audit chain at record 2/);
  await tryRestore(await forged(dir, c, identity, (db) => db.exec("DELETE FROM audit WHERE seq = 1")), "E_INTEGRITY", /record 1 is missing/);
  await tryRestore(await forged(dir, { ...c, schema: 99 }, identity, (db) => db.exec("PRAGMA user_version = 99")), "E_INTEGRITY", /newer coffer/);
  await tryRestore(await forged(dir, { ...c, schema: 1 }, identity), "E_INTEGRITY", new RegExp(`schema ${SCHEMA_VERSION.store}, not the 1`));
  await tryRestore(await forged(dir, c, identity, (db) => db.exec("DELETE FROM meta WHERE key = 'store_id'")), "E_INTEGRITY", /not a coffer store/);
  await tryRestore(await forged(dir, { ...c, recipient: "age1someoneelse" }, identity), "E_INTEGRITY", /not the one that made it/);
});

test("a backup of an older schema is migrated when it is restored", async (t) => {
  const { home, store, identity } = await initHome(t);
  store.set("k", "v1");
  const dir = tempDir(t);
  const out = join(dir, "b.backup");
  await backupStore(store, { out, recipients: [identity.recipient], identityFile: home.identityPath, identity });
  const c = await containerOf(out, identity);
  const old = await forged(dir, { ...c, schema: 1 }, identity, (db) => {
    db.exec("ALTER TABLE secrets DROP COLUMN generator; ALTER TABLE versions DROP COLUMN deleted_at; ALTER TABLE versions DROP COLUMN destroyed_at; DROP TABLE grants; DROP TABLE members; DROP TABLE trusted; DROP TABLE exports; DROP TABLE imports; PRAGMA user_version = 1");
  });
  const fresh = emptyHome(t);
  const r = await restoreBackup(into(fresh, old, { identityFile: home.identityPath, allowUnsigned: true }));
  assert.equal(r.schemaFrom, 1);
  assert.equal(r.schema, SCHEMA_VERSION.store);
  const back = await openStore({ env: fresh.env });
  t.after(() => back.close());
  assert.equal(back.get("k").reveal(), "v1");
  assert.equal((internalsOf(back).driver.stmt("SELECT count(*) AS n FROM members").get() as { n: number }).n, 0);
  assert.equal(back.verifyAudit().ok, true);
});

test("a passphrase-protected identity goes into the backup as it is, and comes back only with its passphrase", async (t) => {
  const home = emptyHome(t);
  await initCoffer({ env: home.env, name: "alice", newPassphrase: "id-pass", logN: 10 });
  const identity = await loadIdentity(home.identityPath, { passphrase: "id-pass" });
  const store = await openStore({ env: home.env, identityObject: identity });
  t.after(() => store.close());
  store.set("k", "v");
  const dir = tempDir(t);
  const offlineFile = join(dir, "offline.key");
  writeFileSync(offlineFile, renderIdentityText(await generateAgeIdentity(), "offline"), { mode: 0o600 });
  const out = join(dir, "b.backup");
  const r0 = await backupStore(store, { out, recipients: [identity.recipient, (await loadIdentity(offlineFile)).recipient], identityFile: home.identityPath, identity });
  assert.equal(r0.verified, "decrypted");
  const c = await containerOf(out, identity);
  assert.equal(c.identity, readFileSync(home.identityPath, "utf8"));
  assert.ok(c.identity?.startsWith("-----BEGIN AGE ENCRYPTED FILE-----"));

  // The backup opens with the (plain) offline key; the identity it carries needs its own passphrase.
  const fresh = emptyHome(t);
  const base = into(fresh, out, { identityFile: offlineFile, from: cardFingerprint(cardOf(identity)) });
  await assert.rejects(restoreBackup({ ...base, identityPassphrase: "wrong" }), { code: "E_DECRYPT", message: /the identity in the backup/ });
  assertEmpty(fresh);
  await assert.rejects(restoreBackup(base), { code: "E_IDENTITY", message: /no passphrase was given/ });
  assertEmpty(fresh);
  const r = await restoreBackup({ ...base, identityPassphrase: "id-pass" });
  assert.equal(r.identityAction, "written");
  assert.deepEqual(readFileSync(fresh.identityPath), readFileSync(home.identityPath));
  const back = await openStore({ env: fresh.env, passphrase: "id-pass" });
  t.after(() => back.close());
  assert.equal(back.get("k").reveal(), "v");
});
