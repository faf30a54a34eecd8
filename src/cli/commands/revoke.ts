import { revoke as revokeMember } from "../../sharing/members.ts";
import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";

export const revoke: Command = {
  name: "revoke",
  usage: "NAME [--json]",
  details: [
    "Marks the member revoked (no further exports) and removes their grants. Prints every secret",
    "version exported to them that is still current: rotate each (`coffer set`), and it drops off",
    "the list (`coffer users show NAME`). Values are never printed.",
  ].join("\n"),
  examples: ["coffer revoke bob", "coffer revoke bob --json | jq -r '.toRotate[].name'"],
  flags: { json: { type: "boolean", help: "print {member, revokedAt, toRotate[]} as JSON" } },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "revoke NAME");
    const result = await withStore(ctx, (s) => revokeMember(s, name));
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(`revoked ${name}`);
    if (result.toRotate.length === 0) return ctx.say("nothing they received is still current");
    ctx.say(`rotate these ${result.toRotate.length} secrets, which ${name} has seen:`);
    ctx.out(table(["NAME", "VERSION", "EXPORTED"], result.toRotate.map((e) => [e.name, String(e.version), wholeSeconds(e.exportedAt)])));
  },
};
