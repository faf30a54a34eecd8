import { CofferError } from "../../errors.ts";
import { MAX_BUNDLE_BYTES } from "../../sharing/bundle.ts";
import { importBundle } from "../../sharing/sharing.ts";
import { importDotenv } from "../../sharing/import-dotenv.ts";
import type { Command, Context } from "../command.ts";
import { confirm, printable, readAllBounded, readFileBounded } from "../io.ts";
import { printJson, stringFlag, withStore } from "../open.ts";

/** The largest .env file `import --dotenv` reads: 1 MiB, as for project files. */
const MAX_DOTENV_BYTES = 1024 * 1024;

export const importCmd: Command = {
  name: "import",
  usage: "FILE [--trust FINGERPRINT] [--force] [--json] | --dotenv FILE [--prefix P]",
  details: [
    "A bundle is checked in order: addressed to you and untampered, signature, trusted sender,",
    "made for you, not expired, and no version older than the one held (no silent rollback).",
    "Any failure writes nothing. A sender not yet trusted is refused unless you confirm their",
    "fingerprint on the terminal or pass --trust; the sender is then remembered.",
    "--dotenv parses FILE exactly as the dotenv package does and stores each variable as PREFIX+NAME.",
    "FILE - reads standard input. A bundle may be at most 64 MiB, a .env file at most 1 MiB.",
  ].join("\n"),
  examples: [
    "coffer import bob.coffer",
    "coffer import alice.coffer --trust JPKBLZOOCWW2ZE77",
    "coffer import --dotenv .env --prefix app/",
  ],
  flags: {
    trust: { type: "string", arg: "FP", help: "trust the sender whose card has this fingerprint" },
    force: { type: "boolean", help: "accept older versions and overwrite secrets that came from elsewhere" },
    dotenv: { type: "string", arg: "FILE", help: "import a .env file instead of a bundle" },
    prefix: { type: "string", arg: "P", help: "with --dotenv: prefix for the secret names, ending in /, e.g. app/" },
    json: { type: "boolean", help: "print what was imported as JSON" },
  },
  async run(ctx) {
    if (typeof ctx.flags.dotenv === "string") return runDotenv(ctx, ctx.flags.dotenv);
    if (ctx.flags.prefix !== undefined) throw new CofferError("E_USAGE", "--prefix goes with --dotenv");
    if (ctx.args.length !== 1) throw new CofferError("E_USAGE", "usage: coffer import FILE (or --dotenv FILE)");
    const file = await readInput(ctx, ctx.args[0]!, MAX_BUNDLE_BYTES, "64 MiB");
    const trust = stringFlag(ctx, "trust");
    const result = await withStore(ctx, (store, identity) =>
      importBundle(store, identity, file, {
        ...(trust !== undefined && { trust }),
        force: ctx.flags.force === true,
        confirmTrust: (sender) =>
          ctx.io.stdin.isTTY === true
            ? confirm(`bundle from "${printable(sender.name)}", fingerprint ${sender.fingerprint}. Does the sender confirm that fingerprint?`, "--trust FINGERPRINT")
            : Promise.resolve(false),
      }),
    );
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(
      `imported ${result.imported.length} secret${result.imported.length === 1 ? "" : "s"} from ${printable(result.from)} (${result.fingerprint})` +
        (result.unchanged.length > 0 ? `; ${result.unchanged.length} already up to date` : ""),
    );
    for (const i of result.imported) ctx.say(`  ${printable(i.name)} v${i.version}`);
  },
};

async function runDotenv(ctx: Context, path: string): Promise<void> {
  if (ctx.args.length > 0 || ctx.flags.trust !== undefined || ctx.flags.force !== undefined) {
    throw new CofferError("E_USAGE", "usage: coffer import --dotenv FILE [--prefix P]");
  }
  const text = await readInput(ctx, path, MAX_DOTENV_BYTES, "1 MiB");
  const prefix = stringFlag(ctx, "prefix") ?? "";
  if (prefix !== "" && !prefix.endsWith("/")) {
    throw new CofferError("E_USAGE", `--prefix must end with / (else the names run together, as ${printable(prefix)}STRIPE_KEY): use --prefix ${printable(prefix)}/`);
  }
  const result = await withStore(ctx, (s) => importDotenv(s, text, prefix));
  if (ctx.flags.json === true) return printJson(ctx, result);
  ctx.say(`imported ${result.written.length} variable${result.written.length === 1 ? "" : "s"} from ${path}`);
}

function readInput(ctx: Context, path: string, max: number, human: string): Promise<Buffer> {
  return path === "-" ? readAllBounded(ctx.io.stdin, max, `stdin (at most ${human})`) : readFileBounded(path, max, human);
}
