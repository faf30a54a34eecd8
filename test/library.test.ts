import { test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
// The package's own name: resolved through package.json "exports" to the built dist/index.js,
// as a dependent app would import it.
import { initCoffer, openStore, Secret, CofferError } from "coffer";
import { tempDir } from "./helpers.ts";

test('import { openStore } from "coffer" works, and get returns a redacted Secret synchronously', async (t) => {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "app" });
  const store = await openStore({ env: { COFFER_HOME: home } });
  t.after(() => store.close());
  store.set("payments/stripe", "sk_test_value", { description: "Stripe key" });
  const secret = store.get("payments/stripe");
  assert.ok(secret instanceof Secret);
  assert.equal(`${secret}`, "[redacted]");
  assert.ok(!inspect(secret).includes("sk_test_value"));
  assert.equal(secret.reveal(), "sk_test_value");
  assert.throws(() => store.get("payments/missing"), (err: unknown) => err instanceof CofferError && err.code === "E_NOT_FOUND");
});
