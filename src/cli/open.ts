/**
 * Opening the store from a command: global `--store`, a no-echo passphrase prompt on the
 * terminal when the identity is encrypted, and a progress line before the slow scrypt.
 */
import { CofferError } from "../errors.ts";
import { openStore, type Store } from "../store/store.ts";
import { resolvePaths } from "../core/paths.ts";
import { loadIdentity, type Identity } from "../identity/identity.ts";
import type { Context } from "./command.ts";
import { promptHidden } from "./io.ts";

function cliPaths(ctx: Context) {
  return resolvePaths({ env: ctx.env, ...(ctx.store !== undefined && { store: ctx.store }) });
}

/** Loads the user's identity. */
export function loadCliIdentity(ctx: Context, identityPath = cliPaths(ctx).identity): Promise<Identity> {
  return loadIdentity(identityPath, {
    env: ctx.env,
    passphrase: () => promptHidden(`passphrase for ${identityPath}: `),
    progress: (m) => ctx.say(m),
  });
}

/**
 * Runs `fn` with the identity loaded and the user's store open; always closes the store.
 * `acceptHead` opens it even when its audit chain does not contain its last signed head (see
 * `coffer audit accept`); `fn` must then look at {@link Store.headStatus}.
 */
export async function withStore<T>(
  ctx: Context,
  fn: (store: Store, identity: Identity) => T | Promise<T>,
  options: { acceptHead?: boolean } = {},
): Promise<T> {
  const paths = cliPaths(ctx);
  const identity = await loadCliIdentity(ctx, paths.identity);
  const store = await openStore({
    env: ctx.env, store: paths.store, identity: paths.identity, identityObject: identity,
    notice: (m) => ctx.say(m), ...(options.acceptHead === true && { acceptHead: true }),
  });
  try {
    return await fn(store, identity);
  } finally {
    store.close();
  }
}

/** A string flag's value (parseArgs gives a string flag a string, or nothing). */
export function stringFlag(ctx: Context, name: string): string | undefined {
  const v = ctx.flags[name];
  return typeof v === "string" ? v : undefined;
}

/** Prints `value` as JSON on stdout, one document and a newline. */
export function printJson(ctx: Context, value: unknown): void {
  ctx.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** The one positional a command needs, or a usage error naming it. */
export function oneArg(ctx: Context, what: string, usage: string): string {
  if (ctx.args.length !== 1) {
    throw new CofferError("E_USAGE", ctx.args.length === 0 ? `missing ${what}; usage: coffer ${usage}` : `too many arguments; usage: coffer ${usage}`);
  }
  return ctx.args[0]!;
}
