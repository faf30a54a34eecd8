/**
 * Resolves a delivery plan: every reference at once, before anything is started or written.
 * A failure names the variable (and the reference), never a value.
 */
import { CofferError, problemList, type ErrorCode } from "../errors.ts";
import type { DeliveryPlan } from "../config/plan.ts";
import { describeRef, type SecretRef } from "../providers/provider.ts";
import type { Secret } from "../core/secret.ts";

/** Anything that resolves references (a provider set). */
export interface Resolver {
  resolve(ref: SecretRef): Promise<Secret>;
}

/** A plan with its values. Dispose the secrets when done ({@link disposeResolved}). */
export interface ResolvedPlan {
  env: { variable: string; value: Secret }[];
  files: { variable: string; value: Secret; mode: number }[];
}

/**
 * Resolves every reference of `plan`; all or nothing.
 * @throws CofferError with the first failure's code and a message naming every failed variable
 */
export async function resolvePlan(plan: DeliveryPlan, resolver: Resolver): Promise<ResolvedPlan> {
  const all = [...plan.env.map((d) => ({ ...d, kind: "env" as const })), ...plan.files.map((d) => ({ ...d, kind: "file" as const }))];
  const settled = await Promise.allSettled(all.map((d) => resolver.resolve(d.ref)));
  const failures: string[] = [];
  let code: ErrorCode | undefined;
  settled.forEach((s, i) => {
    const d = all[i]!;
    if (s.status === "rejected") {
      const err = s.reason as Error & { code?: string };
      code ??= err instanceof CofferError ? err.code : "E_PROVIDER";
      failures.push(`${d.variable} (${describeRef(d.ref)}): ${err instanceof CofferError ? err.message : "the provider failed"}`);
    } else if (d.kind === "env") {
      const problem = envValueProblem(s.value.bytes());
      if (problem !== undefined) {
        code ??= "E_INVALID_VALUE";
        failures.push(`${d.variable} (${describeRef(d.ref)}): ${problem}; deliver it under files: instead`);
      }
    }
  });
  if (failures.length > 0) {
    for (const s of settled) if (s.status === "fulfilled") s.value.dispose();
    const message = failures.length === 1 ? `cannot resolve ${failures[0]}; nothing was started` : `${problemList("cannot resolve", failures)}\nnothing was started`;
    throw new CofferError(code ?? "E_PROVIDER", message);
  }
  const value = (i: number) => (settled[i] as PromiseFulfilledResult<Secret>).value;
  return {
    env: plan.env.map((d, i) => ({ variable: d.variable, value: value(i) })),
    files: plan.files.map((d, i) => ({ variable: d.variable, value: value(plan.env.length + i), mode: d.mode })),
  };
}

/** Zeroes every value of a resolved plan. */
export function disposeResolved(resolved: ResolvedPlan): void {
  for (const e of resolved.env) e.value.dispose();
  for (const f of resolved.files) f.value.dispose();
}

// An environment variable is a C string of text: no NUL, and (for Node, which hands the child
// UTF-8) valid UTF-8, or the child would get other bytes than the secret's.
function envValueProblem(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return "its value holds a NUL byte, which no environment variable can carry";
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return "its value is not UTF-8 text";
  }
  return undefined;
}
