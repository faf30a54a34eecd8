import { test } from "node:test";
import assert from "node:assert/strict";
import { sign } from "node:crypto";
import type { TestContext } from "node:test";
import { armor } from "age-encryption";
import { initCoffer, openStore, type Store } from "../../src/index.ts";
import { encryptToRecipients, decryptWithIdentity } from "../../src/crypto/age.ts";
import { cardFingerprint } from "../../src/identity/card.ts";
import { cardOf, loadIdentity, signingKeyOf, type Identity } from "../../src/identity/identity.ts";
import { addMember, exposure, grant, revoke, validateCard } from "../../src/sharing/members.ts";
import { newPayload, openBundle, sealBundle } from "../../src/sharing/bundle.ts";
import { exportBundle, importBundle } from "../../src/sharing/sharing.ts";
import { resolvePaths } from "../../src/core/paths.ts";
import { tempDir } from "../helpers.ts";

interface Person {
  name: string;
  store: Store;
  identity: Identity;
  card: string;
  fingerprint: string;
}

async function person(t: TestContext, name: string): Promise<Person> {
  const home = tempDir(t, `coffer-${name}-`);
  const env = { COFFER_HOME: home };
  await initCoffer({ env, name });
  const identity = await loadIdentity(resolvePaths({ env }).identity);
  const store = await openStore({ env, identityObject: identity });
  t.after(() => store.close());
  const card = cardOf(identity);
  return { name, store, identity, card, fingerprint: cardFingerprint(card) };
}

/** alice holds app/one, app/two, db/prod/password and grants bob app/*. */
async function world(t: TestContext): Promise<{ alice: Person; bob: Person; mallory: Person }> {
  const [alice, bob, mallory] = [await person(t, "alice"), await person(t, "bob"), await person(t, "mallory")];
  alice.store.set("app/one", "value-one");
  alice.store.set("app/two", "value-two");
  alice.store.set("db/prod/password", "value-db");
  await addMember(alice.store, "bob", bob.card);
  grant(alice.store, "bob", ["app/*"]);
  return { alice, bob, mallory };
}

function snapshot(store: Store): string {
  return JSON.stringify({ list: store.list("", { deleted: true }), audit: store.auditLog().length });
}

test("export holds exactly the granted secrets; import with trust lands them; replay changes nothing", async (t) => {
  const { alice, bob } = await world(t);
  const out = await exportBundle(alice.store, alice.identity, "bob");
  assert.deepEqual(out.secrets.map((s) => s.name), ["app/one", "app/two"]);
  const before = snapshot(bob.store);
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(out.bundle)), { code: "E_UNTRUSTED", message: new RegExp(alice.fingerprint) });
  assert.equal(snapshot(bob.store), before, "an untrusted bundle writes nothing");
  const r = await importBundle(bob.store, bob.identity, Buffer.from(out.bundle), { trust: alice.fingerprint });
  assert.deepEqual(r.imported.map((i) => i.name), ["app/one", "app/two"]);
  assert.equal(bob.store.get("app/one").reveal(), "value-one");
  assert.throws(() => bob.store.get("db/prod/password"), { code: "E_NOT_FOUND" });
  const again = await importBundle(bob.store, bob.identity, Buffer.from(out.bundle));
  assert.deepEqual(again.imported, []);
  assert.deepEqual(again.unchanged, ["app/one", "app/two"]);
});

test("attack: every single byte of a bundle flipped in turn is refused, and nothing is written", async (t) => {
  const { alice, bob } = await world(t);
  alice.store.set("app/one", "x");
  const { bundle } = await exportBundle(alice.store, alice.identity, "bob", ["app/one"]);
  const bytes = Buffer.from(bundle);
  const before = snapshot(bob.store);
  let refused = 0;
  for (let i = 0; i < bytes.length; i++) {
    const bad = Buffer.from(bytes);
    bad[i]! ^= 0x01;
    await assert.rejects(importBundle(bob.store, bob.identity, bad, { trust: alice.fingerprint }), (err: Error & { code?: string }) => {
      assert.ok(["E_DECRYPT", "E_SIGNATURE", "E_INVALID_VALUE"].includes(err.code ?? ""), `byte ${i}: ${err.code} ${err.message}`);
      return true;
    });
    refused++;
  }
  assert.equal(refused, bytes.length);
  assert.equal(snapshot(bob.store), before, "no flipped bundle wrote anything");
  assert.ok((await importBundle(bob.store, bob.identity, bytes, { trust: alice.fingerprint })).imported.length === 1);
});

