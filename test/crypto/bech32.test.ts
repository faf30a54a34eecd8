import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { bech32 } from "@scure/base";
import { bech32Decode, bech32Encode } from "../../src/crypto/bech32.ts";

test("BIP-173 valid vectors decode", () => {
  for (const s of [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
  ]) {
    assert.notEqual(bech32Decode(s), undefined, s);
  }
});

test("BIP-173 invalid vectors are refused", () => {
  for (const s of [
    "pzry9x0s0muk", // no separator
    "1pzry9x0s0muk", // empty hrp
    "x1b4n0q5v", // invalid data character
    "li1dgmt3", // too short checksum
    "A1G7SGD8", // checksum computed with uppercase hrp
    "10a06t8", // empty hrp
    "1qzzfhee", // empty hrp
    "a12UEL5L", // mixed case
  ]) {
    assert.equal(bech32Decode(s), undefined, s);
  }
});

test("property: agrees with @scure/base on random bytes, both ways", () => {
  for (let i = 0; i < 500; i++) {
    const bytes = randomBytes(randomInt(0, 60));
    const hrp = ["age", "age-secret-key-", "x", "coffer"][i % 4]!;
    const ours = bech32Encode(hrp, bytes);
    assert.equal(ours, bech32.encode(hrp, bech32.toWords(bytes), false));
    const back = bech32Decode(ours.toUpperCase());
    assert.deepEqual(back, { prefix: hrp, bytes: new Uint8Array(bytes) });
  }
});

test("property: any single-character change is caught by the checksum", () => {
  const s = bech32Encode("age", randomBytes(32));
  const alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
  for (let i = 4; i < s.length; i++) {
    for (const c of alphabet) {
      if (c === s[i]) continue;
      assert.equal(bech32Decode(s.slice(0, i) + c + s.slice(i + 1)), undefined);
    }
  }
});
