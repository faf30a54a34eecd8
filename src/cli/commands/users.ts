import { CofferError } from "../../errors.ts";
import { addMember, exposure, getMember, grantedNames, listMembers } from "../../sharing/members.ts";
import type { Command } from "../command.ts";
import { printable, table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";

export const usersAdd: Command = {
  name: "users add",
  usage: "NAME --card CARD [--json]",
  details: "Check the card's fingerprint with its owner by another channel first. A new member sees nothing until granted.",
  examples: ["coffer users add bob --card 'coffer-card:v1:bob:age1…:…'", "coffer grant bob 'app/**'"],
  flags: {
    card: { type: "string", arg: "CARD", help: "the member's card line (from `coffer card` on their machine)" },
    json: { type: "boolean", help: "print the member as JSON" },
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "users add NAME --card CARD");
    if (typeof ctx.flags.card !== "string") throw new CofferError("E_USAGE", "missing --card CARD; usage: coffer users add NAME --card CARD");
    const cardLine = ctx.flags.card;
    const member = await withStore(ctx, (s) => addMember(s, name, cardLine));
    if (ctx.flags.json === true) return printJson(ctx, member);
    ctx.say(`added ${member.name} (fingerprint ${member.fingerprint}); \`coffer grant ${member.name} PATTERN\` to share`);
  },
};

export const usersList: Command = {
  name: "users list",
  usage: "[--json]",
  examples: ["coffer users list", "coffer users list --json"],
  flags: { json: { type: "boolean", help: "print the members as JSON" } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "users list takes no arguments");
    const members = await withStore(ctx, (s) => listMembers(s));
    if (ctx.flags.json === true) return printJson(ctx, members);
    if (members.length === 0) return ctx.say("no members yet; `coffer users add NAME --card CARD` adds one");
    const rows = members.map((m) => [m.name, m.fingerprint, m.revokedAt === null ? "active" : `revoked ${wholeSeconds(m.revokedAt)}`, m.grants.join(" ")]);
    ctx.out(table(["NAME", "FINGERPRINT", "STATUS", "GRANTS"], rows));
  },
};

export const usersShow: Command = {
  name: "users show",
  summary: "show a member: card, grants, the secrets they match, and what they received that is still current",
  usage: "NAME [--json]",
  details:
    "`matches` lists the current secrets the member's grants match (what `coffer export` would send now). " +
    "`exposed` lists the secret versions exported to the member that have not been rotated since.",
  examples: ["coffer users show bob"],
  flags: { json: { type: "boolean", help: "print the member as JSON" } },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "users show NAME");
    const { member, matches, exposed } = await withStore(ctx, (s) => ({
      member: getMember(s, name),
      matches: grantedNames(s, name),
      exposed: exposure(s, name),
    }));
    if (ctx.flags.json === true) return printJson(ctx, { ...member, matches, exposed });
    const lines = [
      `name         ${member.name}`,
      `card         ${member.card}`,
      `fingerprint  ${member.fingerprint}`,
      `status       ${member.revokedAt === null ? "active" : `revoked ${member.revokedAt}`}`,
      `added        ${member.addedAt} by ${member.addedBy}`,
      `grants       ${member.grants.length === 0 ? "(none)" : member.grants.join(" ")}`,
      `matches      ${matches.length === 0 ? "(nothing)" : matches.join(" ")}`,
      `exposed      ${exposed.length === 0 ? "(nothing current)" : exposed.map((e) => `${e.name}@v${e.version}`).join(" ")}`,
    ];
    ctx.out(`${lines.map((l) => printable(l)).join("\n")}\n`);
  },
};