test("attack: a bundle signed by mallory claiming to be alice fails the signature check", async (t) => {
  const { alice, bob, mallory } = await world(t);
  const payload = newPayload(alice.card, bob.card, [{ name: "app/one", version: 9, value: Buffer.from("evil").toString("base64"), description: null }], null);
  const bytes = Buffer.from(JSON.stringify(payload));
  const envelope = JSON.stringify({
    format: "coffer-signed/v1", from: alice.card, payload: bytes.toString("base64"),
    signature: sign(null, bytes, signingKeyOf(mallory.identity).privateKey).toString("base64url"),
  });
  const forged = armor.encode(await encryptToRecipients(Buffer.from(envelope), [bob.identity.recipient]));
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(forged), { trust: alice.fingerprint }), {
    code: "E_SIGNATURE",
    message: /does not verify against the sender card "alice": forged or tampered bundle/,
  });
});

test("attack: mallory's own bundle is refused when bob trusts only alice's fingerprint, naming both fingerprints", async (t) => {
  const { alice, bob, mallory } = await world(t);
  mallory.store.set("app/one", "evil");
  await addMember(mallory.store, "bob", bob.card);
  grant(mallory.store, "bob", ["app/*"]);
  const { bundle } = await exportBundle(mallory.store, mallory.identity, "bob");
  const before = snapshot(bob.store);
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(bundle), { trust: alice.fingerprint }), {
    code: "E_UNTRUSTED",
    message: new RegExp(`^--trust ${alice.fingerprint} does not match this bundle's sender "mallory", whose fingerprint is ${mallory.fingerprint};`),
  });
  assert.equal(snapshot(bob.store), before);
  // Without --trust the message is the other one: check the fingerprint, then --trust it.
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(bundle)), { code: "E_UNTRUSTED", message: /who is not a trusted sender/ });
});

test("attack: alice's bundle to mallory, re-encrypted by mallory to bob, is misaddressed", async (t) => {
  const { alice, bob, mallory } = await world(t);
  await addMember(alice.store, "mallory", mallory.card);
  grant(alice.store, "mallory", ["app/*"]);
  const { bundle } = await exportBundle(alice.store, alice.identity, "mallory");
  const envelope = await decryptWithIdentity(Buffer.from(bundle), mallory.identity.secretKey, "t");
  const rewrapped = armor.encode(await encryptToRecipients(envelope, [bob.identity.recipient]));
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(rewrapped), { trust: alice.fingerprint }), {
    code: "E_MISADDRESSED",
    message: /made for "mallory"/,
  });
});

test("expiry, and the order of checks: signature before trust before expiry", async (t) => {
  const { alice, bob } = await world(t);
  const { bundle } = await exportBundle(alice.store, alice.identity, "bob", [], { expiresInSeconds: 60 });
  const later = new Date(Date.now() + 120_000);
  await assert.rejects(openBundle(Buffer.from(bundle), bob.identity, async () => true, later), { code: "E_EXPIRED" });
  await assert.rejects(openBundle(Buffer.from(bundle), bob.identity, async () => false, later), { code: "E_UNTRUSTED" });
  let asked = false;
  const payload = newPayload(alice.card, bob.card, [], new Date(0));
  const sealed = await sealBundle(payload, alice.identity, bob.identity.recipient);
  const env = JSON.parse(Buffer.from(await decryptWithIdentity(Buffer.from(sealed), bob.identity.secretKey, "t")).toString()) as Record<string, string>;
  env.signature = Buffer.alloc(64).toString("base64url");
  const broken = armor.encode(await encryptToRecipients(Buffer.from(JSON.stringify(env)), [bob.identity.recipient]));
  await assert.rejects(
    openBundle(Buffer.from(broken), bob.identity, async () => ((asked = true), true)),
    { code: "E_SIGNATURE" },
  );
  assert.equal(asked, false, "trust is not consulted before the signature verifies");
});

