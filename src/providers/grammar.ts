/**
 * What a provider type owns (docs/design.md §7): its `providers:` entry as a JSON Schema branch,
 * the checks of its settings, its `--provider TYPE:…` form, what a reference's `secret:` names in
 * it, and its factory. One file per type beside this one, one line in `index.ts`.
 */
import type { Provider, ProviderContext } from "./provider.ts";

/** A JSON Schema node with coffer's `x-` message keywords; loose on purpose (schemas are data). */
export type Schema = { readonly [k: string]: any };

/**
 * Named checks of a string: the rule it breaks in words, or undefined when it is fine. Called
 * with `number` true for a YAML number (its source text): a rule then replaces "must be a string".
 */
export type Formats = Readonly<Record<string, (text: string, number?: boolean) => string | undefined>>;

/** A rule broken, or the value. */
export type Checked<T> = { ok: T } | { rule: string };

/** One provider type's grammar. */
export interface ProviderGrammar<S extends { type: string } = { type: string }> {
  type: S["type"];
  /** the `providers:` entry (a branch of the schema's `provider` oneOf), with its `x-` messages */
  schema: Schema;
  /** agent.yml backends: settings only the agent has (vault's tokenFile) */
  agentProperties?: Record<string, Schema>;
  /** the checks the schema names with `x-format` */
  formats?: Formats;
  /** what `secret:`/`path:` names in this provider: a secret name, a variable name, or any text */
  path: "secret-name" | "env-name" | "text";
  /** whether a reference may name a `key:` inside the value (vault; store and server: a JSON-object value, keyed.ts) */
  keys?: boolean;
  /** `--provider` forms, for the usage message */
  cliForm: string;
  /** Parses the text after `TYPE:` of `--provider` (undefined for types without settings). */
  fromCli?(rest: string): Checked<S>;
  /** The spec with its defaults filled in, from the checked settings. */
  spec(settings: Record<string, unknown>): S;
}

/** One provider type: its grammar and its factory (the registry's entry). */
export interface ProviderType<S extends { type: string } = { type: string }> extends ProviderGrammar<S> {
  /** Creates the provider `name` from its spec. */
  create(name: string, spec: S, ctx: ProviderContext): Provider;
}

/** A server's URL (vault's address, a coffer server's url): http or https, a host, an optional path. */
export const HTTP_URL_PATTERN = "^https?://[^\\s/?#@]+(/[^\\s?#]*)?$";

/**
 * Whether `s` matches {@link HTTP_URL_PATTERN} and parses as an http(s) URL with a host; `strict`
 * also refuses credentials, a query and a fragment (tokens go in `tokenEnv`, never in the URL).
 */
export function isHttpUrl(s: string, strict = false): boolean {
  if (!new RegExp(HTTP_URL_PATTERN).test(s)) return false;
  try {
    const u = new URL(s);
    const bare = u.username === "" && u.password === "" && u.search === "" && u.hash === "";
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "" && (!strict || bare);
  } catch {
    return false;
  }
}

/** The grammar of a type without settings (`store`, `env`): `{ type }`, `--provider TYPE`. */
export function plainGrammar<T extends string>(type: T, title: string, description: string, path: ProviderGrammar["path"]): ProviderGrammar<{ type: T }> {
  return {
    type,
    schema: { title, type: "object", additionalProperties: false, required: ["type"], properties: { type: { const: type, description } } },
    path,
    cliForm: type,
    spec: () => ({ type }),
  };
}
