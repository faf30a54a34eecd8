import { CofferError } from "../../errors.ts";
import { addTrusted, readTrustList, removeTrusted, trustListPath } from "../../config/trust.ts";
import type { Command } from "../command.ts";
import { printJson, stringFlag } from "../open.ts";

export const trust: Command = {
  name: "trust",
  usage: "DIR | --list | --remove DIR [--json]",
  details: [
    "coffer obeys a project file only when you or root own it and its directory and others cannot",
    "write them; as root, that refuses a user's checkout too. `coffer trust DIR` records DIR (its real",
    "path; a file stands for its directory) in your trust list, ~/.config/coffer/trusted (or",
    "$XDG_CONFIG_HOME/coffer/trusted, $COFFER_HOME/trusted), and its .coffer.yml is then obeyed",
    "whoever owns it. Trust only a directory whose file you have read.",
  ].join("\n"),
  examples: ["coffer trust /srv/checkout", "sudo coffer trust \"$PWD\"", "coffer trust --list", "coffer trust --remove /srv/checkout"],
  flags: {
    list: { type: "boolean", help: "print the trusted directories, one a line" },
    remove: { type: "string", arg: "DIR", help: "take DIR off the trust list" },
    json: { type: "boolean", help: "print the result as JSON" },
  },
  async run(ctx) {
    const options = { env: ctx.env };
    const list = ctx.flags.list === true;
    const remove = stringFlag(ctx, "remove");
    if ((list ? 1 : 0) + (remove !== undefined ? 1 : 0) + (ctx.args.length > 0 ? 1 : 0) !== 1 || ctx.args.length > 1) {
      throw new CofferError("E_USAGE", "give one of: DIR, --list, --remove DIR; see `coffer trust --help`");
    }
    if (list) {
      const dirs = readTrustList(options);
      if (ctx.flags.json === true) return printJson(ctx, { file: trustListPath(ctx.env), trusted: dirs });
      ctx.out(dirs.map((d) => `${d}\n`).join(""));
      if (dirs.length === 0) ctx.say("no trusted directories");
      return;
    }
    if (remove !== undefined) {
      const entry = removeTrusted(remove, options);
      if (entry === undefined) throw new CofferError("E_NOT_FOUND", `${remove} is not on the trust list; \`coffer trust --list\` shows it`);
      if (ctx.flags.json === true) printJson(ctx, { removed: entry });
      ctx.say(`no longer trusted: ${entry}`);
      return;
    }
    const { dir, added } = addTrusted(ctx.args[0]!, options);
    if (ctx.flags.json === true) printJson(ctx, { trusted: dir, added });
    ctx.say(added ? `trusted: ${dir} (its .coffer.yml is obeyed whoever owns it)` : `already trusted: ${dir}`);
  },
};