test("no silent rollback: an older bundle from the same sender is refused; --force accepts it", async (t) => {
  const { alice, bob } = await world(t);
  const old = await exportBundle(alice.store, alice.identity, "bob", ["app/one"]);
  alice.store.set("app/one", "value-one-v2");
  const fresh = await exportBundle(alice.store, alice.identity, "bob", ["app/one"]);
  await importBundle(bob.store, bob.identity, Buffer.from(fresh.bundle), { trust: alice.fingerprint });
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(old.bundle)), { code: "E_CONFLICT", message: /older than v2/ });
  assert.equal(bob.store.get("app/one").reveal(), "value-one-v2");
  await importBundle(bob.store, bob.identity, Buffer.from(old.bundle), { force: true });
  assert.equal(bob.store.get("app/one").reveal(), "value-one");
});

test("a secret bob made himself is not overwritten by an import unless forced", async (t) => {
  const { alice, bob } = await world(t);
  bob.store.set("app/two", "bob's own");
  const { bundle } = await exportBundle(alice.store, alice.identity, "bob");
  await assert.rejects(importBundle(bob.store, bob.identity, Buffer.from(bundle), { trust: alice.fingerprint }), {
    code: "E_CONFLICT", message: /"app\/two" exists here and did not come from "alice"/,
  });
  assert.throws(() => bob.store.get("app/one"), { code: "E_NOT_FOUND" }, "all or nothing");
});

test("export refuses ungranted secrets, revoked members, members without grants", async (t) => {
  const { alice } = await world(t);
  const before = alice.store.auditLog().length;
  await assert.rejects(exportBundle(alice.store, alice.identity, "bob", ["db/prod/password"]), { code: "E_DENIED", message: /not granted/ });
  await assert.rejects(exportBundle(alice.store, alice.identity, "nobody"), { code: "E_NOT_FOUND" });
  await addMember(alice.store, "carol", (await person(t, "carol")).card);
  await assert.rejects(exportBundle(alice.store, alice.identity, "carol"), { code: "E_DENIED", message: /no grants/ });
  assert.equal(alice.store.auditLog().length, before + 1, "only the users.add record");
  revoke(alice.store, "bob");
  await assert.rejects(exportBundle(alice.store, alice.identity, "bob"), { code: "E_DENIED", message: /revoked/ });
  assert.throws(() => grant(alice.store, "bob", ["app/*"]), { code: "E_DENIED" });
});

test("revocation lists exactly what was exported and is still current; rotation takes it off", async (t) => {
  const { alice } = await world(t);
  await exportBundle(alice.store, alice.identity, "bob", ["app/one"]);
  await exportBundle(alice.store, alice.identity, "bob", ["app/one", "app/two"]);
  const r = revoke(alice.store, "bob");
  assert.deepEqual(r.toRotate.map((e) => [e.name, e.version]), [["app/one", 1], ["app/two", 1]]);
  alice.store.set("app/one", "rotated");
  assert.deepEqual(exposure(alice.store, "bob").map((e) => e.name), ["app/two"]);
  assert.deepEqual(revoke(alice.store, "bob").toRotate.map((e) => e.name), ["app/two"], "revoking again is harmless");
  assert.ok(alice.store.verifyAudit().ok);
});

test("cards: a bad recipient checksum or an Ed25519 key off the curve is refused", async (t) => {
  const { bob } = await world(t);
  const [, , name, recipient, key] = bob.card.split(":") as [string, string, string, string, string];
  const flipped = recipient.slice(0, -1) + (recipient.endsWith("q") ? "p" : "q");
  await assert.rejects(validateCard(`coffer-card:v1:${name}:${flipped}:${key}`), { code: "E_INVALID_VALUE", message: /checksum/ });
  const offCurve = Buffer.alloc(32, 0xff).toString("base64url");
  await assert.rejects(validateCard(`coffer-card:v1:${name}:${recipient}:${offCurve}`), { code: "E_INVALID_VALUE", message: /Ed25519/ });
  await validateCard(bob.card);
});
