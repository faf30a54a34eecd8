import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { parseSince, table, wholeSeconds } from "../io.ts";
import { printJson, withStore } from "../open.ts";

export const audit: Command = {
  name: "audit",
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
    const rows = records.map((r) => [
      String(r.seq), wholeSeconds(r.at), r.actor, r.action, r.name ?? "",
      r.version === null ? "" : String(r.version), r.detail === null ? "" : JSON.stringify(r.detail),
    ]);
    ctx.out(table(["SEQ", "AT", "ACTOR", "ACTION", "NAME", "VERSION", "DETAIL"], rows));
  },
};

export const auditVerify: Command = {
  name: "audit verify",
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

export const auditAccept: Command = {
  name: "audit accept",
  usage: "[--json]",
  details: [
    "After every write coffer signs the audit chain's head (record count and hash) with your",
    "identity and keeps it beside the identity. A store whose chain is shorter than that head or",
    "differs from it is an older copy put back (a copied file, replanted WAL frames) and is refused,",
    "because it would silently undo later changes (a rotated secret would come back).",
    "If you put the older copy back yourself, this takes it: it verifies the chain, appends an",
    "`accept` record naming the head that was signed and the chain that was found, and signs the",
    "new head. Nothing is done when the store matches its head.",
  ].join("\n"),
  examples: ["coffer audit accept"],
  flags: { json: { type: "boolean", help: "print the outcome as JSON" } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "audit accept takes no arguments");
    await withStore(ctx, (store) => {
      const status = store.headStatus;
      if (status.state !== "diverged") {
        if (ctx.flags.json === true) return printJson(ctx, { accepted: false, head: status.signed });
        return ctx.say(`nothing to accept: the store's audit chain contains its signed head (record ${status.signed.count})`);
      }
      const verification = store.verifyAudit();
      if (!verification.ok) {
        throw new CofferError(
          "E_INTEGRITY",
          `audit chain broken at record ${verification.brokenAt}: ${verification.reason}; a broken chain cannot be accepted, restore a backup`,
        );
      }
      const record = store.appendAudit({
        action: "accept", name: null, version: null,
        detail: {
          signed_count: status.signed.count, signed_hash: status.signed.hash, signed_at: status.signed.at,
          found_count: status.found.count, found_hash: status.found.hash,
        },
      });
      if (ctx.flags.json === true) return printJson(ctx, { accepted: true, signed: status.signed, found: status.found, record: record.seq });
      ctx.say(
        `accepted the store as it is: ${status.found.count} records where ${status.signed.count} were signed on ${status.signed.at}; ` +
          `recorded as audit record ${record.seq} and signed as the new head`,
      );
    }, { acceptHead: true });
  },
};
