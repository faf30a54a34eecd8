import { CofferError, isCofferError } from "../../errors.ts";
import type { CofferClient } from "../../client/client.ts";
import type { Command } from "../command.ts";
import { confirm } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { parseVersionList, printVersionChange } from "../versions.ts";

export const rm: Command = {
  name: "rm",
  usage: "NAME [--version N[,M…]] [--purge [--yes]] [--json] [--server URL]",
  details: [
    "Without --purge the secret is hidden from get and list; `coffer rollback NAME --to N` restores it.",
    "--purge destroys every version for good (the freed database pages are zeroed); it asks first",
    "unless --yes is given.",
    "",
    "With --version only those versions are touched: without --purge they are deleted (reads of them",
    "are refused, their values stay sealed; `coffer undelete NAME --version N` brings them back), with",
    "--purge they are destroyed (their values are gone for good; the versions stay in `coffer history`",
    "marked destroyed). Deleting the current version makes a plain `get` refuse until it is undeleted",
    "or a new version is written. A version already deleted or destroyed is left as it is.",
    "",
    REMOTE_HELP,
    "On a server --purge needs the purge capability on the name (delete does not grant it); with",
    "--version, deleting and destroying versions need the delete capability. A server on PostgreSQL",
    "keeps the destroyed rows on disk until its next VACUUM (docs/security.md).",
  ].join("\n"),
  examples: [
    "coffer rm app/old-token",
    "coffer rm app/leaked-token --purge --yes",
    "coffer rm app/old-token --server https://coffer.example.com",
    "coffer rm app/leaked-token --purge --server https://coffer.example.com",
    "coffer rm db/prod/password --version 3",
    "coffer rm db/prod/password --version 1,2 --purge --yes",
    "coffer rm app/api-key --version 4 --server https://coffer.example.com",
  ],
  completes: "secret",
  flags: {
    version: { type: "string", arg: "N[,M…]", help: "only these versions: delete them (with --purge, destroy them)" },
    purge: { type: "boolean", help: "destroy every version (with --version, those versions)" },
    yes: { type: "boolean", short: "y", help: "with --purge: do not ask" },
    json: { type: "boolean", help: "print the result as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "rm NAME [--purge]");
    if (ctx.flags.yes === true && ctx.flags.purge !== true) throw new CofferError("E_USAGE", "--yes goes with --purge");
    const client = await remoteClient(ctx);
    if (typeof ctx.flags.version === "string") {
      const versions = parseVersionList(ctx.flags.version);
      if (ctx.flags.purge !== true) {
        const result = client !== undefined ? await client.deleteVersions(name, versions) : await withStore(ctx, (s) => s.deleteVersions(name, versions));
        return printVersionChange(ctx, "delete", result);
      }
      if (ctx.flags.yes !== true && !(await confirm(`destroy version${versions.length === 1 ? "" : "s"} ${versions.join(", ")} of ${name}? their values cannot be recovered`, "--yes"))) {
        throw new CofferError("E_CANCELLED", "destroy cancelled; nothing was changed");
      }
      const result = client !== undefined ? await client.destroyVersions(name, versions) : await withStore(ctx, (s) => s.destroyVersions(name, versions));
      return printVersionChange(ctx, "destroy", result);
    }
    const removed = (r: { name: string; version: number }): void => {
      if (ctx.flags.json === true) return printJson(ctx, { ...r, removed: true });
      ctx.say(`removed ${name} (v${r.version} and its history kept; \`coffer rollback ${name} --to ${r.version}\` restores it)`);
    };
    const purged = (r: { name: string; versions: number }): void => {
      if (ctx.flags.json === true) return printJson(ctx, { ...r, purged: true });
      ctx.say(`purged ${name}: ${r.versions} versions destroyed`);
    };
    if (client !== undefined) {
      if (ctx.flags.purge !== true) return removed(await client.removeSecret(name));
      if (ctx.flags.yes !== true) await askToPurge(name, await serverVersions(client, name));
      return purged(await client.purgeSecret(name));
    }
    await withStore(ctx, async (s) => {
      if (ctx.flags.purge !== true) return removed(s.remove(name));
      if (ctx.flags.yes !== true) await askToPurge(name, s.history(name).length);
      purged(s.purge(name));
    });
  },
};

// Asks on the terminal before a purge (how many versions, when known).
async function askToPurge(name: string, versions: number | undefined): Promise<void> {
  const what = versions === undefined ? `every version of ${name}` : `all ${versions} versions of ${name}`;
  if (!(await confirm(`destroy ${what}? this cannot be undone`, "--yes"))) {
    throw new CofferError("E_CANCELLED", "purge cancelled; nothing was changed");
  }
}

// How many versions the server holds of `name`, for the question (E_NOT_FOUND as the local
// history's); undefined when the caller may purge but not list them.
async function serverVersions(client: CofferClient, name: string): Promise<number | undefined> {
  try {
    return (await client.versions(name)).versions.length;
  } catch (err) {
    if (isCofferError(err, "E_DENIED")) return undefined;
    throw err;
  }
}
