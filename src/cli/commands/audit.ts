import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { parseSince, table, wholeSeconds } from "../io.ts";
import { printJson, stringFlag, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { remoteAudit, remoteVerify } from "../remote-secrets.ts";

export const audit: Command = {
  name: "audit",
  usage: "[--since WHEN] [--json] [--server URL [--subject S] [--action A] [--prefix P]]",
  details: [
    "Every change, every CLI read, and later every export, import and delivery; never a value.",
    "",
    REMOTE_HELP,
    "There it reads the server's log (needs read on sys:audit), which --subject, --action and",
    "--prefix filter: one subject (token:…), one action (secret.read, token.create, …), names under a prefix.",
  ].join("\n"),
  examples: [
    "coffer audit", "coffer audit --since 7d", "coffer audit --since 2026-11-01 --json",
    "coffer audit --server https://coffer.example.com --action secret.read --prefix db/",
  ],
  flags: {
    since: { type: "string", arg: "WHEN", help: "only records since an ISO date/time or a duration back (7d, 12h)" },
    json: { type: "boolean", help: "print the records as JSON" },
    server: REMOTE_FLAG,
    subject: { type: "string", arg: "S", help: "with a server: only this subject's records" },
    action: { type: "string", arg: "A", help: "with a server: only this action's records" },
    prefix: { type: "string", arg: "P", help: "with a server: only records of names starting with P" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unknown argument "${ctx.args[0]}"; did you mean \`coffer audit verify\`?`);
    const since = typeof ctx.flags.since === "string" ? parseSince(ctx.flags.since) : undefined;
    const client = await remoteClient(ctx);
    const filters: { subject?: string; action?: string; prefix?: string } = {};
    for (const k of ["subject", "action", "prefix"] as const) {
      const v = stringFlag(ctx, k);
      if (v !== undefined) filters[k] = v;
    }
    if (client === undefined && Object.keys(filters).length > 0) {
      throw new CofferError("E_USAGE", "--subject, --action and --prefix filter a server's audit log: give --server URL (or set COFFER_SERVER)");
    }
    const records = client !== undefined
      ? await remoteAudit(client, since, filters)
      : await withStore(ctx, (s) => s.auditLog(since === undefined ? {} : { since }));
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
  usage: "[--json] [--server URL [--full]]",
  details: [
    "Exits 0 when every record's hash matches its content and its predecessor, 6 otherwise.",
    "",
    REMOTE_HELP,
    "There the server recomputes its chain from its last verified checkpoint (--full: from the start).",
  ].join("\n"),
  examples: ["coffer audit verify", "coffer audit verify --server https://coffer.example.com --full"],
  flags: {
    json: { type: "boolean", help: "print the outcome as JSON" },
    server: REMOTE_FLAG,
    full: { type: "boolean", help: "with a server: verify the whole chain, not from the last checkpoint" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "audit verify takes no arguments");
    const client = await remoteClient(ctx);
    if (client === undefined && ctx.flags.full === true) throw new CofferError("E_USAGE", "--full goes with --server: the local store always verifies its whole chain");
    const result = client !== undefined ? await remoteVerify(client, ctx.flags.full === true) : await withStore(ctx, (s) => s.verifyAudit());
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
