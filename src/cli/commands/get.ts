import type { Command, Context } from "../command.ts";
import { parseWhole } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { jsonValue } from "../../core/secret.ts";
import { valueOfKey } from "../../core/kv-map.ts";
import { REMOTE_FLAG, REMOTE_HELP, remoteClient } from "../remote.ts";
import { remoteRead, type ReadValue } from "../remote-secrets.ts";

export const get: Command = {
  name: "get",
  usage: "NAME [--version N] [--key K] [--json] [--server URL]",
  details: [
    "Prints the value exactly as stored; a newline is added only when stdout is a terminal.",
    "Binary values pass through untouched. Each CLI read is recorded in the audit log.",
    "--key prints one key of a value that is a JSON object (as a Vault client writes it through",
    "the server's Vault API): a string as it is, any other JSON value as JSON; plain text has the key value.",
    "",
    REMOTE_HELP,
  ].join("\n"),
  examples: [
    "coffer get db/prod/password",
    "psql \"postgres://app:$(coffer get db/prod/password)@db/app\"",
    "coffer get tls/key --version 2 > old.key",
    "coffer get api/token --json",
    "coffer get app/db --key password",
    "COFFER_SERVER=https://coffer.example.com coffer get app/api-key",
  ],
  completes: "secret",
  flags: {
    version: { type: "string", arg: "N", help: "a specific version (default: the current one)" },
    key: { type: "string", arg: "K", help: "one key of a JSON-object value (a Vault map)" },
    json: { type: "boolean", help: "print {name, version, updatedAt, value} as JSON (valueBase64 for binary)" },
    server: REMOTE_FLAG,
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "get NAME [--version N]");
    const version = typeof ctx.flags.version === "string" ? parseWhole(ctx.flags.version, "--version", 1) : undefined;
    const client = await remoteClient(ctx);
    if (client !== undefined) return print(ctx, await remoteRead(client, name, version));
    await withStore(ctx, (store) => {
      const secret = store.get(name, version === undefined ? {} : { version });
      try {
        store.appendAudit({ action: "get", name, version: secret.version, detail: { via: "cli" } }, { durable: false });
        print(ctx, { name, version: secret.version, updatedAt: secret.updatedAt, bytes: Buffer.from(secret.bytes()) });
      } finally {
        secret.dispose();
      }
    });
  },
};

/** Prints a value as `get` does, then zeroes its bytes. */
function print(ctx: Context, read: ReadValue): void {
  let v = read;
  try {
    if (typeof ctx.flags.key === "string") v = { ...read, name: `${read.name}#${ctx.flags.key}`, bytes: valueOfKey(read.bytes, ctx.flags.key, `${read.name}#${ctx.flags.key}`) };
    if (ctx.flags.json === true) {
      printJson(ctx, { name: v.name, version: v.version, updatedAt: v.updatedAt, ...jsonValue(v.bytes) });
    } else {
      ctx.out(v.bytes);
      if (ctx.io.stdout.isTTY === true) ctx.out("\n");
    }
  } finally {
    v.bytes.fill(0);
    read.bytes.fill(0);
  }
}
