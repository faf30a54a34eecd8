import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sign, verify, createPublicKey, randomBytes } from "node:crypto";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import {
  decodeAgeSecretKey, deriveSigningKey, deriveStoreKeyWrapKey, encodeAgeSecretKey, recipientOf,
} from "../../src/crypto/keys.ts";

const SEVENS = "AGE-SECRET-KEY-1QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSKMP32K";
const SEVENS_RECIPIENT = "age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt";

test("known answer: a 32×0x07 secret encodes, and its recipient matches age-keygen -y", () => {
  assert.equal(encodeAgeSecretKey(Buffer.alloc(32, 7)), SEVENS);
  assert.deepEqual(Buffer.from(decodeAgeSecretKey(SEVENS)), Buffer.alloc(32, 7));
  assert.equal(recipientOf(decodeAgeSecretKey(SEVENS)), SEVENS_RECIPIENT);
  const dir = mkdtempSync(join(tmpdir(), "coffer-keys-"));
  try {
    writeFileSync(join(dir, "k"), `${SEVENS}\n`, { mode: 0o600 });
    assert.equal(execFileSync("age-keygen", ["-y", join(dir, "k")], { encoding: "utf8" }).trim(), SEVENS_RECIPIENT);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("recipientOf agrees with age-encryption on random identities", async () => {
  for (let i = 0; i < 20; i++) {
    const id = await generateX25519Identity();
    assert.equal(recipientOf(decodeAgeSecretKey(id)), await identityToRecipient(id));
  }
});

test("known answer: Ed25519 key derived with HKDF info coffer/v1/ed25519", () => {
  const k = deriveSigningKey(Buffer.alloc(32, 7));
  assert.equal(k.publicKey, "FtQxraR8yonpkH6E5XiM8xh-fueW_28AFah4woWMPpc");
  const msg = randomBytes(64);
  const sig = sign(null, msg, k.privateKey);
  assert.ok(verify(null, msg, createPublicKey(k.privateKey), sig));
});

test("known answer: store-key wrap key derived with HKDF info coffer/v1/store-key", () => {
  assert.equal(
    deriveStoreKeyWrapKey(Buffer.alloc(32, 7)).toString("hex"),
    "5240a488e516ceb1802cc7f58ae2ca9f9b4cb6e85e50ccdce58b11ea96b504a1",
  );
});

test("decodeAgeSecretKey refuses what is not a native X25519 identity", () => {
  const bad = [
    "",
    SEVENS.toLowerCase(),
    SEVENS.slice(0, -1) + (SEVENS.endsWith("K") ? "L" : "K"), // checksum
    SEVENS.slice(0, -2),
    "AGE-SECRET-KEY-PQ-1QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSKMP32K",
    "age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt",
  ];
  for (const s of bad) assert.throws(() => decodeAgeSecretKey(s), { code: "E_IDENTITY" });
});
