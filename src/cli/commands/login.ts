import { resolve } from "node:path";
import { CofferError } from "../../errors.ts";
import { CofferClient } from "../../client/client.ts";
import { normaliseServerUrl, readClientTls, type ClientTlsFiles } from "../../client/server-url.ts";
import { removeToken, saveToken, tokenFilePath } from "../../client/token-file.ts";
import type { Command } from "../command.ts";
import { promptHidden, readAllBounded } from "../io.ts";
import { oneArg, printJson, stringFlag } from "../open.ts";

// Far more than a `cof_` token or a JWT needs; a larger stdin is a mistake, not a token.
const MAX_TOKEN_BYTES = 8192;

export const login: Command = {
  name: "login",
  usage: "URL [--token-stdin] [--ca FILE] [--cert FILE --key FILE] [--json]",
  details: [
    "The token comes from stdin with --token-stdin, else from COFFER_TOKEN when it is set, else it is",
    "asked for on the terminal without echo. It is checked with the server (GET /v1/auth/self) and",
    "saved, 0600, in tokens.json beside your identity (~/.config/coffer, or $COFFER_HOME); the",
    "`server` provider of .coffer.yml uses it when its token variable is not set.",
    "",
    "--ca trusts that CA (PEM) for this server instead of the system's; --cert and --key present a",
    "client certificate (mutual TLS). Their absolute paths are saved with the token and used by every",
    "client of this URL (run, load, agent, login); .coffer.yml cannot name them. The key file must",
    "be private to you (0600); the certificate and CA may be 0644 but writable only by you or root.",
    "A login without them saves none.",
  ].join("\n"),
  examples: [
    "coffer login https://coffer.example.com",
    "printf '%s' \"$COFFER_TOKEN\" | coffer login https://coffer.example.com --token-stdin",
    "coffer login https://coffer.example.com/team --json < /dev/null",
    "coffer login https://coffer.internal:8200 --ca ca.crt --cert me.crt --key me.key",
  ],
  flags: {
    "token-stdin": { type: "boolean", help: "read the token from stdin (surrounding whitespace is dropped)" },
    ca: { type: "string", arg: "FILE", help: "trust this CA certificate (PEM) for the server instead of the system's" },
    cert: { type: "string", arg: "FILE", help: "present this client certificate (PEM; needs --key)" },
    key: { type: "string", arg: "FILE", help: "the client certificate's private key (PEM, unencrypted, 0600)" },
    json: { type: "boolean", help: "print who the token is ({subject, kind, roles, expiresAt}) as JSON" },
  },
  async run(ctx) {
    const url = normaliseServerUrl(oneArg(ctx, "the server URL", "login URL [--token-stdin]"));
    const tls: ClientTlsFiles = {};
    for (const k of ["ca", "cert", "key"] as const) {
      const v = stringFlag(ctx, k);
      if (v === "") throw new CofferError("E_USAGE", `--${k} needs a file`);
      if (v !== undefined) tls[k] = resolve(v);
    }
    const withTls = Object.keys(tls).length > 0;
    // Checked before a token is asked for: a wrong path or mode is said at once.
    if (withTls) readClientTls(tls, url).key?.fill(0);
    let token: string;
    if (ctx.flags["token-stdin"] === true) {
      const raw = await readAllBounded(ctx.io.stdin, MAX_TOKEN_BYTES, "the token on stdin");
      token = raw.toString("utf8").trim();
      raw.fill(0);
    } else if (ctx.env.COFFER_TOKEN !== undefined && ctx.env.COFFER_TOKEN !== "") {
      token = ctx.env.COFFER_TOKEN.trim();
    } else {
      token = (await promptHidden(`API token for ${url}: `)).trim();
    }
    if (token === "") throw new CofferError("E_INVALID_VALUE", "the token is empty; nothing was saved");
    const client = new CofferClient({ url, token, ...(withTls && { tls }) });
    let self;
    try {
      self = await client.self();
    } catch (err) {
      if (err instanceof CofferError) throw new CofferError(err.code, `${err.message}; nothing was saved`);
      throw err;
    }
    saveToken(url, token, ctx.env, withTls ? tls : undefined);
    if (ctx.flags.json === true) printJson(ctx, self);
    const roles = self.roles.length > 0 ? self.roles.join(", ") : "none";
    ctx.say(`logged in to ${url} as ${self.subject} (roles: ${roles})${self.expiresAt !== null ? `; the token expires at ${self.expiresAt}` : ""}`);
  },
};

export const logout: Command = {
  name: "logout",
  usage: "URL",
  details: "Only the saved copy is removed; the token stays valid on the server until it is revoked there.",
  examples: ["coffer logout https://coffer.example.com"],
  flags: {},
  async run(ctx) {
    const url = normaliseServerUrl(oneArg(ctx, "the server URL", "logout URL"));
    if (removeToken(url, ctx.env)) ctx.say(`logged out of ${url} (its token was removed from ${tokenFilePath(ctx.env)})`);
    else ctx.say(`no token was saved for ${url}; nothing to do`);
  },
};
