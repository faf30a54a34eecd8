import type { Command } from "../command.ts";
import { parseWhole } from "../io.ts";
import { oneArg, printJson, withStore } from "../open.ts";
import { jsonValue } from "../../core/secret.ts";

export const get: Command = {
  name: "get",
  usage: "NAME [--version N] [--json]",
  details: [
    "Prints the value exactly as stored; a newline is added only when stdout is a terminal.",
    "Binary values pass through untouched. Each CLI read is recorded in the audit log.",
  ].join("\n"),
  examples: [
    "coffer get db/prod/password",
    "psql \"postgres://app:$(coffer get db/prod/password)@db/app\"",
    "coffer get tls/key --version 2 > old.key",
    "coffer get api/token --json",
  ],
  flags: {
    version: { type: "string", arg: "N", help: "a specific version (default: the current one)" },
    json: { type: "boolean", help: "print {name, version, updatedAt, value} as JSON (valueBase64 for binary)" },
  },
  async run(ctx) {
    const name = oneArg(ctx, "NAME", "get NAME [--version N]");
    const version = typeof ctx.flags.version === "string" ? parseWhole(ctx.flags.version, "--version", 1) : undefined;
    await withStore(ctx, (store) => {
      const secret = store.get(name, version === undefined ? {} : { version });
      try {
        store.appendAudit({ action: "get", name, version: secret.version, detail: { via: "cli" } }, { durable: false });
        const bytes = Buffer.from(secret.bytes());
        if (ctx.flags.json === true) {
          printJson(ctx, { name, version: secret.version, updatedAt: secret.updatedAt, ...jsonValue(bytes) });
        } else {
          ctx.out(bytes);
          if (ctx.io.stdout.isTTY === true) ctx.out("\n");
        }
        bytes.fill(0);
      } finally {
        secret.dispose();
      }
    });
  },
};
