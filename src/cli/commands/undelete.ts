import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { oneArg, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { parseVersionList, printVersionChange } from "../versions.ts";

export const undelete: Command = {
  name: "undelete",
  usage: "NAME --version N[,M…] [--json] [--server URL]",
  details: [
    "Brings back versions deleted with `coffer rm NAME --version N`: reads of them work again (and a",
    "plain `get` when the current version is among them). A version destroyed with --purge is gone",
    "for good: undeleting it changes nothing (no error; it is reported as destroyed). Versions that",
    "were never deleted are left as they are.",
    "",
    REMOTE_HELP,
    "On a server it needs the delete capability on the name.",
  ].join("\n"),
  examples: [
    "coffer undelete db/prod/password --version 3",
    "coffer undelete app/api-key --version 1,2 --server https://coffer.example.com",
  ],
  completes: "secret",
  flags: {
    version: { type: "string", arg: "N[,M…]", help: "the versions to bring back (comma-separated)" },
    json: { type: "boolean", help: "print {name, versions: [{version, deletedAt, destroyed}]} as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "undelete NAME --version N");
    if (typeof ctx.flags.version !== "string") throw new CofferError("E_USAGE", "missing --version N; usage: coffer undelete NAME --version N[,M…]");
    const versions = parseVersionList(ctx.flags.version);
    const client = await remoteClient(ctx);
    const result = client !== undefined ? await client.undeleteVersions(name, versions) : await withStore(ctx, (s) => s.undeleteVersions(name, versions));
    printVersionChange(ctx, "undelete", result);
  },
};
