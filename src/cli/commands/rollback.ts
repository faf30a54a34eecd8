import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { parseWhole } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";

export const rollback: Command = {
  name: "rollback",
  usage: "NAME --to N [--json] [--server URL]",
  details: ["Also restores a secret removed with `coffer rm` (but not a purged one).", "", REMOTE_HELP].join("\n"),
  examples: ["coffer rollback db/prod/password --to 3", "coffer rollback app/api-key --to 2 --server https://coffer.example.com"],
  completes: "secret",
  flags: {
    to: { type: "string", arg: "N", help: "the version whose value to restore" },
    json: { type: "boolean", help: "print {name, version} as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "rollback NAME --to N");
    if (typeof ctx.flags.to !== "string") throw new CofferError("E_USAGE", "missing --to N; usage: coffer rollback NAME --to N");
    const to = parseWhole(ctx.flags.to, "--to", 1);
    const client = await remoteClient(ctx);
    const result = client !== undefined ? await client.rollbackSecret(name, to) : await withStore(ctx, (s) => s.rollback(name, to));
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(`rolled back ${name}: v${result.version} now holds the value of v${to}`);
  },
};
