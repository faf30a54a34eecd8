import { CofferError } from "../../errors.ts";
import { ServerAdmin } from "../../client/admin.ts";
import type { Command } from "../command.ts";
import { table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, stringFlag } from "../open.ts";
import { RotationClient } from "../../client/rotation.ts";
import { onServer, SERVER_FLAG, SERVER_HELP, serverClient } from "../remote.ts";
import { printRotationReport } from "./rotation.ts";

export const tokenCreate: Command = {
  name: "token create",
  usage: "--name N --role R [--role R…] [--ttl DUR] [--server URL] [--json]",
  details: [
    "Makes an API token on the server (needs write on sys:tokens) with roles you hold yourself; it",
    "never outlives your own credential. The token is printed once, alone, on stdout (or in --json);",
    "the server keeps only its hash. Everything else goes to stderr.",
    "",
    SERVER_HELP,
  ].join("\n"),
  examples: [
    "coffer token create --name ci-deploy --role ci --ttl 30d > ci.token",
    "coffer token create --name alice --role reader --role writer --json",
  ],
  flags: {
    name: { type: "string", arg: "N", help: "the token's name (letters, digits, _ . @ : -)" },
    role: { type: "string", arg: "R", multiple: true, help: "a role it gets (repeat for more; roles you hold)" },
    ttl: { type: "string", arg: "DUR", help: "how long it lives: 30d, 12h, 3600 (default: as long as your credential)" },
    server: SERVER_FLAG,
    json: { type: "boolean", help: "print {token, id, name, roles, expiresAt} as JSON" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "token create takes flags only; usage: coffer token create --name N --role R");
    const name = stringFlag(ctx, "name");
    const roles = Array.isArray(ctx.flags.role) ? ctx.flags.role : [];
    if (name === undefined || roles.length === 0) throw new CofferError("E_USAGE", "give --name N and at least one --role R; usage: coffer token create --name N --role R");
    const ttl = stringFlag(ctx, "ttl");
    const t = await new ServerAdmin(await serverClient(ctx)).createToken({ name, roles, ...(ttl !== undefined && { ttl }) });
    if (ctx.flags.json === true) return printJson(ctx, t);
    ctx.out(`${t.token}\n`);
    ctx.say(`created token ${t.id} "${t.name}" (roles: ${t.roles.join(", ")}; ${t.expiresAt !== null ? `expires ${t.expiresAt}` : "does not expire"}); it is shown only this once`);
  },
};

export const tokenList: Command = {
  name: "token list",
  usage: "[--server URL] [--json]",
  details: ["Lists the server's API tokens (needs read on sys:tokens); never the tokens themselves.", "", SERVER_HELP].join("\n"),
  examples: ["coffer token list", "coffer token list --json | jq -r '.[] | select(.revokedAt == null) | .id'"],
  flags: { server: SERVER_FLAG, json: { type: "boolean", help: "print the tokens as JSON" } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "token list takes no arguments");
    const tokens = await new ServerAdmin(await serverClient(ctx)).listTokens();
    if (ctx.flags.json === true) return printJson(ctx, tokens);
    if (tokens.length === 0) return ctx.say("no tokens; `coffer token create --name N --role R` makes one");
    const when = (t: string | null): string => (t === null ? "" : wholeSeconds(t));
    ctx.out(table(
      ["ID", "NAME", "ROLES", "CREATED", "BY", "EXPIRES", "REVOKED"],
      tokens.map((t) => [t.id, t.name, t.roles.join(","), wholeSeconds(t.createdAt), t.createdBy, when(t.expiresAt), when(t.revokedAt)]),
    ));
  },
};

export const tokenRevoke: Command = {
  name: "token revoke",
  usage: "ID [--rotate] [--server URL] [--json]",
  details: [
    "Revokes an API token at once on every instance (needs delete on sys:tokens, or be that token).",
    "",
    "--rotate then rotates the secrets that token and the tokens it made read (from the audit log)",
    "by their rotation policies, and prints two lists: the secrets rotated (name and new version) and",
    "those left to rotate by hand, with why (no rotation policy, or its apply failed).",
    "",
    SERVER_HELP,
  ].join("\n"),
  examples: ["coffer token revoke 0123456789abcdef", "coffer token revoke 0123456789abcdef --rotate", "coffer token revoke 0123456789abcdef --rotate --json | jq -r '.manual[].name'"],
  flags: {
    rotate: { type: "boolean", help: "rotate the secrets it read; list those left to rotate by hand" },
    server: SERVER_FLAG,
    json: { type: "boolean", help: "print {id, revoked} as JSON; with --rotate {id, revoked, rotated[], manual[]}" },
  },
  async run(ctx) {
    const id = oneArg(ctx, "the token id", "token revoke ID");
    if (ctx.flags.rotate === true) {
      const r = await onServer(ctx, (c) => new RotationClient(c).revokeToken(id));
      if (ctx.flags.json === true) return printJson(ctx, r);
      ctx.say(`revoked token ${r.id}`);
      if (r.rotated.length === 0 && r.manual.length === 0) return ctx.say("it read no secret that is still current");
      printRotationReport(ctx, r, "that it read");
      return;
    }
    const r = await new ServerAdmin(await serverClient(ctx)).revokeToken(id);
    if (ctx.flags.json === true) return printJson(ctx, r);
    ctx.say(`revoked token ${r.id}`);
  },
};
