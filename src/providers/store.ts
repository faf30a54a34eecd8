/**
 * The `store` provider: the local encrypted store (docs/design.md §7). Always present in a
 * project; no settings: `{ type: store }`, `--provider store`.
 */
import { CofferError } from "../errors.ts";
import { openStore, type Store } from "../store/store.ts";
import type { Secret } from "../core/secret.ts";
import { plainGrammar, type ProviderType } from "./grammar.ts";
import { pickKey } from "./keyed.ts";
import type { Provider, ProviderContext, SecretRef } from "./provider.ts";

export type StoreSpec = { type: "store" };

/** The `store` provider, with access to the store it opened (for audit records). */
export interface StoreProvider extends Provider {
  /**
   * The local store once a resolve() has opened it, else `undefined`. The delivery code uses it
   * to append audit records of deliveries; it stays owned by the provider (closed by close()).
   */
  openedStore(): Store | undefined;
}

/**
 * Creates the `store` provider. The store is opened lazily, once, on the first resolve()
 * (asking for the passphrase then, when the identity is encrypted).
 * @param name - the provider's name in the config (normally `store`)
 */
export function createStoreProvider(name: string, _spec: StoreSpec, ctx: ProviderContext): StoreProvider {
  let opening: Promise<Store> | undefined;
  let store: Store | undefined;
  let closed = false;

  const open = (): Promise<Store> => {
    opening ??= openStore({
      env: ctx.env,
      ...(ctx.storePath !== undefined && { store: ctx.storePath }),
      ...(ctx.passphrase !== undefined && { passphrase: ctx.passphrase }),
      ...(ctx.progress !== undefined && { progress: ctx.progress, notice: ctx.progress }),
    }).then(
      (s) => {
        if (closed) {
          s.close();
          throw closedError(name);
        }
        store = s;
        return s;
      },
      (err: unknown) => {
        opening = undefined; // a failed open (wrong passphrase) may be retried
        throw err;
      },
    );
    return opening;
  };

  return {
    name,
    async resolve(ref: SecretRef): Promise<Secret> {
      if (closed) throw closedError(name);
      let s = await open();
      if (s.replaced) {
        // `coffer restore` put another store file in place: read the restored values, not the
        // old file this connection still holds (the agent polls through here).
        if (store === s) {
          s.close();
          store = undefined;
          opening = undefined;
        }
        s = await open();
      }
      // `key:` reads the value as a map (a Vault client's, through a server's Vault API): keyed.ts.
      return pickKey(s.get(ref.path, ref.version !== undefined ? { version: ref.version } : {}), ref);
    },
    openedStore(): Store | undefined {
      return store;
    },
    close(): void {
      closed = true;
      store?.close();
      store = undefined;
    },
  };
}

export const storeType: ProviderType<StoreSpec> = {
  ...plainGrammar("store", "Local store", "The local encrypted store.", "secret-name"),
  keys: true,
  create: createStoreProvider,
};

function closedError(name: string): CofferError {
  return new CofferError("E_INTERNAL", `provider "${name}" was used after close()`);
}
