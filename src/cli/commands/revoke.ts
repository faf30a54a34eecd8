import { revoke as revokeMember, revokeAndRotate } from "../../sharing/members.ts";
import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { printRotationReport } from "./rotation.ts";

export const revoke: Command = {
  name: "revoke",
  usage: "NAME [--rotate] [--json]",
  details: [
    "Marks the member revoked (no further exports) and removes their grants. Prints every secret",
    "version exported to them that is still current: rotate each (`coffer set`), and it drops off",
    "the list (`coffer users show NAME`). Values are never printed.",
    "",
    "--rotate then rotates each of those that remembers its generator (`coffer set --generate`), a",
    "new version each, and prints two lists: the secrets rotated (name and new version) and those",
    "left to rotate by hand, with why (no generator: the value was set by hand). A new value reaches",
    "only what reads it from coffer; a target that holds a copy (a database password) needs it too.",
  ].join("\n"),
  examples: [
    "coffer revoke bob",
    "coffer revoke bob --json | jq -r '.toRotate[].name'",
    "coffer revoke bob --rotate",
    "coffer revoke bob --rotate --json | jq -r '.manual[].name'",
  ],
  flags: {
    rotate: { type: "boolean", help: "rotate what they saw that has a generator; list the rest" },
    json: { type: "boolean", help: "print {member, revokedAt, toRotate[]} as JSON; with --rotate {member, revokedAt, rotated[], manual[]}" },
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "revoke NAME");
    if (ctx.flags.rotate === true) {
      const result = await withStore(ctx, (s) => revokeAndRotate(s, name));
      if (ctx.flags.json === true) return printJson(ctx, result);
      ctx.say(`revoked ${name}`);
      if (result.rotated.length === 0 && result.manual.length === 0) return ctx.say("nothing they received is still current");
      printRotationReport(ctx, result, `which ${name} has seen`);
      return;
    }
    const result = await withStore(ctx, (s) => revokeMember(s, name));
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(`revoked ${name}`);
    if (result.toRotate.length === 0) return ctx.say("nothing they received is still current");
    ctx.say(`rotate these ${result.toRotate.length} secrets, which ${name} has seen:`);
    ctx.out(table(["NAME", "VERSION", "EXPORTED"], result.toRotate.map((e) => [e.name, String(e.version), wholeSeconds(e.exportedAt)])));
  },
};
