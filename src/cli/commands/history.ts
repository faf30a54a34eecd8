import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { remoteHistory } from "../remote-secrets.ts";

export const history: Command = {
  name: "history",
  usage: "NAME [--json] [--server URL]",
  details: REMOTE_HELP,
  examples: ["coffer history db/prod/password", "coffer get db/prod/password --version 2", "coffer history app/api-key --server https://coffer.example.com"],
  flags: { json: { type: "boolean", help: "print the versions as JSON" }, server: REMOTE_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "history NAME");
    const client = remoteClient(ctx);
    const versions = client !== undefined ? await remoteHistory(client, name) : await withStore(ctx, (s) => s.history(name));
    if (ctx.flags.json === true) return printJson(ctx, versions);
    const rows = versions.map((v) => [String(v.version), wholeSeconds(v.createdAt), v.createdBy, v.current ? "current" : ""]);
    ctx.out(table(["VERSION", "CREATED", "BY", ""], rows));
  },
};
