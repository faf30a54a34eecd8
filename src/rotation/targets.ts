/**
 * From a rotation policy's `apply` to its target (docs/design.md §12): the one place that knows
 * the kinds. `applyProblem` refuses a policy whose target cannot work when it is set; `targetFor`
 * builds the target when a rotation runs (the runbook is looked up again then).
 */
import { CofferError } from "../errors.ts";
import type { RotationApply } from "../client/wire.ts";
import type { ApplyTarget } from "./apply.ts";
import { checkPostgresSettings, postgresTarget } from "./postgres.ts";
import { runbookTarget, runbookTargetProblem, type RunbookTargetDeps } from "./runbook-target.ts";

/** Builds the target of a non-null `apply`. */
export type TargetFactory = (apply: NonNullable<RotationApply>) => ApplyTarget;

/** What the targets need of the server: its runbooks, when it has any. */
export interface TargetDeps {
  runbooks?: RunbookTargetDeps;
}

const NO_RUNBOOKS = "this server runs no runbooks (no runbooks.dir in its config)";

/** The server's target factory. */
export function targetFactory(deps: TargetDeps): TargetFactory {
  return (apply) => {
    if ("postgres" in apply) return postgresTarget(apply.postgres);
    if (deps.runbooks === undefined) throw new CofferError("E_ROTATION", `apply: runbook ${apply.runbook}: ${NO_RUNBOOKS}`);
    return runbookTarget(apply.runbook, deps.runbooks);
  };
}

/**
 * Checks a policy's `apply` as a request gave it (hostile): null, `{runbook: NAME}` naming a
 * runbook that can be a target now, or `{postgres: {connection, role}}`.
 * @returns the checked value, or a problem (one line) for a 400
 */
export function checkApply(apply: unknown, deps: TargetDeps): { apply: RotationApply } | { problem: string } {
  if (apply === undefined || apply === null) return { apply: null };
  if (typeof apply !== "object" || Array.isArray(apply)) return { problem: "apply must be null, {runbook: NAME} or {postgres: {connection, role}}" };
  const keys = Object.keys(apply);
  if (keys.length !== 1) return { problem: "apply takes exactly one of runbook or postgres" };
  const a = apply as Record<string, unknown>;
  if (keys[0] === "runbook") {
    if (typeof a.runbook !== "string") return { problem: "apply.runbook must be a runbook name" };
    if (deps.runbooks === undefined) return { problem: `apply.runbook: ${NO_RUNBOOKS}` };
    const why = runbookTargetProblem(a.runbook, deps.runbooks.catalog);
    return why === undefined ? { apply: { runbook: a.runbook } } : { problem: `apply.runbook: ${why}` };
  }
  if (keys[0] === "postgres") {
    try {
      return { apply: { postgres: checkPostgresSettings(a.postgres) } };
    } catch (err) {
      return { problem: err instanceof CofferError ? err.message : "apply.postgres is not valid" };
    }
  }
  return { problem: `apply takes runbook or postgres, not ${JSON.stringify(keys[0]).slice(0, 40)}` };
}
