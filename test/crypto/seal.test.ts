import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes, randomInt } from "node:crypto";
import { deriveValueKey, open, seal, valueAad } from "../../src/crypto/seal.ts";
import { CofferError } from "../../src/errors.ts";

const STORE_ID = Buffer.alloc(16, 0xab);

// RFC 5869 by hand, to pin the parameters (SHA-256, empty salt, info) independently of hkdfSync.
function hkdfByHand(ikm: Uint8Array, info: string, len: number): Buffer {
  const prk = createHmac("sha256", Buffer.alloc(32)).update(ikm).digest();
  let t = Buffer.alloc(0);
  const out: Buffer[] = [];
  for (let i = 1; Buffer.concat(out).length < len; i++) {
    t = createHmac("sha256", prk).update(Buffer.concat([t, Buffer.from(info), Buffer.from([i])])).digest();
    out.push(t);
  }
  return Buffer.concat(out).subarray(0, len);
}

test("value key: known answer for HKDF-SHA256(store key, info coffer/v1/value)", () => {
  const key = deriveValueKey(Buffer.alloc(32, 1));
  assert.equal(key.toString("hex"), "a460f02cc8b22ce2a891948f8496cf43d593688ffafc3d46890f5aca8580ac11");
  assert.deepEqual(key, hkdfByHand(Buffer.alloc(32, 1), "coffer/v1/value", 32));
});

test("aad: known answer for the length-prefixed (store id, name, version) encoding", () => {
  assert.equal(
    valueAad(STORE_ID, "db/pw", 3).toString("hex"),
    "00000010" + "ab".repeat(16) + "00000005" + Buffer.from("db/pw").toString("hex") + "00000008" + "0000000000000003",
  );
});

test("aad: no two (name, version) pairs share an encoding", () => {
  const seen = new Set<string>();
  for (const name of ["a", "a1", "a/1", "ab", "b"]) {
    for (const version of [1, 2, 11, 256]) {
      const hex = valueAad(STORE_ID, name, version).toString("hex");
      assert.ok(!seen.has(hex));
      seen.add(hex);
    }
  }
});

test("seal/open: round trip over random sizes and bytes", () => {
  const key = randomBytes(32);
  for (let i = 0; i < 200; i++) {
    const value = randomBytes(randomInt(1, 2048));
    const aad = valueAad(STORE_ID, `n/${i}`, i + 1);
    const sealed = seal(key, value, aad);
    assert.equal(sealed.nonce.length, 12);
    assert.equal(sealed.ciphertext.length, value.length + 16);
    assert.deepEqual(open(key, sealed, aad, "t"), value);
  }
});

test("seal: a fresh nonce every time", () => {
  const key = randomBytes(32);
  const nonces = new Set<string>();
  for (let i = 0; i < 1000; i++) nonces.add(Buffer.from(seal(key, Buffer.from("x"), Buffer.alloc(0)).nonce).toString("hex"));
  assert.equal(nonces.size, 1000);
});

function assertDecryptFails(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof CofferError && err.code === "E_DECRYPT");
}

test("attack: a ciphertext moved to another name, version or store fails to open", () => {
  const key = randomBytes(32);
  const sealed = seal(key, Buffer.from("the value"), valueAad(STORE_ID, "db/pw", 2));
  assertDecryptFails(() => open(key, sealed, valueAad(STORE_ID, "db/pw2", 2), "t"));
  assertDecryptFails(() => open(key, sealed, valueAad(STORE_ID, "db/pw", 1), "t"));
  assertDecryptFails(() => open(key, sealed, valueAad(Buffer.alloc(16, 0xac), "db/pw", 2), "t"));
  assertDecryptFails(() => open(randomBytes(32), sealed, valueAad(STORE_ID, "db/pw", 2), "t"));
});

test("attack: every single-byte flip of nonce, ciphertext or tag fails with E_DECRYPT", () => {
  const key = randomBytes(32);
  const aad = valueAad(STORE_ID, "x", 1);
  const sealed = seal(key, Buffer.from("0123456789abcdef0123"), aad);
  for (const part of ["nonce", "ciphertext"] as const) {
    for (let i = 0; i < sealed[part].length; i++) {
      const copy = Buffer.from(sealed[part]);
      copy[i]! ^= 0x01;
      assertDecryptFails(() => open(key, { ...sealed, [part]: copy }, aad, "t"));
    }
  }
  assertDecryptFails(() => open(key, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 10) }, aad, "t"));
});

test("open: the error names the thing, says nothing of bytes or value", () => {
  const key = randomBytes(32);
  const sealed = seal(key, Buffer.from("hunter2-secret"), Buffer.alloc(0));
  const copy = Buffer.from(sealed.ciphertext);
  copy[0]! ^= 1;
  assert.throws(
    () => open(key, { ...sealed, ciphertext: copy }, Buffer.alloc(0), 'secret "x" v1'),
    { code: "E_DECRYPT", message: 'cannot decrypt secret "x" v1: wrong key or tampered data' },
  );
});
