import { test } from "node:test";
import assert from "node:assert/strict";
import { createEnvProvider } from "../../src/providers/env.ts";

const VALUE = "env-SECRET-value";

test("env: the value is the variable of coffer's own environment", async () => {
  const p = createEnvProvider("env", { type: "env" }, { env: { CI_DB_PASSWORD: `${VALUE}\n` } });
  const s = await p.resolve({ provider: "env", path: "CI_DB_PASSWORD" });
  assert.equal(s.reveal(), `${VALUE}\n`);
  assert.equal(s.name, "CI_DB_PASSWORD");
  assert.equal(s.version, 1);
  assert.equal(p.watch, undefined);
});

test("env: unset is E_NOT_FOUND naming the variable, empty is the empty value, bad names and keys refused", async () => {
  const p = createEnvProvider("env", { type: "env" }, { env: { EMPTY: "", SET: VALUE } });
  await assert.rejects(p.resolve({ provider: "env", path: "MISSING" }), { code: "E_NOT_FOUND", message: /environment variable MISSING is not set/ });
  assert.equal((await p.resolve({ provider: "env", path: "EMPTY" })).reveal(), "");
  await assert.rejects(p.resolve({ provider: "env", path: "1BAD" }), { code: "E_INVALID_NAME", message: /must match/ });
  await assert.rejects(p.resolve({ provider: "env", path: "a/b" }), { code: "E_INVALID_NAME" });
  await assert.rejects(p.resolve({ provider: "env", path: "SET", key: "k" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_CONFIG");
    assert.ok(!err.message.includes(VALUE));
    return true;
  });
  await assert.rejects(p.resolve({ provider: "env", path: "SET", version: 2 }), { code: "E_CONFIG" });
});
