/**
 * The storage conformance suite on a local store's SQLite: the driver under `Store` (reached
 * through the store's internals) behind the same async face the server uses.
 */
import type { TestContext } from "node:test";
import { initCoffer, openStore, type Store } from "../../src/index.ts";
import { internalsOf } from "../../src/store/internal.ts";
import { sqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { tempDir } from "../helpers.ts";
import { storageConformance } from "./conformance.ts";

const homes = new WeakMap<ServerStorage, string>();

async function open(t: TestContext, home: string): Promise<ServerStorage> {
  const store: Store = await openStore({ env: { COFFER_HOME: home } });
  const storage = sqliteStorage(internalsOf(store).driver);
  homes.set(storage, home);
  t.after(async () => {
    await storage.close();
    store.close();
  });
  return storage;
}

storageConformance("local store (sqlite)", async (t) => {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "alice" });
  return open(t, home);
}, {
  tokens: false,
  executions: false,
  reopen: async (t, storage) => {
    await storage.close();
    return open(t, homes.get(storage)!);
  },
});
