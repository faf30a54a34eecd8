/**
 * The runbook apply target (`apply: {runbook: NAME}`, docs/design.md §12): the runbook runs with
 * the secret's current value as {@link OLD_VALUE_ENV} and the candidate as {@link NEW_VALUE_ENV},
 * both secrets of the execution (masked in its output like the runbook's own, stored nowhere
 * else), and must exit 0. The execution is in the history as any other, requested by
 * `rotation` ({@link ROTATION_REQUESTER}); it does not count against a caller's execution limit
 * (that limit is the API route's). A runbook that needs approvals is refused: a rotation cannot
 * wait for people, and the values cannot wait in the database. Not idempotent: a script may do
 * anything, so a rotation interrupted after it ran is left for a person to resolve.
 */
import { CofferError, show } from "../errors.ts";
import type { CatalogEntry } from "../runbooks/catalog.ts";
import { checkParams, isRunbookName, RUNBOOK_NAME_RULE, type Runbook } from "../runbooks/definition.ts";
import type { ExecutionManager, Requester } from "../runbooks/executions.ts";
import type { StoredExecution } from "../storage/types.ts";
import type { ApplyContext, ApplyTarget } from "./apply.ts";

/** The variable holding the secret's current value (empty when it has none yet). */
export const OLD_VALUE_ENV = "OLD_VALUE";
/** The variable holding the candidate value. */
export const NEW_VALUE_ENV = "NEW_VALUE";

/** Who requests a rotation's executions, in the history and on the audit chain. */
export const ROTATION_REQUESTER: Requester = Object.freeze({ subject: "rotation", principal: "rotation", detail: Object.freeze({}) });

/** What the runbook target needs from the server. */
export interface RunbookTargetDeps {
  /** the server's runbooks, looked up at each apply (so a reload on SIGHUP counts) */
  catalog: { get(name: unknown): CatalogEntry | undefined };
  /** the server's execution manager */
  executions: Pick<ExecutionManager, "request" | "cancel" | "whenEnded">;
}

/**
 * Why runbook `name` cannot be an apply target now, or undefined when it can: no such runbook,
 * invalid, needs approvals, a required param (a rotation gives none), or a variable of its own
 * named OLD_VALUE or NEW_VALUE. For refusing a rotation policy when it is set.
 */
export function runbookTargetProblem(name: string, catalog: RunbookTargetDeps["catalog"]): string | undefined {
  const r = usable(name, catalog);
  return "problem" in r ? r.problem : undefined;
}

/**
 * The apply target that runs runbook `name` (label `runbook:NAME`, not idempotent).
 * @throws CofferError E_INVALID_VALUE when `name` is not a runbook name
 */
export function runbookTarget(name: string, deps: RunbookTargetDeps): ApplyTarget {
  if (!isRunbookName(name)) throw new CofferError("E_INVALID_VALUE", `apply: runbook ${show(name)} is not a runbook name: ${RUNBOOK_NAME_RULE}`);
  const label = `runbook:${name}`;
  return {
    label,
    idempotent: false,
    apply: (ctx) => runRotation(name, deps, ctx),
  };
}

async function runRotation(name: string, deps: RunbookTargetDeps, ctx: ApplyContext): Promise<void> {
  const fail = (why: string): CofferError => new CofferError("E_ROTATION", why);
  const found = usable(name, deps.catalog);
  if ("problem" in found) throw fail(found.problem);
  if (ctx.signal.aborted) throw fail(`runbook ${name} was not started: the server is stopping`);
  const { runbook, params } = found;
  const extraSecrets = { [OLD_VALUE_ENV]: ctx.oldValue ?? Buffer.alloc(0), [NEW_VALUE_ENV]: ctx.newValue };
  const by: Requester = { ...ROTATION_REQUESTER, detail: { rotation: ctx.name } };
  let started: StoredExecution;
  try {
    started = await deps.executions.request(runbook, params, by, { extraSecrets });
  } catch (err) {
    // The manager's messages name runbooks, secrets and limits, never a value.
    throw fail(`runbook ${name} could not start: ${err instanceof CofferError ? err.message : "an unexpected failure"}`);
  }
  const onAbort = (): void => {
    deps.executions.cancel(started.id, by).catch(() => undefined); // ended meanwhile: nothing to cancel
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  let ended: StoredExecution;
  try {
    if (ctx.signal.aborted) onAbort();
    ended = await deps.executions.whenEnded(started.id);
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
  }
  if (ended.status === "succeeded") return;
  throw fail(`${outcome(name, ended)} (execution ${ended.id})`);
}

/** The runbook and its params when it can rotate, else why not. */
function usable(name: string, catalog: RunbookTargetDeps["catalog"]): { runbook: Runbook; params: Record<string, string> } | { problem: string } {
  const entry = catalog.get(name);
  if (entry === undefined) return { problem: `no runbook "${name}" is loaded on this server` };
  if (!entry.valid) return { problem: `runbook "${name}" is invalid and cannot run: ${entry.problems.join("; ")}` };
  const { runbook } = entry;
  if (runbook.approvals > 0) {
    return { problem: `runbook "${name}" needs ${runbook.approvals} approval(s), so it cannot apply a rotation (which cannot wait for people); use a runbook without approvals` };
  }
  for (const env of [OLD_VALUE_ENV, NEW_VALUE_ENV]) {
    if (Object.hasOwn(runbook.params, env) || Object.hasOwn(runbook.secrets, env) || Object.hasOwn(runbook.files, env)) {
      return { problem: `runbook "${name}" sets ${env} itself; a rotation gives it the value, so rename its variable` };
    }
  }
  const checked = checkParams(runbook, {});
  if ("problems" in checked) return { problem: `runbook "${name}" cannot run without params, as a rotation runs it: ${checked.problems.join("; ")}` };
  return { runbook, params: checked.params };
}

/** How an execution that did not succeed ended, in words. */
function outcome(name: string, e: StoredExecution): string {
  switch (e.status) {
    case "failed":
      return e.exitCode !== null ? `runbook ${name} exited ${e.exitCode}` : e.signal !== null ? `runbook ${name} was killed by ${e.signal}` : `runbook ${name} failed to start`;
    case "timed-out":
      return `runbook ${name} timed out`;
    case "cancelled":
      return `runbook ${name} was cancelled`;
    case "interrupted":
      return `runbook ${name} was interrupted (its server stopped)`;
    default:
      return `runbook ${name} ended ${e.status}`;
  }
}
