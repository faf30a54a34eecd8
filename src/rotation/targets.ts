/**
 * From a rotation policy's `apply` to its target (docs/design.md §12): the one place that knows
 * the kinds. `applyProblem` refuses a policy whose target cannot work when it is set; `targetFor`
 * builds the target when a rotation runs (the runbook is looked up again then).
 */
import { CofferError } from "../errors.ts";
import type { RotationApply } from "../client/wire.ts";
import type { TargetFactory } from "./apply.ts";
import { checkPostgresSettings, postgresTarget } from "./postgres.ts";
import { runbookTarget, runbookTargetProblem, type RunbookTargetDeps } from "./runbook-target.ts";

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
 * Why `apply` cannot be a target of this server now, or undefined when it can: a runbook that is
 * missing, invalid, needs approvals or params (runbook-target.ts), a server without runbooks, or
 * PostgreSQL settings that break a rule. For refusing a policy when it is set.
 */
export function applyProblem(apply: NonNullable<RotationApply>, catalog: RunbookTargetDeps["catalog"] | undefined): string | undefined {
  if ("runbook" in apply) {
    if (catalog === undefined) return `apply.runbook: ${NO_RUNBOOKS}`;
    const why = runbookTargetProblem(apply.runbook, catalog);
    return why === undefined ? undefined : `apply.runbook: ${why}`;
  }
  try {
    checkPostgresSettings(apply.postgres);
    return undefined;
  } catch (err) {
    return err instanceof CofferError ? err.message : "apply.postgres is not valid";
  }
}
