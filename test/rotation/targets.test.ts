/** A policy's `apply` as a request gives it: checked (hostile input), then turned into its target. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkApply, targetFactory } from "../../src/rotation/targets.ts";

test("checkApply: null or absent is no target; one of runbook or postgres; anything else is a problem", () => {
  assert.deepEqual(checkApply(undefined, {}), { apply: null });
  assert.deepEqual(checkApply(null, {}), { apply: null });
  assert.deepEqual(checkApply({ postgres: { connection: "db/admin-url", role: "app" } }, {}), { apply: { postgres: { connection: "db/admin-url", role: "app" } } });
  for (const bad of ["x", [], {}, { runbook: "a", postgres: {} }, { shell: "rm -rf /" }, { postgres: { connection: "../x", role: "app" } }, { postgres: { connection: "db/x", role: "" } }, { runbook: 3 }]) {
    const r = checkApply(bad, {});
    assert.ok("problem" in r, JSON.stringify(bad));
  }
  // A runbook target needs a server that runs runbooks.
  const r = checkApply({ runbook: "rotate-db" }, {});
  assert.ok("problem" in r && /runs no runbooks/.test(r.problem));
});

test("targetFactory: a postgres apply is the idempotent postgres target; a runbook without runbooks is E_ROTATION", () => {
  const make = targetFactory({});
  const pg = make({ postgres: { connection: "db/admin-url", role: "app" } });
  assert.equal(pg.label, "postgres:app");
  assert.equal(pg.idempotent, true);
  assert.throws(() => make({ runbook: "rotate-db" }), { code: "E_ROTATION" });
});
