import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { remoteList } from "../remote-secrets.ts";

export const list: Command = {
  name: "list",
  usage: "[PREFIX] [--deleted] [--json] [--server URL]",
  details: [
    REMOTE_HELP,
    "On a server it lists the secrets you may list (--json: name, version, description, updatedAt,",
    "updatedBy); --deleted is for the local store only.",
  ].join("\n"),
  examples: ["coffer list", "coffer list db/", "coffer list --json | jq -r '.[].name'", "coffer list app/ --server https://coffer.example.com"],
  flags: {
    deleted: { type: "boolean", help: "also list removed secrets (restorable with rollback)" },
    json: { type: "boolean", help: "print the list as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    if (ctx.args.length > 1) throw new CofferError("E_USAGE", "usage: coffer list [PREFIX]");
    const client = remoteClient(ctx, { deleted: "a server does not list removed secrets; `coffer history NAME` shows a removed one's versions" });
    const prefix = ctx.args[0] ?? "";
    const { rows: items, json } = client !== undefined
      ? await remoteList(client, prefix)
      : await withStore(ctx, (s) => {
        const rows = s.list(prefix, { deleted: ctx.flags.deleted === true });
        return { rows, json: rows };
      });
    if (ctx.flags.json === true) return printJson(ctx, json);
    if (items.length === 0) return ctx.say(ctx.args[0] === undefined ? "no secrets yet; `coffer set NAME` adds one" : `no secrets under "${ctx.args[0]}"`);
    const rows = items.map((i) => [
      i.name + (i.deletedAt !== null ? " (removed)" : "") + (i.rotationDue ? " (rotation due)" : ""),
      String(i.version), wholeSeconds(i.updatedAt), i.updatedBy, i.description ?? "",
    ]);
    ctx.out(table(["NAME", "VERSION", "UPDATED", "BY", "DESCRIPTION"], rows));
  },
};
