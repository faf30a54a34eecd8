import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { printJson } from "../open.ts";
import { SERVER_FLAG, SERVER_HELP, serverClient } from "../remote.ts";

export const whoami: Command = {
  name: "whoami",
  usage: "[--server URL] [--json]",
  details: ["Asks the server who the token is (GET /v1/auth/self): subject, kind, roles, expiry.", "", SERVER_HELP].join("\n"),
  examples: ["coffer whoami", "coffer whoami --server https://coffer.example.com --json"],
  flags: {
    server: SERVER_FLAG,
    json: { type: "boolean", help: "print {subject, kind, roles, expiresAt} as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "whoami takes no arguments; usage: coffer whoami [--server URL]");
    const client = await serverClient(ctx);
    const self = await client.self();
    if (ctx.flags.json === true) return printJson(ctx, self);
    ctx.out([
      `server   ${client.url}`,
      `subject  ${self.subject}`,
      `kind     ${self.kind}`,
      `roles    ${self.roles.length > 0 ? self.roles.join(", ") : "none"}`,
      `expires  ${self.expiresAt ?? "never"}`,
      "",
    ].join("\n"));
  },
};
