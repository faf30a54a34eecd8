/**
 * Records a delivery in the local store's audit log: which variables of which environment went
 * where (names, never values). `run`, `load`, the agent's neighbours and the library's `load()`
 * all record the same shape.
 */
import { basename } from "node:path";
import type { DeliveryPlan } from "../config/plan.ts";
import type { ProviderSet } from "../providers/index.ts";

/**
 * Records a delivery when the plan used the local store: that is the log this machine keeps.
 * @param via - what delivered ("run", "load", "library")
 * @param command - the program started, recorded by its base name
 */
export function auditDelivery(providers: ProviderSet, plan: DeliveryPlan, via: string, command?: string): void {
  providers.openedStore()?.appendAudit({
    action: "deliver",
    name: null,
    version: null,
    detail: {
      via,
      environment: plan.environment,
      ...(command !== undefined && { command: basename(command) }),
      env: plan.env.map((e) => e.variable),
      files: plan.files.map((f) => f.variable),
    },
  });
}
