import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { parseSince, table } from "../io.ts";
import { printJson, withStore } from "../open.ts";

export const audit: Command = {
  name: "audit",
  summary: "show the audit log",
  usage: "[--since WHEN] [--json]",
  details: "Every change, every CLI read, and later every export, import and delivery; never a value.",
  examples: ["coffer audit", "coffer audit --since 7d", "coffer audit --since 2026-11-01 --json"],
  flags: {
    since: { type: "string", arg: "WHEN", help: "only records since an ISO date/time or a duration back (7d, 12h)" },
    json: { type: "boolean", help: "print the records as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unknown argument "${ctx.args[0]}"; did you mean \`coffer audit verify\`?`);
    const since = typeof ctx.flags.since === "string" ? parseSince(ctx.flags.since) : undefined;
    const records = await withStore(ctx, (s) => s.auditLog(since === undefined ? {} : { since }));
    if (ctx.flags.json === true) return printJson(ctx, records);
    ctx.out(
      table(
        ["SEQ", "AT", "ACTOR", "ACTION", "NAME", "VERSION", "DETAIL"],
        records.map((r) => [
          String(r.seq), r.at.replace(/\.\d+Z$/, "Z"), r.actor, r.action, r.name ?? "",
          r.version === null ? "" : String(r.version), r.detail === null ? "" : JSON.stringify(r.detail),
        ]),
      ),
    );
  },
};

export const auditVerify: Command = {
  name: "audit verify",
  summary: "recompute the audit hash chain",
  usage: "[--json]",
  details: "Exits 0 when every record's hash matches its content and its predecessor, 6 otherwise.",
  examples: ["coffer audit verify"],
  flags: { json: { type: "boolean", help: "print the outcome as JSON" } },
  async run(ctx) {
    const result = await withStore(ctx, (s) => s.verifyAudit());
    if (ctx.flags.json === true) printJson(ctx, result);
    if (!result.ok) {
      throw new CofferError("E_INTEGRITY", `audit chain broken at record ${result.brokenAt}: ${result.reason}; ${result.records} records before it verify`);
    }
    if (ctx.flags.json !== true) ctx.say(`audit chain intact: ${result.records} records verify`);
  },
};
