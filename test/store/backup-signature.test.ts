/**
 * Issue 11 item 6: backups are signed as bundles are, and restore checks the signature against
 * the identity that decrypts the backup (or `from`), never a card inside the backup alone.
 */
import { test } from "node:test";
import { internalsOf } from "../../src/store/internal.ts";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sign } from "node:crypto";
import { initCoffer, openStore } from "../../src/index.ts";
import { backupStore, restoreBackup } from "../../src/store/backup.ts";
import { decryptWithIdentity, encryptToRecipients } from "../../src/crypto/age.ts";
import { cardOf, loadIdentity, signingKeyOf } from "../../src/identity/identity.ts";
import { tempDir } from "../helpers.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";
import { asV1, joinV2, splitV2 } from "./backup-parts.ts";

async function user(t: import("node:test").TestContext, name: string) {
  const dir = tempDir(t);
  const env = { COFFER_HOME: dir };
  await initCoffer({ env, name });
  const identity = await loadIdentity(join(dir, "identity"));
  return { dir, env, identity, identityPath: join(dir, "identity") };
}

/** Alice's store holding `k` = `value`, backed up to her own recipient: the file and its decrypted v2 parts. */
async function aliceBackup(t: import("node:test").TestContext, value: string) {
  const alice = await user(t, "alice");
  const s = await openStore({ env: alice.env });
  s.set("k", value);
  const out = join(tempDir(t), "b.backup");
  await backupStore(s, { out, recipients: [alice.identity.recipient], identityFile: alice.identityPath });
  s.close();
  const parts = splitV2(await decryptWithIdentity(readFileSync(out), alice.identity.secretKey, "x"));
  return { alice, out, parts };
}

async function reseal(file: string, plain: string | Uint8Array, recipient: string): Promise<string> {
  const out = `${file}.forged-${Math.random().toString(36).slice(2)}`;
  const age = await import("age-encryption");
  writeFileSync(out, age.armor.encode(await encryptToRecipients(Buffer.from(plain), [recipient])), { mode: 0o600 });
  return out;
}

