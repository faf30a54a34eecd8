import { CofferError } from "../../errors.ts";
import { grant as grantPatterns, ungrant as ungrantPatterns } from "../../sharing/members.ts";
import type { Command, Context } from "../command.ts";
import { printJson, withStore } from "../open.ts";

function memberAndPatterns(ctx: Context, usage: string): [string, string[]] {
  const [member, ...patterns] = ctx.args;
  if (member === undefined || patterns.length === 0) throw new CofferError("E_USAGE", `usage: coffer ${usage}`);
  return [member, patterns];
}

export const grant: Command = {
  name: "grant",
  usage: "NAME PATTERN… [--json]",
  details:
    "Patterns are the server policies' patterns: `*` is one path segment (inside a segment it stays within it), `**` zero or " +
    "more segments (a trailing /** at least one): app/*, app/**, a/**/b (a/b too), db/prod/password. " +
    "`coffer users show NAME` lists the secrets a member's grants match.",
  examples: ["coffer grant bob 'app/*'", "coffer grant ci-runner 'ci/**' db/test/password"],
  flags: { json: { type: "boolean", help: "print the newly granted patterns as JSON" } },
  async run(ctx) {
    const [member, patterns] = memberAndPatterns(ctx, "grant NAME PATTERN…");
    const added = await withStore(ctx, (s) => grantPatterns(s, member, patterns));
    if (ctx.flags.json === true) return printJson(ctx, { member, granted: added });
    ctx.say(added.length === 0 ? `${member} had every pattern already` : `granted ${member}: ${added.join(" ")}`);
  },
};

export const ungrant: Command = {
  name: "ungrant",
  usage: "NAME PATTERN… [--json]",
  details: "What was already exported stays exported: `coffer users show NAME` lists it; rotate it.",
  examples: ["coffer ungrant bob 'app/*'"],
  flags: { json: { type: "boolean", help: "print the removed patterns as JSON" } },
  async run(ctx) {
    const [member, patterns] = memberAndPatterns(ctx, "ungrant NAME PATTERN…");
    const removed = await withStore(ctx, (s) => ungrantPatterns(s, member, patterns));
    if (ctx.flags.json === true) return printJson(ctx, { member, ungranted: removed });
    ctx.say(removed.length === 0 ? `${member} had none of those patterns` : `ungranted ${member}: ${removed.join(" ")}`);
  },
};
