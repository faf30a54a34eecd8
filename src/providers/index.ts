/**
 * The provider registry (docs/design.md §7): a provider type is one file in this folder (its
 * grammar and its factory) plus one line in {@link PROVIDERS}. {@link ProviderSet} routes
 * references to the providers of a config.
 */
import { CofferError, show } from "../errors.ts";
import type { Store } from "../store/store.ts";
import type { Secret } from "../core/secret.ts";
import { envType } from "./env.ts";
import { folderType } from "./folder.ts";
import type { ProviderType } from "./grammar.ts";
import type { Provider, ProviderContext, SecretRef } from "./provider.ts";
import { serverType } from "./server.ts";
import { storeType, type StoreProvider } from "./store.ts";
import { vaultType } from "./vault.ts";

export type { Provider, ProviderContext, SecretRef } from "./provider.ts";
export { describeRef } from "./provider.ts";
export type { StoreProvider } from "./store.ts";

/** Every provider type, in the order messages list them. */
export const PROVIDERS = [storeType, folderType, envType, vaultType, serverType] as const;

/** How a provider is configured (a `providers:` entry, an agent backend, `--provider`). */
export type ProviderSpec = ReturnType<(typeof PROVIDERS)[number]["spec"]>;

/** The `x-format` checks of every provider's settings. */
export const PROVIDER_FORMATS = Object.assign({}, ...PROVIDERS.map((g) => g.formats ?? {}));

/** The provider type `type`. */
export function grammarOf(type: string): ProviderType | undefined {
  return (PROVIDERS as readonly ProviderType[]).find((g) => g.type === type);
}

/**
 * Parses `--provider SPEC`: `TYPE` for types without settings, else `TYPE:SETTINGS` (each
 * type's `cliForm`); tokens come from the environment as for `.coffer.yml`.
 * @throws CofferError E_USAGE naming the accepted forms
 */
export function parseProviderSpec(text: string): ProviderSpec {
  const colon = text.indexOf(":");
  const g = grammarOf(colon < 0 ? text : text.slice(0, colon));
  const r = g === undefined ? undefined : g.fromCli === undefined ? (colon < 0 ? { ok: g.spec({}) } : undefined) : colon < 0 ? undefined : g.fromCli(text.slice(colon + 1));
  if (r !== undefined && "ok" in r) return r.ok as ProviderSpec;
  const forms = PROVIDERS.map((x) => x.cliForm);
  const rule = r?.rule ?? `use ${forms.slice(0, -1).join(", ")} or ${forms.at(-1)}`;
  throw new CofferError("E_USAGE", `invalid provider ${show(text)}: ${rule}`);
}

/**
 * Creates the provider `name` of type `spec.type`.
 * @throws CofferError E_CONFIG for an unknown type or a bad spec (e.g. a relative folder dir)
 */
export function createProvider(name: string, spec: ProviderSpec, ctx: ProviderContext): Provider {
  const type = grammarOf(spec.type);
  if (type !== undefined) return type.create(name, spec, ctx);
  throw new CofferError(
    "E_CONFIG",
    `provider "${name}" has the unknown type ${JSON.stringify(String((spec as { type?: unknown }).type))}; known types: ${PROVIDERS.map((p) => p.type).join(", ")}`,
  );
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