test("a backup forged from the victim's public card is refused", async (t) => {
  const alice = await user(t, "alice");
  const own = await openStore({ env: alice.env });
  own.set("db/password", "alice-real-value");
  own.close();

  // Mallory knows only alice's card. She builds a store alice's key can open (its store key
  // wrapped to alice's recipient too), fills it, and backs it up to alice's recipient.
  const mallory = await user(t, "mallory");
  const evil = await openStore({ env: mallory.env });
  evil.set("db/password", "mallory-chosen-value");
  const row = internalsOf(evil).driver.stmt("SELECT wrapped FROM store_keys WHERE kind = 'age'").get() as { wrapped: Uint8Array };
  const storeKey = await decryptWithIdentity(row.wrapped, mallory.identity.secretKey, "own key");
  const victimCard = cardOf(alice.identity);
  const victimRecipient = victimCard.split(":")[3]!;
  const wrapped = await encryptToRecipients(storeKey, [victimRecipient]);
  internalsOf(evil).write(() => {
    internalsOf(evil).driver.stmt("INSERT INTO store_keys (recipient, kind, wrapped) VALUES (?, 'age', ?)").run(victimRecipient, wrapped);
  });
  const dir = tempDir(t);
  const signedByMallory = join(dir, "forged.backup");
  await backupStore(evil, { out: signedByMallory, recipients: [victimCard], identityFile: null });
  evil.close();

  const before = readFileSync(join(alice.dir, "store.db"));
  const restoreAsAlice = (file: string, extra = {}) => restoreBackup({ env: alice.env, file, replace: true, ...extra });

  // Signed by mallory's own key: not the identity that decrypts it.
  await assert.rejects(restoreAsAlice(signedByMallory), { code: "E_UNTRUSTED", message: /signed by "mallory" .*not by your identity/ });
  const parts = splitV2(await decryptWithIdentity(readFileSync(signedByMallory), alice.identity.secretKey, "x"));
  // The signature line dropped: refused, even with --unsigned (a v2 backup is always signed).
  const unsigned = await reseal(signedByMallory, joinV2(parts.headerLine, parts.snapshot, null), victimRecipient);
  await assert.rejects(restoreAsAlice(unsigned), { code: "E_SIGNATURE", message: /carries no signature/ });
  await assert.rejects(restoreAsAlice(unsigned, { allowUnsigned: true }), { code: "E_SIGNATURE", message: /carries no signature/ });
  // As a v1 backup from before signatures: needs --unsigned.
  await assert.rejects(restoreAsAlice(await reseal(signedByMallory, JSON.stringify(asV1(parts)), victimRecipient)), { code: "E_SIGNATURE", message: /is not signed.*--unsigned/ });
  // Alice's card put in the signature line, with mallory's signature: does not verify.
  const sig = JSON.parse(parts.signatureLine) as Record<string, string>;
  const claimed = JSON.stringify({ ...sig, from: victimCard });
  await assert.rejects(restoreAsAlice(await reseal(signedByMallory, joinV2(parts.headerLine, parts.snapshot, claimed), victimRecipient)), {
    code: "E_SIGNATURE", message: /does not verify against its signer card "alice"/,
  });
  // A signature over other bytes does not verify either.
  const other = JSON.stringify({ ...sig, signature: sign(null, Buffer.from("x"), signingKeyOf(mallory.identity).privateKey).toString("base64url") });
  await assert.rejects(restoreAsAlice(await reseal(signedByMallory, joinV2(parts.headerLine, parts.snapshot, other), victimRecipient)), { code: "E_SIGNATURE" });

  assert.deepEqual(readFileSync(join(alice.dir, "store.db")), before, "alice's store is untouched");
  const back = await openStore({ env: alice.env });
  assert.equal(back.get("db/password").reveal(), "alice-real-value");
  back.close();
});

test("an unsigned (old) backup needs --unsigned", async (t) => {
  const { alice, out, parts } = await aliceBackup(t, "v");
  const old = await reseal(out, JSON.stringify(asV1(parts)), alice.identity.recipient); // as written before signatures
  const fresh = tempDir(t);
  const into = { env: { COFFER_HOME: fresh }, file: old, identityFile: alice.identityPath };
  await assert.rejects(restoreBackup(into), { code: "E_SIGNATURE", message: /is not signed: it was made before coffer signed backups, or forged .*--unsigned/ });
  assert.deepEqual(readdirSync(fresh), []);
  const warnings: string[] = [];
  const r = await restoreBackup({ ...into, allowUnsigned: true, warn: (m) => warnings.push(m) });
  assert.equal(r.signedBy, null);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /is not signed, so nothing shows who made it/);
  const back = await openStore({ env: { COFFER_HOME: fresh } });
  assert.equal(back.get("k").reveal(), "v");
  back.close();
});

test("a backup passphrase under 12 characters is refused unless weakPassphrase", async (t) => {
  const alice = await user(t, "alice");
  const s = await openStore({ env: alice.env });
  t.after(() => s.close());
  const out = join(tempDir(t), "b.backup");
  await assert.rejects(backupStore(s, { out, passphrase: "short-pass1", identityFile: null }), {
    code: "E_INVALID_VALUE", message: /shorter than 12 characters.*--weak-passphrase/,
  });
  assert.equal(s.auditLog().at(-1)?.action, "init", "nothing recorded");
  const r = await backupStore(s, { out, passphrase: "short-pass1", identityFile: null, weakPassphrase: true, logN: 18 });
  assert.equal(r.to, "passphrase");
});

