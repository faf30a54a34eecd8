import { readFileSync } from "node:fs";
import { CofferError } from "../../errors.ts";
import { readPassphraseFile } from "../../identity/identity.ts";
import { initCoffer } from "../../store/init.ts";
import type { Command } from "../command.ts";
import { promptTwice } from "../io.ts";
import { printJson } from "../open.ts";

export const init: Command = {
  name: "init",
  usage: "[--name NAME] [--identity FILE] [--passphrase] [--json]",
  details: [
    "The identity is a standard age identity file: `age -d -i` and SOPS can use it as it is.",
    "An identity that already exists is reused, so `init --store F` makes a second store.",
    "With --passphrase the identity file is age-encrypted with scrypt; the passphrase is asked",
    "on the terminal (no echo) or read from the file named by COFFER_PASSPHRASE_FILE.",
  ].join("\n"),
  examples: [
    "coffer init",
    "coffer init --name alice --passphrase",
    "coffer init --identity ~/.config/sops/age/keys.txt   # adopt an existing age key",
  ],
  flags: {
    name: { type: "string", arg: "NAME", help: "your name on cards and in the audit log (default: login name)" },
    identity: { type: "string", arg: "FILE", help: "adopt the key of an existing age identity file" },
    passphrase: { type: "boolean", help: "protect the identity file with a passphrase" },
    json: { type: "boolean", help: "print the result as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "init takes no arguments; see `coffer init --help`");
    let adopt: string | undefined;
    if (typeof ctx.flags.identity === "string") {
      try {
        adopt = readFileSync(ctx.flags.identity, "utf8");
      } catch (err) {
        throw new CofferError("E_IDENTITY", `cannot read ${ctx.flags.identity}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
      }
    }
    let newPassphrase: string | undefined;
    if (ctx.flags.passphrase === true) {
      const file = ctx.env.COFFER_PASSPHRASE_FILE;
      newPassphrase = file !== undefined && file !== "" ? readPassphraseFile(file) : await promptTwice("new passphrase");
      ctx.say("encrypting the identity (scrypt, a few seconds)…");
    }
    const result = await initCoffer({
      env: ctx.env,
      ...(ctx.store !== undefined && { store: ctx.store }),
      ...(typeof ctx.flags.name === "string" && { name: ctx.flags.name }),
      ...(adopt !== undefined && { adopt }),
      ...(newPassphrase !== undefined && { newPassphrase }),
    });
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(`${result.createdIdentity ? "created identity" : "using identity"} ${result.identityPath}`);
    ctx.say(`created store    ${result.storePath}`);
    ctx.say(`public key       ${result.recipient}`);
    ctx.say(`your card        ${result.card}`);
    ctx.say(`fingerprint      ${result.fingerprint}`);
  },
};
