/**
 * Resolves a delivery plan, or the agent's secrets: every reference at once, before anything is
 * started or written.
 * A failure names the variable (and the reference), never a value.
 */
import { CofferError, problemList, type ErrorCode } from "../errors.ts";
import type { DeliveryPlan } from "../config/plan.ts";
import { describeRef, type Provider, type SecretRef } from "../providers/provider.ts";
import type { Secret } from "../core/secret.ts";
import { envValueProblem } from "../core/names.ts";

/** Anything that resolves references (a provider set). */
export type Resolver = Pick<Provider, "resolve">;

/** A plan with its values. Dispose the secrets when done ({@link disposeResolved}). */
export interface ResolvedPlan {
  env: { variable: string; value: Secret }[];
  files: { variable: string; value: Secret; mode: number }[];
}

/** One reference to resolve, named in a failure as `label`; `env`: it must be fit for an environment variable. */
export interface Wanted {
  label: string;
  ref: SecretRef;
  env?: boolean;
}

/**
 * Resolves every reference at once; all or nothing (the one resolve of `run`, `load` and the agent).
 * @param words - `verb` starts the message ("cannot resolve"); `after` says what did not happen ("nothing was started")
 * @returns the values, in the order of `wanted`
 * @throws CofferError with the first failure's code and a message naming every failed label
 */
export async function resolveAll(wanted: readonly Wanted[], resolver: Resolver, words: { verb: string; after: string }): Promise<Secret[]> {
  const settled = await Promise.allSettled(wanted.map((w) => resolver.resolve(w.ref)));
  const failures: string[] = [];
  let code: ErrorCode | undefined;
  settled.forEach((s, i) => {
    const w = wanted[i]!;
    if (s.status === "rejected") {
      const err = s.reason as unknown;
      code ??= err instanceof CofferError ? err.code : "E_PROVIDER";
      failures.push(`${w.label}: ${err instanceof CofferError ? err.message : "the provider failed"}`);
    } else if (w.env === true) {
      const problem = envValueProblem(s.value.bytes());
      if (problem !== undefined) {
        code ??= "E_INVALID_VALUE";
        failures.push(`${w.label}: ${problem}; deliver it under files: instead`);
      }
    }
  });
  if (failures.length > 0) {
    for (const s of settled) if (s.status === "fulfilled") s.value.dispose();
    const message = failures.length === 1 ? `${words.verb} ${failures[0]}; ${words.after}` : `${problemList(words.verb, failures)}\n${words.after}`;
    throw new CofferError(code ?? "E_PROVIDER", message);
  }
  return settled.map((s) => (s as PromiseFulfilledResult<Secret>).value);
}

/**
 * Resolves every reference of `plan`; all or nothing.
 * @throws CofferError with the first failure's code and a message naming every failed variable
 */
export async function resolvePlan(plan: DeliveryPlan, resolver: Resolver): Promise<ResolvedPlan> {
  const label = (d: { variable: string; ref: SecretRef }) => `${d.variable} (${describeRef(d.ref)})`;
  const wanted = [...plan.env.map((d) => ({ label: label(d), ref: d.ref, env: true })), ...plan.files.map((d) => ({ label: label(d), ref: d.ref }))];
  const values = await resolveAll(wanted, resolver, { verb: "cannot resolve", after: "nothing was started" });
  return {
    env: plan.env.map((d, i) => ({ variable: d.variable, value: values[i]! })),
    files: plan.files.map((d, i) => ({ variable: d.variable, value: values[plan.env.length + i]!, mode: d.mode })),
  };
}

/** Zeroes every value of a resolved plan. */
export function disposeResolved(resolved: ResolvedPlan): void {
  for (const e of resolved.env) e.value.dispose();
  for (const f of resolved.files) f.value.dispose();
}

