import { CofferError } from "../../errors.ts";
import { exportBundle } from "../../sharing/sharing.ts";
import { createPrivateFile } from "../../core/fs-secure.ts";
import type { Command } from "../command.ts";
import { parseExpires } from "../io.ts";
import { printJson, withStore } from "../open.ts";

export const exportCmd: Command = {
  name: "export",
  summary: "send a member the secrets they are granted, as a signed bundle only they can open",
  usage: "NAME [SECRET…] [--out FILE] [--expires 7d|never] [--json]",
  details: [
    "The bundle is signed with your key and age-encrypted to the member, ASCII-armored: it can go by",
    "mail or chat. Without SECRETs it holds every current secret the member's grants match; listed",
    "SECRETs must each be granted. Every export is recorded for `coffer revoke`. Default lifetime: 7 days.",
  ].join("\n"),
  examples: ["coffer export bob --out bob.coffer", "coffer export ci-runner ci/deploy-token --expires 1d > token.coffer"],
  flags: {
    out: { type: "string", arg: "FILE", help: "write the bundle to FILE (0600; refuses to overwrite) instead of stdout" },
    expires: { type: "string", arg: "DUR", help: "lifetime: 7d (default), 12h, … or never" },
    json: { type: "boolean", help: "print {id, member, secrets, expires} as JSON (and the bundle, without --out)" },
  },
  async run(ctx) {
    const [member, ...names] = ctx.args;
    if (member === undefined) throw new CofferError("E_USAGE", "usage: coffer export NAME [SECRET…]");
    const expires = ctx.flags.expires;
    const expiresInSeconds = typeof expires === "string" ? parseExpires(expires) : undefined;
    const result = await withStore(ctx, (store, identity) =>
      exportBundle(store, identity, member, names, expiresInSeconds === undefined ? {} : { expiresInSeconds }),
    );
    const out = ctx.flags.out;
    if (typeof out === "string") createPrivateFile(out, result.bundle);
    const summary = { id: result.id, member: result.member, secrets: result.secrets, expires: result.expires };
    if (ctx.flags.json === true) return printJson(ctx, typeof out === "string" ? summary : { ...summary, bundle: result.bundle });
    if (typeof out !== "string") ctx.out(result.bundle);
    ctx.say(
      `exported ${result.secrets.length} secret${result.secrets.length === 1 ? "" : "s"} to ${member}` +
        `${typeof out === "string" ? ` in ${out}` : ""} (bundle ${result.id}, ${result.expires === null ? "never expires" : `expires ${result.expires}`})`,
    );
  },
};
