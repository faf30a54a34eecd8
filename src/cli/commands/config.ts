import { CofferError } from "../../errors.ts";
import { DEFAULT_SERVER_TOKEN_ENV } from "../../providers/server.ts";
import { CONFIG_JSON_SCHEMA } from "../../config/schema.ts";
import { describeRef } from "../../providers/provider.ts";
import type { DeliveryPlan } from "../../config/plan.ts";
import { loadToken } from "../../client/token-file.ts";
import type { Command } from "../command.ts";
import { table } from "../io.ts";
import { DELIVERY_FLAGS, loadPlan, withResolved } from "../delivery.ts";
import { printJson } from "../open.ts";

export const configCheck: Command = {
  name: "config check",
  usage: "[-e ENV] [--config F] [--verbose] [--json]",
  details: [
    "Prints the plan (variable, provider and reference, files with their modes), then resolves every reference. Values are never printed.",
    "With --verbose it first names, for each vault or server provider, where its token is sent and the variable it is read from (never the token).",
  ].join("\n"),
  examples: ["coffer config check", "coffer config check -e ci --json", "coffer config check --verbose"],
  flags: {
    ...DELIVERY_FLAGS,
    verbose: { type: "boolean", short: "v", help: "name the variable each provider's token comes from (never the token)" },
    json: { type: "boolean", help: "print the plan as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "config check takes no arguments");
    const plan = loadPlan(ctx);
    const tokens = ctx.flags.verbose === true ? tokenSources(plan, ctx.env) : undefined;
    for (const t of tokens ?? []) ctx.say(`provider ${t.provider} (${t.type}): token sent to ${t.to}, from ${t.from}`);
    await withResolved(ctx, plan, () => {});
    const rows = [
      ...plan.env.map((e) => ({ variable: e.variable, as: "env", ref: describeRef(e.ref), line: e.line })),
      ...plan.files.map((f) => ({ variable: f.variable, as: `file ${f.mode.toString(8).padStart(4, "0")}`, ref: describeRef(f.ref), line: f.line })),
    ];
    if (ctx.flags.json === true) {
      return printJson(ctx, { file: plan.file, environment: plan.environment, ok: true, deliveries: rows, ...(tokens !== undefined && { tokens }) });
    }
    ctx.out(table(["VARIABLE", "AS", "FROM", "LINE"], rows.map((r) => [r.variable, r.as, r.ref, String(r.line)])));
    ctx.say(`${plan.file}: environment ${plan.environment}: ${rows.length} ${rows.length === 1 ? "secret resolves" : "secrets resolve"}`);
  },
};

/** Where each token-bearing provider of the plan sends its token, and where the token comes from (never the token). */
function tokenSources(plan: DeliveryPlan, env: NodeJS.ProcessEnv): { provider: string; type: string; to: string; from: string }[] {
  const isSet = (name: string) => env[name] !== undefined && env[name] !== "";
  return Object.entries(plan.providers).flatMap(([provider, spec]) => {
    if (spec.type === "vault") {
      const name = spec.tokenEnv ?? "VAULT_TOKEN";
      return [{ provider, type: "vault", to: spec.address, from: `the variable ${name}${isSet(name) ? "" : " (not set)"}` }];
    }
    if (spec.type !== "server") return [];
    const name = spec.tokenEnv ?? DEFAULT_SERVER_TOKEN_ENV;
    let saved = false;
    try {
      saved = !isSet(name) && loadToken(spec.url, env) !== undefined;
    } catch {
      // resolving says what is wrong with the token file
    }
    const from = isSet(name)
      ? `the variable ${name}`
      : saved ? `the token \`coffer login\` saved (${name} is not set)` : `the variable ${name} (not set, and no \`coffer login\` token)`;
    return [{ provider, type: "server", to: spec.url, from }];
  });
}

export const configSchema: Command = {
  name: "config schema",
  usage: "",
  details: "Point your editor's YAML support at it, e.g. `# yaml-language-server: $schema=coffer.schema.json`.",
  examples: ["coffer config schema > coffer.schema.json"],
  flags: {},
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "config schema takes no arguments");
    printJson(ctx, CONFIG_JSON_SCHEMA);
  },
};
