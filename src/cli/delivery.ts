/**
 * What `run`, `load` and `config check` share: finding and loading `.coffer.yml`, choosing the
 * environment, opening the providers, and auditing a delivery in the local store.
 */
import { resolve } from "node:path";
import { findConfig, loadConfig, planFor } from "../config/load.ts";
import type { DeliveryPlan } from "../config/plan.ts";
import { disposeResolved, resolvePlan, type ResolvedPlan } from "../deliver/resolve.ts";
import { ProviderSet } from "../providers/index.ts";
import type { Command, Context } from "./command.ts";
import { promptHidden } from "./io.ts";
import { stringFlag } from "./open.ts";

/** The flags every delivery command takes. */
export const DELIVERY_FLAGS: Command["flags"] = {
  env: { type: "string", short: "e", arg: "ENV", help: "the environment in .coffer.yml (default: COFFER_ENV, default:, or the only one)", complete: "environment" },
  config: { type: "string", arg: "F", help: "the project file (default: .coffer.yml here or in a parent)" },
  offline: { type: "boolean", help: "ask no server: server secrets come from the encrypted cache (within the provider's staleIfError, default 24h)" },
};

/** The project file a delivery command uses: `--config F`, or the one found from here up. */
function projectFile(ctx: Context): string {
  return stringFlag(ctx, "config") ?? findConfig(process.cwd(), { env: ctx.env });
}

/** The project file's absolute path: what `load` records its dirs under, for `load --clean`. */
export function projectKey(ctx: Context): string {
  return resolve(projectFile(ctx));
}

/**
 * Loads the project file (found, or `--config F`; either way refused unless trusted) and makes
 * the plan for the chosen environment.
 */
export function loadPlan(ctx: Context): DeliveryPlan {
  const config = loadConfig(projectFile(ctx), { env: ctx.env });
  const plan = planFor(config, stringFlag(ctx, "env"), ctx.env);
  if (plan.dangerous !== undefined) {
    const names = plan.dangerous.join(", ");
    ctx.say(`coffer: warning: ${plan.file} sets ${names}, which ${plan.dangerous.length === 1 ? "changes" : "change"} how programs load or run (allowed by its allowDangerous:)`);
  }
  return plan;
}

/**
 * Opens the providers the plan names (each created as it is first used), resolves every
 * reference and runs `fn`; the values are disposed and the providers closed however it ends.
 */
export async function withResolved<T>(ctx: Context, plan: DeliveryPlan, fn: (resolved: ResolvedPlan, providers: ProviderSet) => T | Promise<T>): Promise<T> {
  const providers = new ProviderSet(plan.providers, {
    env: ctx.env,
    ...(ctx.store !== undefined && { storePath: ctx.store }),
    passphrase: () => promptHidden("passphrase for your coffer identity: "),
    progress: (m) => ctx.say(m),
    warn: (m) => ctx.say(`coffer: warning: ${m}`),
    ...(ctx.flags.offline === true && { offline: true }),
  });
  try {
    const resolved = await resolvePlan(plan, providers);
    try {
      return await fn(resolved, providers);
    } finally {
      disposeResolved(resolved);
    }
  } finally {
    await providers.close();
  }
}