test("a backup whose store, header or end was changed after it was signed is refused before anything is written", async (t) => {
  const { alice, out, parts: p } = await aliceBackup(t, "v");
  const fresh = tempDir(t);
  const attempt = async (plain: Uint8Array, code: string, message: RegExp) => {
    const file = await reseal(out, plain, alice.identity.recipient);
    await assert.rejects(restoreBackup({ env: { COFFER_HOME: fresh }, file, identityFile: alice.identityPath, allowUnsigned: true }), { code, message });
    assert.deepEqual(readdirSync(fresh), [], "nothing written");
  };
  // One byte of the snapshot changed, signature kept.
  const changed = Buffer.from(p.snapshot);
  changed.writeUInt8(changed.at(-1)! ^ 1, changed.length - 1);
  await attempt(joinV2(p.headerLine, changed, p.signatureLine), "E_SIGNATURE", /does not verify/);
  // A header field changed (the identity left out), signature kept.
  const header = JSON.stringify({ ...p.header, identity: null });
  await attempt(joinV2(header, p.snapshot, p.signatureLine), "E_SIGNATURE", /does not verify/);
  // The snapshot cut short (the header's size then lies), or the plaintext cut inside it.
  await attempt(joinV2(p.headerLine, p.snapshot.subarray(0, p.snapshot.length - 10), p.signatureLine), "E_INTEGRITY", /not the size its header says/);
  await attempt(Buffer.concat([Buffer.from(`${p.headerLine}\n`), p.snapshot.subarray(0, 100)]), "E_INTEGRITY", /ends inside its store/);
  // Something appended after the signature.
  await attempt(Buffer.concat([joinV2(p.headerLine, p.snapshot, p.signatureLine), Buffer.from("more\n")]), "E_INTEGRITY", /bytes after its signature/);
  // Into a home that does not exist yet: the directories made for the temp file go too.
  const parent = tempDir(t);
  const file = await reseal(out, joinV2(p.headerLine, changed, p.signatureLine), alice.identity.recipient);
  await assert.rejects(restoreBackup({ env: { COFFER_HOME: join(parent, "new", "home") }, file, identityFile: alice.identityPath }), { code: "E_SIGNATURE" });
  assert.deepEqual(readdirSync(parent), [], "no directory left behind");
  // The genuine plaintext, resealed, still restores (the signature covers the plaintext, not the encryption).
  const ok = await reseal(out, joinV2(p.headerLine, p.snapshot, p.signatureLine), alice.identity.recipient);
  const r = await restoreBackup({ env: { COFFER_HOME: fresh }, file: ok, identityFile: alice.identityPath });
  assert.equal(r.signedBy?.name, "alice");
});

test("a signed v1 backup (one JSON document, as coffer wrote before backups streamed) still restores, and a tampered one is refused", async (t) => {
  const { alice, out, parts } = await aliceBackup(t, "v1-era value");
  const body = JSON.stringify(asV1(parts));
  const v1Line = (b: string) => JSON.stringify({
    format: "coffer-backup-signature/v1", from: cardOf(alice.identity),
    signature: sign(null, Buffer.from(`coffer/v1/backup\n${b}`), signingKeyOf(alice.identity).privateKey).toString("base64url"),
  });
  const fresh = tempDir(t);
  const into = { env: { COFFER_HOME: fresh }, identityFile: alice.identityPath };
  const tampered = await reseal(out, `${body.replace(`"schema":${SCHEMA_VERSION.store}`, '"schema":1')}\n${v1Line(body)}\n`, alice.identity.recipient);
  await assert.rejects(restoreBackup({ ...into, file: tampered }), { code: "E_SIGNATURE", message: /does not verify/ });
  assert.deepEqual(readdirSync(fresh), []);
  const r = await restoreBackup({ ...into, file: await reseal(out, `${body}\n${v1Line(body)}\n`, alice.identity.recipient) });
  assert.equal(r.signedBy?.name, "alice");
  const back = await openStore({ env: { COFFER_HOME: fresh } });
  assert.equal(back.get("k").reveal(), "v1-era value");
  back.close();
});
