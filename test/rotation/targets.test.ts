/** A policy's `apply` as a request gives it: checked (hostile input), then turned into its target. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyProblem, targetFactory } from "../../src/rotation/targets.ts";

test("applyProblem: postgres settings are checked; a runbook needs a server that runs runbooks", () => {
  assert.equal(applyProblem({ postgres: { connection: "db/admin-url", role: "app" } }, undefined), undefined);
  for (const bad of [{ connection: "../x", role: "app" }, { connection: "db/x", role: "" }, { connection: "db/x", role: "a\u0000b" }, { connection: "db/x", role: "r".repeat(64) }]) {
    assert.ok(applyProblem({ postgres: bad }, undefined) !== undefined, JSON.stringify(bad));
  }
  assert.match(applyProblem({ runbook: "rotate-db" }, undefined) ?? "", /runs no runbooks/);
  assert.match(applyProblem({ runbook: "rotate-db" }, { get: () => undefined }) ?? "", /rotate-db/);
});

test("targetFactory: a postgres apply is the idempotent postgres target; a runbook without runbooks is E_ROTATION", () => {
  const make = targetFactory({});
  const pg = make({ postgres: { connection: "db/admin-url", role: "app" } });
  assert.equal(pg.label, "postgres:app");
  assert.equal(pg.idempotent, true);
  assert.throws(() => make({ runbook: "rotate-db" }), { code: "E_ROTATION" });
});
