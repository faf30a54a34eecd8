/**
 * The provider registry (docs/design.md §7): a provider type is one file plus one line in
 * {@link createProvider}. {@link ProviderSet} routes references to the providers of a config.
 */
import { CofferError } from "../errors.ts";
import type { Store } from "../store/store.ts";
import type { Secret } from "../core/secret.ts";
import { createEnvProvider } from "./env.ts";
import { createFolderProvider } from "./folder.ts";
import type { Provider, ProviderContext, ProviderSpec, SecretRef } from "./provider.ts";
import { createServerProvider } from "./server.ts";
import { createStoreProvider, type StoreProvider } from "./store.ts";
import { createVaultProvider } from "./vault.ts";

export type { Provider, ProviderContext, ProviderSpec, SecretRef } from "./provider.ts";
export { describeRef } from "./provider.ts";
export type { StoreProvider } from "./store.ts";

/**
 * Creates the provider `name` of type `spec.type`.
 * @throws CofferError E_CONFIG for an unknown type or a bad spec (e.g. a relative folder dir)
 */
export function createProvider(name: string, spec: ProviderSpec, ctx: ProviderContext): Provider {
  switch (spec.type) {
    case "store":
      return createStoreProvider(name, spec, ctx);
    case "folder":
      return createFolderProvider(name, spec, ctx);
    case "env":
      return createEnvProvider(name, spec, ctx);
    case "vault":
      return createVaultProvider(name, spec, ctx);
    case "server":
      return createServerProvider(name, spec, ctx);
    default:
      throw new CofferError(
        "E_CONFIG",
        `provider "${name}" has the unknown type ${JSON.stringify(String((spec as { type?: unknown }).type))}; known types: store, folder, env, vault, server`,
      );
  }
}

/**
 * The providers of one config, each created on its first use and closed together.
 * A `store` provider (the local store) is there even when `specs` does not name it.
 *
 * @example
 * const providers = new ProviderSet(plan.providers, { env: process.env });
 * try {
 *   const pw = await providers.resolve({ provider: "vault", path: "db/prod", key: "password" });
 * } finally {
 *   await providers.close();
 * }
 */
export class ProviderSet {
  readonly #specs: Record<string, ProviderSpec>;
  readonly #ctx: ProviderContext;
  readonly #create: (name: string, spec: ProviderSpec, ctx: ProviderContext) => Provider;
  readonly #created = new Map<string, Provider>();
  #closed = false;

  /**
   * @param specs - the `providers:` section, by name
   * @param ctx - what the providers may use (environment, store path, passphrase prompt)
   * @param create - the factory (tests pass their own; default {@link createProvider})
   */
  constructor(
    specs: Record<string, ProviderSpec>,
    ctx: ProviderContext,
    create: (name: string, spec: ProviderSpec, ctx: ProviderContext) => Provider = createProvider,
  ) {
    this.#specs = { store: { type: "store" }, ...specs };
    this.#ctx = ctx;
    this.#create = create;
  }

  /** The names of the configured providers. */
  get names(): string[] {
    return Object.keys(this.#specs);
  }

  /**
   * The provider `name`, created on first use.
   * @throws CofferError E_CONFIG when no provider has that name
   */
  get(name: string): Provider {
    if (this.#closed) throw new CofferError("E_INTERNAL", "the providers were used after close()");
    let provider = this.#created.get(name);
    if (provider === undefined) {
      const spec = Object.hasOwn(this.#specs, name) ? this.#specs[name] : undefined;
      if (spec === undefined) {
        throw new CofferError("E_CONFIG", `no provider named "${name}"; configured: ${Object.keys(this.#specs).join(", ")}`);
      }
      provider = this.#create(name, spec, this.#ctx);
      this.#created.set(name, provider);
    }
    return provider;
  }

  /**
   * Resolves a reference with the provider it names.
   * @throws CofferError E_CONFIG for an unknown provider, else what the provider throws
   */
  async resolve(ref: SecretRef): Promise<Secret> {
    return this.get(ref.provider).resolve(ref);
  }

  /**
   * Watches `refs`, grouped by provider, with the providers that can watch; returns a function
   * that stops every watch, and the refs whose provider cannot watch.
   */
  watch(refs: readonly SecretRef[], onChange: (ref: SecretRef) => void): { stop: () => void; unwatched: SecretRef[] } {
    const stops: (() => void)[] = [];
    const unwatched: SecretRef[] = [];
    for (const [name, group] of Map.groupBy(refs, (r) => r.provider)) {
      const provider = this.get(name);
      if (provider.watch === undefined) unwatched.push(...group);
      else stops.push(provider.watch(group, onChange));
    }
    return { stop: () => stops.forEach((s) => s()), unwatched };
  }

  /**
   * The local store if the `store` provider opened it, for appending audit records of a
   * delivery; `undefined` when nothing was read from the store. Owned by the set: close() closes it.
   */
  openedStore(): Store | undefined {
    for (const provider of this.#created.values()) {
      const store = (provider as Partial<StoreProvider>).openedStore?.();
      if (store !== undefined) return store;
    }
    return undefined;
  }

  /** Closes every provider created so far (all of them, even when one fails; the first failure is thrown). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const results = await Promise.allSettled([...this.#created.values()].map(async (p) => p.close()));
    this.#created.clear();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }
}
