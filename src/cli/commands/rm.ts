import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { confirm } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";

export const rm: Command = {
  name: "rm",
  usage: "NAME [--purge [--yes]] [--json] [--server URL]",
  details: [
    "Without --purge the secret is hidden from get and list; `coffer rollback NAME --to N` restores it.",
    "--purge destroys every version for good (the freed database pages are zeroed); it asks first",
    "unless --yes is given.",
    "",
    REMOTE_HELP,
    "--purge is for the local store only: a server keeps every version.",
  ].join("\n"),
  examples: ["coffer rm app/old-token", "coffer rm app/leaked-token --purge --yes", "coffer rm app/old-token --server https://coffer.example.com"],
  flags: {
    purge: { type: "boolean", help: "destroy every version" },
    yes: { type: "boolean", short: "y", help: "with --purge: do not ask" },
    json: { type: "boolean", help: "print the result as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "rm NAME [--purge]");
    if (ctx.flags.yes === true && ctx.flags.purge !== true) throw new CofferError("E_USAGE", "--yes goes with --purge");
    const client = remoteClient(ctx, { purge: "a server keeps every version; `coffer rm NAME` hides it" });
    const removed = (r: { name: string; version: number }): void => {
      if (ctx.flags.json === true) return printJson(ctx, { ...r, removed: true });
      ctx.say(`removed ${name} (v${r.version} and its history kept; \`coffer rollback ${name} --to ${r.version}\` restores it)`);
    };
    if (client !== undefined) return removed(await client.removeSecret(name));
    await withStore(ctx, async (s) => {
      if (ctx.flags.purge !== true) return removed(s.remove(name));
      const versions = s.history(name).length;
      if (ctx.flags.yes !== true && !(await confirm(`destroy all ${versions} versions of ${name}? this cannot be undone`, "--yes"))) {
        throw new CofferError("E_CANCELLED", "purge cancelled; nothing was changed");
      }
      const r = s.purge(name);
      if (ctx.flags.json === true) return printJson(ctx, { ...r, purged: true });
      ctx.say(`purged ${name}: ${r.versions} versions destroyed`);
    });
  },
};
