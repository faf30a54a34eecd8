import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { remoteList } from "../remote-secrets.ts";

export const list: Command = {
  name: "list",
  usage: "[PREFIX] [--deleted] [--due] [--json] [--server URL]",
  details: [
    REMOTE_HELP,
    "On a server it lists the secrets you may list (--json: name, version, description, updatedAt,",
    "updatedBy); --deleted is for the local store only.",
    "",
    "--due lists only the secrets whose rotation is due: locally, those set with --rotate-every whose",
    "period has passed since their last write (`coffer rotate NAME` rotates one); on a server, those",
    "whose rotation policy's time has passed (`coffer rotation list --due`: the same, with state).",
  ].join("\n"),
  examples: [
    "coffer list", "coffer list db/", "coffer list --json | jq -r '.[].name'", "coffer list --due",
    "coffer list app/ --server https://coffer.example.com", "coffer list --due --server https://coffer.example.com --json",
  ],
  completes: "secret",
  flags: {
    deleted: { type: "boolean", help: "also list removed secrets (restorable with rollback)" },
    due: { type: "boolean", help: "only secrets whose rotation is due" },
    json: { type: "boolean", help: "print the list as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    if (ctx.args.length > 1) throw new CofferError("E_USAGE", "usage: coffer list [PREFIX]");
    const client = await remoteClient(ctx, { deleted: "a server does not list removed secrets; `coffer history NAME` shows a removed one's versions" });
    const prefix = ctx.args[0] ?? "";
    const due = ctx.flags.due === true;
    if (client !== undefined && due) {
      const { RotationClient } = await import("../../client/rotation.ts");
      const { printRotations } = await import("./rotation.ts");
      const rows = (await new RotationClient(client).listPolicies({ due: true })).filter((r) => r.name.startsWith(prefix));
      return printRotations(ctx, rows, "no secret's rotation is due");
    }
    const { rows: items, json } = client !== undefined
      ? await remoteList(client, prefix)
      : await withStore(ctx, (s) => {
        const rows = s.list(prefix, { deleted: ctx.flags.deleted === true, due });
        return { rows, json: rows };
      });
    if (ctx.flags.json === true) return printJson(ctx, json);
    if (items.length === 0) {
      if (due) return ctx.say(ctx.args[0] === undefined ? "no secret's rotation is due" : `no secret's rotation is due under "${ctx.args[0]}"`);
      return ctx.say(ctx.args[0] === undefined ? "no secrets yet; `coffer set NAME` adds one" : `no secrets under "${ctx.args[0]}"`);
    }
    const rows = items.map((i) => [
      i.name + (i.deletedAt !== null ? " (removed)" : "") + (i.rotationDue ? " (rotation due)" : ""),
      String(i.version), wholeSeconds(i.updatedAt), i.updatedBy, i.description ?? "",
    ]);
    ctx.out(table(["NAME", "VERSION", "UPDATED", "BY", "DESCRIPTION"], rows));
  },
};
