/**
 * The conformance cases of per-version delete, undelete and destroy (issue 16,
 * `src/storage/ops-versions.ts`), registered by `conformance.ts` for every driver.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { SealedValue, ServerStorage } from "../../src/storage/types.ts";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function put(s: ServerStorage, name: string): Promise<{ version: number; sealed: SealedValue }> {
  const sealed = { nonce: randomBytes(12), ciphertext: randomBytes(40) };
  const { version } = await s.write({ name, actor: "token:writer", auditDetail: null, seal: () => sealed });
  return { version, sealed };
}

const bytes = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

async function marks(s: ServerStorage, name: string): Promise<[number, boolean, boolean, boolean][]> {
  return ((await s.versions(name)) ?? []).map((v) => [v.version, v.current, v.deletedAt !== null, v.destroyed]);
}

/**
 * Registers the cases. `rotations`: the driver has a server's rotations table (a local store's does not).
 */
export function versionConformance(
  factory: (t: TestContext) => Promise<ServerStorage>,
  options: { rotations: boolean; reopen?: ((t: TestContext, storage: ServerStorage) => Promise<ServerStorage>) | undefined },
): void {
  test("versions: delete hides one version from reads (its sealed value kept), undelete brings back the same bytes; each audited per version", async (t) => {
    const s = await factory(t);
    const v1 = await put(s, "app/db");
    await put(s, "app/db");
    await put(s, "app/db");
    const done = await s.deleteVersions("app/db", [1], "jwt:alice", { requestId: "r1" });
    assert.equal(done?.latest, 3);
    assert.deepEqual(done?.changed, [1]);
    assert.equal(done?.currentChanged, false);
    assert.equal(done?.versions.length, 1);
    assert.match(done!.versions[0]!.deletedAt!, ISO);
    assert.equal(done!.versions[0]!.destroyed, false);
    assert.equal(await s.readVersion("app/db", 1), undefined);
    assert.equal((await s.readCurrent("app/db"))?.version, 3, "the current version still reads");
    assert.deepEqual(await marks(s, "app/db"), [[1, false, true, false], [2, false, false, false], [3, true, false, false]]);
    const [record] = (await s.auditLog()).slice(-1);
    assert.deepEqual(
      [record?.actor, record?.action, record?.name, record?.version, record?.detail],
      ["jwt:alice", "secret.delete-version", "app/db", 1, { requestId: "r1", changed: true }],
    );

    // Deleting it again changes nothing and is no error.
    const again = await s.deleteVersions("app/db", [1, 1], "jwt:alice", null);
    assert.deepEqual(again?.changed, []);
    assert.deepEqual(again?.versions, done?.versions, "the first deletion time is kept");

    const back = await s.undeleteVersions("app/db", [1, 2], "jwt:alice", null);
    assert.deepEqual(back?.changed, [1]);
    assert.deepEqual(back?.versions, [{ version: 1, deletedAt: null, destroyed: false }, { version: 2, deletedAt: null, destroyed: false }]);
    const read = await s.readVersion("app/db", 1);
    assert.deepEqual(bytes(read!.ciphertext), bytes(v1.sealed.ciphertext));
    const tail = (await s.auditLog()).slice(-2).map((r) => [r.action, r.version, r.detail]);
    assert.deepEqual(tail, [["secret.undelete", 1, { changed: true }], ["secret.undelete", 2, { changed: false }]]);
    assert.ok((await s.verifyAudit()).ok);
  });

  test("versions: deleting the current version makes a plain read find nothing until undeleted or a new version is written", async (t) => {
    const s = await factory(t);
    await put(s, "app/cur");
    await put(s, "app/cur");
    const done = await s.deleteVersions("app/cur", [2], "jwt:alice", null);
    assert.equal(done?.currentChanged, true);
    assert.equal(await s.readCurrent("app/cur"), undefined);
    assert.deepEqual(await s.state("app/cur"), { latest: 2, deletedAt: null }, "the secret itself is not removed");
    assert.deepEqual((await s.list("app/")).map((i) => i.name), ["app/cur"]);
    assert.equal((await s.undeleteVersions("app/cur", [2], "jwt:alice", null))?.currentChanged, true);
    assert.equal((await s.readCurrent("app/cur"))?.version, 2);

    await s.deleteVersions("app/cur", [2], "jwt:alice", null);
    assert.equal((await put(s, "app/cur")).version, 3);
    assert.equal((await s.readCurrent("app/cur"))?.version, 3);
    assert.equal((await s.undeleteVersions("app/cur", [2], "jwt:alice", null))?.currentChanged, false, "2 is no longer current");
  });

  test("versions: destroy empties the sealed value for good; the row stays marked; undelete and delete of it change nothing", async (t) => {
    const s = await factory(t);
    await put(s, "app/x");
    await put(s, "app/x");
    await s.deleteVersions("app/x", [1], "jwt:alice", null);
    const done = await s.destroyVersions("app/x", [1, 2], "jwt:alice", null);
    assert.deepEqual(done?.changed, [1, 2]);
    assert.equal(done?.currentChanged, true);
    assert.equal(done?.versions[0]?.destroyed, true);
    assert.match(done!.versions[0]!.deletedAt!, ISO, "a destroyed version keeps its deletion time");
    assert.equal(done?.versions[1]?.deletedAt, null);
    assert.equal(await s.readVersion("app/x", 1), undefined);
    assert.equal(await s.readCurrent("app/x"), undefined);
    assert.deepEqual(await marks(s, "app/x"), [[1, false, true, true], [2, true, false, true]]);

    const un = await s.undeleteVersions("app/x", [1, 2], "jwt:alice", null);
    assert.deepEqual(un?.changed, []);
    assert.deepEqual(un?.versions.map((v) => v.destroyed), [true, true]);
    assert.equal(await s.readVersion("app/x", 1), undefined, "a destroyed version never comes back");
    assert.deepEqual((await s.deleteVersions("app/x", [2], "jwt:alice", null))?.changed, []);
    assert.deepEqual((await s.destroyVersions("app/x", [2], "jwt:alice", null))?.changed, []);
    const actions = (await s.auditLog()).filter((r) => r.action === "secret.destroy").map((r) => [r.version, r.detail]);
    assert.deepEqual(actions, [[1, { changed: true }], [2, { changed: true }], [2, { changed: false }]]);
    // A new write is readable as ever.
    assert.equal((await put(s, "app/x")).version, 3);
    assert.equal((await s.readCurrent("app/x"))?.version, 3);
    assert.ok((await s.verifyAudit()).ok);
  });

  test("versions: an unknown secret is undefined, versions that do not exist are named and nothing changes, bad lists are refused", async (t) => {
    const s = await factory(t);
    const before = (await s.auditLog()).length;
    assert.equal(await s.deleteVersions("never", [1], "jwt:alice", null), undefined);
    assert.equal(await s.destroyVersions("never", [1], "jwt:alice", null), undefined);
    assert.equal((await s.auditLog()).length, before);
    await put(s, "app/y");
    await put(s, "app/y");
    await assert.rejects(s.deleteVersions("app/y", [1, 7, 9], "jwt:alice", null), {
      code: "E_INVALID_VALUE", message: 'secret "app/y" has no version 7, 9 (versions 1–2 were written); nothing was changed',
    });
    assert.ok(await s.readVersion("app/y", 1), "version 1 was not deleted: all or nothing");
    for (const bad of [[], [0], [1.5], ["1"], Array.from({ length: 101 }, (_, i) => i + 1)]) {
      await assert.rejects(s.destroyVersions("app/y", bad as number[], "jwt:alice", null), { code: "E_INVALID_VALUE" }, JSON.stringify(bad));
    }
    await assert.rejects(s.deleteVersions("app/y", [1], "", null), TypeError);
    assert.equal((await s.versions("app/y"))?.filter((v) => v.deletedAt !== null || v.destroyed).length, 0);
  });

  test("versions: versions of a removed secret can be deleted and destroyed; a plain read's state is not touched", async (t) => {
    const s = await factory(t);
    await put(s, "app/rm");
    await s.remove("app/rm", "jwt:alice", null);
    const done = await s.destroyVersions("app/rm", [1], "jwt:alice", null);
    assert.equal(done?.currentChanged, false, "a removed secret has no current version to read");
    assert.equal(await s.readVersion("app/rm", 1), undefined);
  });

  if (options.rotations) {
    test("versions: a rotation in progress refuses delete, undelete and destroy (E_CONFLICT)", async (t) => {
      const s = await factory(t);
      await put(s, "app/rot");
      await s.putRotation({ name: "app/rot", every: null, everyMs: null, generate: { charset: "alnum", length: 8 }, apply: null }, "test", null);
      assert.ok(await s.claimRotation("app/rot", "holder-1", new Date(Date.now() + 60_000).toISOString(), "now"));
      for (const change of [s.deleteVersions, s.undeleteVersions, s.destroyVersions]) {
        await assert.rejects(change.call(s, "app/rot", [1], "jwt:alice", null), { code: "E_CONFLICT", message: /rotation in progress/ });
      }
      assert.ok(await s.readCurrent("app/rot"));
    });
  }

  if (options.reopen !== undefined) {
    const reopen = options.reopen;
    test("versions: deleted and destroyed marks survive a reopen", async (t) => {
      let s = await factory(t);
      await put(s, "app/keep");
      await put(s, "app/keep");
      await s.deleteVersions("app/keep", [1], "jwt:alice", null);
      await s.destroyVersions("app/keep", [2], "jwt:alice", null);
      s = await reopen(t, s);
      assert.deepEqual(await marks(s, "app/keep"), [[1, false, true, false], [2, true, false, true]]);
      assert.equal(await s.readCurrent("app/keep"), undefined);
    });
  }
}
