import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { assertEnvName, assertSecretName, assertValue, isSecretName } from "../../src/core/names.ts";

test("secret names: valid examples", () => {
  for (const ok of ["a", "db/prod/password", "A9_.-x", "app/tls/key.pem", "x".repeat(256), "1/2/3"]) {
    assertSecretName(ok);
    assert.ok(isSecretName(ok));
  }
});

test("secret names: traversal and malformed names are refused naming the rule", () => {
  const bad = [
    "", "../x", "a/../b", "..", "a..b", "/abs", "a/", "a//b", ".hidden", "-x", "a/.b", "a b", "a\\b",
    "x".repeat(257), "ümlaut", "a\nb", "a\0b", "a:b", "~/x",
  ];
  for (const name of bad) {
    assert.throws(() => assertSecretName(name), { code: "E_INVALID_NAME", message: /invalid secret name/ });
    assert.equal(isSecretName(name), false);
  }
  assert.throws(() => assertSecretName(42), { code: "E_INVALID_NAME" });
});

test("property: isSecretName agrees with assertSecretName, and a valid name never escapes its prefix", () => {
  const alphabet = "ab/.-_9Z\\ :";
  for (let i = 0; i < 5000; i++) {
    const name = Array.from({ length: randomInt(1, 12) }, () => alphabet[randomInt(alphabet.length)]).join("");
    let threw = false;
    try {
      assertSecretName(name);
    } catch {
      threw = true;
    }
    assert.equal(isSecretName(name), !threw);
    if (!threw) {
      assert.ok(!name.startsWith("/") && !name.includes("..") && !name.includes("//") && !name.endsWith("/"));
      assert.ok(name.split("/").every((seg) => /^[A-Za-z0-9]/.test(seg)));
    }
  }
});

test("env names: the rule", () => {
  for (const ok of ["A", "_x", "DATABASE_URL", "a1"]) assertEnvName(ok);
  for (const bad of ["", "1A", "A-B", "A B", "A=B"]) assert.throws(() => assertEnvName(bad), { code: "E_INVALID_NAME" });
});

test("values: 1 byte to the limit; the message gives sizes only", () => {
  assertValue(Buffer.from("x"));
  assertValue(randomBytes(1024), 1024);
  assertValue(Buffer.alloc(0)); // an empty value is a value
  assert.throws(() => assertValue(Buffer.alloc(1025, 0x41), 1024), {
    code: "E_INVALID_VALUE",
    message: "invalid value: 1025 bytes is over the limit of 1024 bytes",
  });
});
