/**
 * The provider seam (docs/design.md §7): where a value comes from. `deliver/` and `agent/` see only
 * this interface; a new provider is one file implementing it plus one line in the registry.
 */
import type { Secret } from "../core/secret.ts";

/** A reference to one value in a provider, as `.coffer.yml` names it. */
export interface SecretRef {
  /** the provider's name in the config; `store` (the local store) is always there */
  provider: string;
  /** the secret's name or path in that provider */
  path: string;
  /** for providers whose secrets are maps of keys (vault): the key inside */
  key?: string;
  /** a specific version, where the provider keeps versions */
  version?: number;
}

/** How a provider is configured (the `providers:` section; `store` needs nothing): each type's grammar is in its file. */
export type { ProviderSpec } from "./index.ts";

/** What a provider may use from the process around it. */
export interface ProviderContext {
  /** coffer's own environment (tokens, COFFER_HOME, …) */
  env: NodeJS.ProcessEnv;
  /** the global `--store` file, for the `store` provider */
  storePath?: string;
  /** asks for the identity's passphrase when it is encrypted (CLI: a terminal prompt) */
  passphrase?: () => Promise<string>;
  /** told before slow work */
  progress?: (message: string) => void;
  /** told of what the user should know but that does not stop the work (a value served stale from a cache) */
  warn?: (message: string) => void;
  /** make no request to a server: the `server` provider answers from its cache only (`--offline`) */
  offline?: boolean;
}

/** A source of secret values. */
export interface Provider {
  /** the provider's name in the config */
  readonly name: string;
  /**
   * Resolves one reference.
   * @throws CofferError naming the reference (never a value): E_NOT_FOUND, E_DENIED, E_PROVIDER, …
   */
  resolve(ref: SecretRef): Promise<Secret>;
  /** Calls `onChange` when one of `refs` may have changed; returns a function that stops it. */
  watch?(refs: readonly SecretRef[], onChange: (ref: SecretRef) => void): () => void;
  /** Releases what the provider holds (an open store, connections). */
  close(): Promise<void> | void;
}

/** Shows a reference for messages: `vault:payments/stripe#api_key@3`. Never a value. */
export function describeRef(ref: SecretRef): string {
  return `${ref.provider}:${ref.path}${ref.key !== undefined ? `#${ref.key}` : ""}${ref.version !== undefined ? `@${ref.version}` : ""}`;
}
