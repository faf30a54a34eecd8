import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { base32nopad } from "@scure/base";
import { cardFingerprint } from "../../src/identity/card.ts";

test("property: the fingerprint is RFC 4648 base32 of SHA-256, first 16 characters (oracle: @scure/base)", () => {
  for (let i = 0; i < 200; i++) {
    const card = `coffer-card:v1:n${i}:${randomBytes(20).toString("hex")}`;
    const digest = createHash("sha256").update(card).digest();
    assert.equal(cardFingerprint(card), base32nopad.encode(digest).slice(0, 16));
  }
});
