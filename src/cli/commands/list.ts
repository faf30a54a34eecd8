import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { printJson, withStore } from "../open.ts";

export const list: Command = {
  name: "list",
  usage: "[PREFIX] [--deleted] [--json]",
  examples: ["coffer list", "coffer list db/", "coffer list --json | jq -r '.[].name'"],
  flags: {
    deleted: { type: "boolean", help: "also list removed secrets (restorable with rollback)" },
    json: { type: "boolean", help: "print the list as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 1) throw new CofferError("E_USAGE", "usage: coffer list [PREFIX]");
    const items = await withStore(ctx, (s) => s.list(ctx.args[0] ?? "", { deleted: ctx.flags.deleted === true }));
    if (ctx.flags.json === true) return printJson(ctx, items);
    if (items.length === 0) return ctx.say(ctx.args[0] === undefined ? "no secrets yet; `coffer set NAME` adds one" : `no secrets under "${ctx.args[0]}"`);
    const rows = items.map((i) => [
      i.name + (i.deletedAt !== null ? " (removed)" : "") + (i.rotationDue ? " (rotation due)" : ""),
      String(i.version), wholeSeconds(i.updatedAt), i.updatedBy, i.description ?? "",
    ]);
    ctx.out(table(["NAME", "VERSION", "UPDATED", "BY", "DESCRIPTION"], rows));
  },
};
