import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";

export const history: Command = {
  name: "history",
  usage: "NAME [--json]",
  examples: ["coffer history db/prod/password", "coffer get db/prod/password --version 2"],
  flags: { json: { type: "boolean", help: "print the versions as JSON" } },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "history NAME");
    const versions = await withStore(ctx, (s) => s.history(name));
    if (ctx.flags.json === true) return printJson(ctx, versions);
    const rows = versions.map((v) => [String(v.version), wholeSeconds(v.createdAt), v.createdBy, v.current ? "current" : ""]);
    ctx.out(table(["VERSION", "CREATED", "BY", ""], rows));
  },
};
