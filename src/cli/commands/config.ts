import { CofferError } from "../../errors.ts";
import { CONFIG_JSON_SCHEMA } from "../../config/schema.ts";
import { describeRef } from "../../providers/provider.ts";
import { disposeResolved, resolvePlan } from "../../deliver/resolve.ts";
import type { Command } from "../command.ts";
import { table } from "../io.ts";
import { DELIVERY_FLAGS, loadPlan, openProviders } from "../delivery.ts";
import { printJson } from "../open.ts";

export const configCheck: Command = {
  name: "config check",
  summary: "show what .coffer.yml delivers and check that it all resolves",
  usage: "[-e ENV] [--config F] [--json]",
  details: "Prints the plan (variable, provider and reference, files with their modes), then resolves every reference. Values are never printed.",
  examples: ["coffer config check", "coffer config check -e ci --json"],
  flags: { ...DELIVERY_FLAGS, json: { type: "boolean", help: "print the plan as JSON" } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "config check takes no arguments");
    const plan = loadPlan(ctx);
    const providers = openProviders(ctx, plan);
    try {
      disposeResolved(await resolvePlan(plan, providers));
    } finally {
      await providers.close();
    }
    const rows = [
      ...plan.env.map((e) => ({ variable: e.variable, as: "env", ref: describeRef(e.ref), line: e.line })),
      ...plan.files.map((f) => ({ variable: f.variable, as: `file ${f.mode.toString(8).padStart(4, "0")}`, ref: describeRef(f.ref), line: f.line })),
    ];
    if (ctx.flags.json === true) return printJson(ctx, { file: plan.file, environment: plan.environment, ok: true, deliveries: rows });
    ctx.out(table(["VARIABLE", "AS", "FROM", "LINE"], rows.map((r) => [r.variable, r.as, r.ref, String(r.line)])));
    ctx.say(`${plan.file}: environment ${plan.environment}: ${rows.length} ${rows.length === 1 ? "secret resolves" : "secrets resolve"}`);
  },
};

export const configSchema: Command = {
  name: "config schema",
  summary: "print the JSON Schema of .coffer.yml for editors",
  usage: "",
  details: "Point your editor's YAML support at it, e.g. `# yaml-language-server: $schema=coffer.schema.json`.",
  examples: ["coffer config schema > coffer.schema.json"],
  flags: {},
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "config schema takes no arguments");
    printJson(ctx, CONFIG_JSON_SCHEMA);
  },
};
