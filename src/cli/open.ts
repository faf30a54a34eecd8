/**
 * Opening the store from a command: global `--store`, a no-echo passphrase prompt on the
 * terminal when the identity is encrypted, and a progress line before the slow scrypt.
 */
import { openStore, type Store } from "../store/store.ts";
import { resolvePaths } from "../core/paths.ts";
import { loadIdentity, type Identity } from "../identity/identity.ts";
import type { Context } from "./command.ts";
import { promptHidden } from "./io.ts";

/** Opens the user's store as the command line says. */
export async function openCliStore(ctx: Context): Promise<Store> {
  return (await openCli(ctx)).store;
}

/** Runs `fn` with the identity loaded and the store open; always closes the store. */
export async function openIdentityAndStore<T>(ctx: Context, fn: (store: Store, identity: Identity) => T | Promise<T>): Promise<T> {
  const { store, identity } = await openCli(ctx);
  try {
    return await fn(store, identity);
  } finally {
    store.close();
  }
}

async function openCli(ctx: Context, options: { acceptHead?: boolean } = {}): Promise<{ store: Store; identity: Identity }> {
  const paths = resolvePaths({ env: ctx.env, ...(ctx.store !== undefined && { store: ctx.store }) });
  const identity = await loadIdentity(paths.identity, {
    env: ctx.env,
    passphrase: () => promptHidden(`passphrase for ${paths.identity}: `),
    progress: (m) => ctx.say(m),
  });
  const store = await openStore({
    env: ctx.env, store: paths.store, identity: paths.identity, identityObject: identity,
    notice: (m) => ctx.say(m), ...(options.acceptHead === true && { acceptHead: true }),
  });
  return { store, identity };
}

/**
 * Opens the store even when its audit chain does not contain its last signed head (see
 * `coffer audit accept`); the caller must look at {@link Store.headStatus}.
 */
export async function openCliStoreAcceptingHead(ctx: Context): Promise<Store> {
  return (await openCli(ctx, { acceptHead: true })).store;
}

/** Runs `fn` with the store open and always closes it. */
export async function withStore<T>(ctx: Context, fn: (store: Store) => T | Promise<T>): Promise<T> {
  const store = await openCliStore(ctx);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

/** Prints `value` as JSON on stdout, one document and a newline. */
export function printJson(ctx: Context, value: unknown): void {
  ctx.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** The one positional a command needs, or a usage error naming it. */
export async function oneArg(ctx: Context, what: string, usage: string): Promise<string> {
  if (ctx.args.length !== 1) {
    const { CofferError } = await import("../errors.ts");
    throw new CofferError("E_USAGE", ctx.args.length === 0 ? `missing ${what}; usage: coffer ${usage}` : `too many arguments; usage: coffer ${usage}`);
  }
  return ctx.args[0]!;
}
