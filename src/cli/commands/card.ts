import { CofferError } from "../../errors.ts";
import { cardFingerprint } from "../../identity/card.ts";
import { cardOf } from "../../identity/identity.ts";
import type { Command } from "../command.ts";
import { loadCliIdentity, printJson } from "../open.ts";

export const card: Command = {
  name: "card",
  usage: "[--fingerprint] [--json]",
  details: [
    "The card is one line: coffer-card:v1:<name>:<age recipient>:<Ed25519 key>. It holds no secret.",
    "Whoever adds you with `coffer users add` should check its fingerprint with you by another channel.",
  ].join("\n"),
  examples: ["coffer card", "coffer card --fingerprint", "coffer card | mail -s 'my coffer card' lead@example.com"],
  flags: {
    fingerprint: { type: "boolean", help: "print the card's short fingerprint on a second line" },
    json: { type: "boolean", help: "print {name, card, fingerprint, recipient} as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "card takes no arguments");
    const identity = await loadCliIdentity(ctx);
    const line = cardOf(identity);
    const fingerprint = cardFingerprint(line);
    if (ctx.flags.json === true) return printJson(ctx, { name: identity.name, card: line, fingerprint, recipient: identity.recipient });
    ctx.out(`${line}\n`);
    if (ctx.flags.fingerprint === true) ctx.out(`${fingerprint}\n`);
  },
};
