import { test } from "node:test";
import assert from "node:assert/strict";
import { assertMemberName, cardFingerprint, formatCard, parseCard } from "../../src/identity/card.ts";

const CARD =
  "coffer-card:v1:alice:age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt:FtQxraR8yonpkH6E5XiM8xh-fueW_28AFah4woWMPpc";

test("card: format and parse round trip", () => {
  const card = parseCard(CARD);
  assert.deepEqual(card, {
    name: "alice",
    recipient: "age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt",
    signingKey: "FtQxraR8yonpkH6E5XiM8xh-fueW_28AFah4woWMPpc",
  });
  assert.equal(formatCard(card), CARD);
});

test("known answer: fingerprint = first 16 base32 chars of SHA-256(card)", () => {
  assert.equal(cardFingerprint(CARD), "7YN35J5OTJONJLK3");
  assert.equal(cardFingerprint(`  ${CARD}\n`), "7YN35J5OTJONJLK3");
});

test("card: malformed cards are refused naming the field", () => {
  const [, , , r, k] = CARD.split(":");
  const cases: [string, RegExp][] = [
    ["coffer-card:v2:alice:" + r + ":" + k, /not a coffer card/],
    ["coffer-card:v1:alice:" + r, /not a coffer card/],
    ["coffer-card:v1:al ice:" + r + ":" + k, /invalid name/],
    ["coffer-card:v1:alice:age1xyz:" + k, /recipient/],
    ["coffer-card:v1:alice:" + r + ":" + "abc", /signing key/],
    ["coffer-card:v1:alice:" + r + ":" + k + ":extra", /not a coffer card/],
  ];
  for (const [line, msg] of cases) assert.throws(() => parseCard(line), { message: msg });
});

test("member names: the rule", () => {
  for (const ok of ["alice", "a", "bob.smith", "ci-runner_1", "alice@example.com"]) assertMemberName(ok);
  for (const bad of ["", "-x", ".x", "a:b", "a b", "x".repeat(65), "a/b"]) {
    assert.throws(() => assertMemberName(bad), { code: "E_INVALID_NAME" });
  }
});
