import { CofferError } from "../../errors.ts";
import { assertSecretName, DEFAULT_MAX_VALUE_BYTES } from "../../core/names.ts";
import type { Charset } from "../../crypto/generate.ts";
import type { Command } from "../command.ts";
import { parseDurationSeconds, parseWhole, promptTwice, readAllBounded, readFileBounded } from "../io.ts";
import { printJson, withStore } from "../open.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";

export const set: Command = {
  name: "set",
  usage: "NAME [VALUE] [--prompt | --from-file F | --generate] [flags]",
  details: [
    "The value comes from stdin when piped, byte for byte (`echo` adds a newline; use printf '%s'),",
    "from --prompt (asked twice, no echo; also the default on a terminal), --from-file, or --generate.",
    "A VALUE on the command line works but lands in shell history and /proc/*/cmdline.",
    "Every version is kept: `coffer history NAME`, `coffer get NAME --version N`.",
    "",
    "In the local store --generate remembers its --charset and --length with the secret, so",
    "`coffer rotate NAME` (and `coffer revoke MEMBER --rotate`) can make the next value the same way;",
    "a value set any other way forgets them. On a server, rotation is `coffer rotation set`.",
    "",
    REMOTE_HELP,
    "--rotate-every is for the local store only.",
  ].join("\n"),
  examples: [
    "printf '%s' \"$TOKEN\" | coffer set ci/deploy-token",
    "coffer set db/prod/password --prompt --description 'primary Postgres'",
    "coffer set tls/key --from-file server.key",
    "coffer set app/session-secret --generate --length 48 --rotate-every 90d",
    "coffer set db/prod/password --if-version 3 < new-password.txt",
    "coffer set app/api-key --server https://coffer.example.com --prompt",
  ],
  completes: "secret",
  flags: {
    prompt: { type: "boolean", help: "ask for the value on the terminal, twice, without echo" },
    "from-file": { type: "string", arg: "F", help: "read the value from file F (exact bytes)" },
    generate: { type: "boolean", help: "generate a random value (not printed)" },
    length: { type: "string", arg: "N", help: "with --generate: characters, or words for --charset words" },
    charset: { type: "string", arg: "SET", help: "with --generate: alnum (default), hex, base64, words" },
    description: { type: "string", arg: "TEXT", help: "a description, kept until changed" },
    "if-version": { type: "string", arg: "N", help: "refuse unless the current version is N (0: must be new)" },
    "rotate-every": { type: "string", arg: "DUR", help: "rotation period, e.g. 90d; `list` flags it when due" },
    json: { type: "boolean", help: "print {name, version} as JSON" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    const [name, argValue, ...extra] = ctx.args;
    if (name === undefined || extra.length > 0) {
      throw new CofferError("E_USAGE", "usage: coffer set NAME [VALUE] (see `coffer set --help`)");
    }
    assertSecretName(name);
    const f = ctx.flags;
    const sources = [argValue !== undefined, f.prompt === true, typeof f["from-file"] === "string", f.generate === true].filter(Boolean).length;
    if (sources > 1) throw new CofferError("E_USAGE", "give the value one way only: VALUE, --prompt, --from-file or --generate");
    if (f.generate !== true && (f.length !== undefined || f.charset !== undefined)) {
      throw new CofferError("E_USAGE", "--length and --charset go with --generate");
    }
    const options = {
      ...(typeof f.description === "string" && { description: f.description }),
      ...(typeof f["if-version"] === "string" && { ifVersion: parseWhole(f["if-version"], "--if-version", 0) }),
      ...(typeof f["rotate-every"] === "string" && { rotationSeconds: parseDurationSeconds(f["rotate-every"], "--rotate-every") }),
    };
    // Before the value is read: a usage error must not wait for (or swallow) a prompt.
    const client = await remoteClient(ctx, { "rotate-every": "rotation periods are kept by the local store only" });
    let value: Buffer;
    let how = "";
    // The local store remembers how a value was generated (for `coffer rotate`), and forgets it
    // when the value is set another way.
    let generator: { charset: Charset; length: number } | null = null;
    if (argValue !== undefined) {
      ctx.say("coffer: warning: a value on the command line lands in shell history and /proc/*/cmdline; pipe it on stdin or use --prompt");
      value = Buffer.from(argValue, "utf8");
    } else if (typeof f["from-file"] === "string") {
      value = await readFileBounded(f["from-file"], DEFAULT_MAX_VALUE_BYTES);
    } else if (f.generate === true) {
      const { generateValue, parseCharset, defaultLength, describeGenerator } = await import("../../crypto/generate.ts");
      const charset = parseCharset(typeof f.charset === "string" ? f.charset : "alnum");
      const length = typeof f.length === "string" ? parseWhole(f.length, "--length", 1) : defaultLength(charset);
      value = Buffer.from(await generateValue(charset, length), "utf8");
      generator = { charset, length };
      how = ` (generated: ${describeGenerator(generator)}${client === undefined ? "; remembered for `coffer rotate`" : ""})`;
    } else if (f.prompt === true || ctx.io.stdin.isTTY === true) {
      value = Buffer.from(await promptTwice(`value for ${name}`), "utf8");
    } else {
      value = await readAllBounded(ctx.io.stdin, DEFAULT_MAX_VALUE_BYTES, "stdin");
    }
    try {
      const result = client !== undefined
        ? await client.writeSecret(name, value, options)
        : await withStore(ctx, (store) => store.set(name, value, { ...options, generator }));
      if (ctx.flags.json === true) return printJson(ctx, result);
      ctx.say(`set ${result.name} v${result.version}${how}`);
    } finally {
      value.fill(0);
    }
  },
};
