import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { canonicalJson, chainHash, GENESIS_HASH, verifyChain, type AuditRecord } from "../../src/core/audit.ts";

function chain(n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  let prev: Uint8Array = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const r = { seq, at: `2026-01-01T00:00:0${seq % 10}.000Z`, actor: "a", action: "set", name: `n${seq}`, version: seq, detail: null };
    const h = chainHash(prev, r);
    out.push({ ...r, hash: h.toString("hex") });
    prev = h;
  }
  return out;
}

test("canonical JSON: sorted keys at every depth, no whitespace", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: "x" }], c: null } }), '{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1}');
});

test("known answer: hash = SHA-256(32 zero bytes ‖ canonical JSON) for the first record", () => {
  const r = { seq: 1, at: "2026-01-01T00:00:00.000Z", actor: "alice", action: "init", name: null, version: null, detail: { format: 1 } };
  assert.equal(
    canonicalJson(r),
    '{"action":"init","actor":"alice","at":"2026-01-01T00:00:00.000Z","detail":{"format":1},"name":null,"seq":1,"version":null}',
  );
  assert.equal(chainHash(GENESIS_HASH, r).toString("hex"), "c766b05fdf162829d1a3098783e6847f6e8ffb647cf0db3d2660f611c1d4013f");
});

test("verify: an intact chain verifies", () => {
  assert.deepEqual(verifyChain(chain(20)), { ok: true, records: 20 });
  assert.deepEqual(verifyChain([]), { ok: true, records: 0 });
});

test("attack: an edited, removed, reordered or re-hashed record breaks the chain where it happens", () => {
  const edited = chain(10);
  edited[4] = { ...edited[4]!, name: "other" };
  assert.equal(verifyChain(edited).brokenAt, 5);

  const removed = chain(10);
  removed.splice(6, 1);
  assert.deepEqual(verifyChain(removed), { ok: false, records: 6, brokenAt: 8, reason: "record 7 is missing" });

  const swapped = chain(10);
  [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
  assert.equal(verifyChain(swapped).ok, false);

  // Recomputing one record's hash after editing it still breaks its successor.
  const rehashed = chain(10);
  const r = { ...rehashed[4]!, action: "get" };
  rehashed[4] = { ...r, hash: chainHash(Buffer.from(rehashed[3]!.hash, "hex"), r).toString("hex") };
  assert.equal(verifyChain(rehashed).brokenAt, 6);
});

test("chainHash hashes exactly the record's canonical JSON, so chains written by earlier coffers still verify", () => {
  const prev = Buffer.alloc(32, 7);
  const records = [
    { seq: 1, at: "2026-12-06T14:00:00.000Z", actor: "alice", action: "set", name: "a/b", version: 1, detail: null },
    { seq: 2, at: "2026-12-06T14:00:01.000Z", actor: 'token:"q"', action: "secret.read", name: null, version: null, detail: { z: 1, a: [1, { y: "é", b: null }], m: "\u2028" } },
  ];
  for (const r of records) {
    const generic = createHash("sha256").update(prev).update(canonicalJson({ ...r }), "utf8").digest();
    assert.deepEqual(chainHash(prev, r), generic);
  }
});
