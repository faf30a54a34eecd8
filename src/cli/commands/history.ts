import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { remoteHistory } from "../remote-secrets.ts";

export const history: Command = {
  name: "history",
  usage: "NAME [--json] [--server URL]",
  details: [
    "A version deleted with `coffer rm NAME --version N` is marked deleted (since when); one destroyed",
    "with --purge is marked destroyed: its row stays, its value is gone.",
    "",
    REMOTE_HELP,
  ].join("\n"),
  examples: ["coffer history db/prod/password", "coffer get db/prod/password --version 2", "coffer history app/api-key --server https://coffer.example.com"],
  completes: "secret",
  flags: { json: { type: "boolean", help: "print the versions as JSON" }, server: REMOTE_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "history NAME");
    const client = await remoteClient(ctx);
    const versions = client !== undefined ? await remoteHistory(client, name) : await withStore(ctx, (s) => s.history(name));
    if (ctx.flags.json === true) return printJson(ctx, versions);
    // A version deleted or destroyed on its own says so (and since when it was deleted).
    const state = (v: (typeof versions)[number]): string =>
      [v.current ? "current" : "", v.destroyed ? "destroyed" : v.deletedAt !== null ? `deleted ${wholeSeconds(v.deletedAt)}` : ""].filter((x) => x !== "").join(", ");
    const rows = versions.map((v) => [String(v.version), wholeSeconds(v.createdAt), v.createdBy, state(v)]);
    ctx.out(table(["VERSION", "CREATED", "BY", ""], rows));
  },
};
