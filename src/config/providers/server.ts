/**
 * The `server` provider's grammar: a coffer team server, `{ type: server, url, tokenEnv? }`,
 * `--provider server:https://host:8200[/path]`.
 */
import { tokenTransportRule } from "../../core/token-transport.ts";
import { show } from "../yaml-checker.ts";
import { HTTP_URL_PATTERN, isHttpUrl, type ProviderGrammar } from "./grammar.ts";

export interface ServerSpec {
  type: "server";
  /** the server's http(s) base URL (no query, fragment or credentials) */
  url: string;
  /** the variable holding the API token (default `COFFER_TOKEN`) */
  tokenEnv?: string;
}

/** The variable a `server` provider reads its API token from, unless `tokenEnv` says otherwise. */
export const DEFAULT_SERVER_TOKEN_ENV = "COFFER_TOKEN";
/** What a `server` provider's url must be, for messages. */
export const SERVER_URL_RULE = "must be an http:// or https:// URL without credentials, query or fragment, e.g. https://coffer.internal:8200";

const urlRule = (s: string): string | undefined => (isHttpUrl(s, true) ? tokenTransportRule(s) : SERVER_URL_RULE);

export const serverGrammar: ProviderGrammar<ServerSpec> = {
  type: "server",
  schema: {
    title: "Coffer server",
    type: "object",
    additionalProperties: false,
    required: ["type", "url"],
    properties: {
      type: { const: "server", description: "A coffer team server (`coffer serve`) over HTTP with an API token." },
      url: {
        type: "string",
        pattern: HTTP_URL_PATTERN,
        description: "The server's http:// or https:// URL, without credentials, query or fragment.",
        "x-format": "server-url",
        "x-needs": "the http:// or https:// URL of a coffer server",
      },
      tokenEnv: { $ref: "#/$defs/envName", default: DEFAULT_SERVER_TOKEN_ENV, description: "The environment variable holding the API token." },
    },
  },
  formats: { "server-url": urlRule },
  path: "secret-name",
  cliForm: "server:https://host:8200",
  fromCli(url) {
    const bad = urlRule(url);
    if (bad === SERVER_URL_RULE) return { rule: `server url ${show(url)} ${SERVER_URL_RULE}` };
    return bad !== undefined ? { rule: `it ${bad}` } : { ok: { type: "server", url } };
  },
  spec: (s) => ({ type: "server", url: s["url"] as string, ...(s["tokenEnv"] !== undefined && { tokenEnv: s["tokenEnv"] as string }) }),
};
