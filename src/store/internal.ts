/**
 * What coffer's own modules (sharing, backup) reach beneath a {@link Store}: its SQLite driver
 * and its write transaction. Never exported from the package (docs/design.md §7): the public
 * `Store` has no raw-SQL door.
 */
import { CofferError } from "../errors.ts";
import type { SqliteDriver } from "../storage/sqlite.ts";
import type { Store } from "./store.ts";

/** A store's driver, and a write transaction with the store's checks and head signing. */
export interface StoreInternals {
  readonly driver: SqliteDriver;
  /** Runs `fn` in one write transaction (or the one open): all of its changes land or none. */
  write<T>(fn: () => T): T;
}

const internals = new WeakMap<Store, StoreInternals>();

/** Called by the Store's constructor. */
export function registerInternals(store: Store, inner: StoreInternals): void {
  internals.set(store, inner);
}

/** The internals of an open store. */
export function internalsOf(store: Store): StoreInternals {
  const inner = internals.get(store);
  if (inner === undefined || inner.driver.closed) throw new CofferError("E_USAGE", "the store is closed; open it again with openStore()");
  return inner;
}
