/** `coffer import --dotenv`: an existing `.env` file into the store, all or nothing. */
import { CofferError } from "../errors.ts";
import { parseDotenv } from "../core/dotenv.ts";
import { assertSecretName } from "../core/names.ts";
import type { Store, WriteResult } from "../store/store.ts";
import { internalsOf } from "../store/internal.ts";

/** What a dotenv import did. */
export interface DotenvImportResult {
  written: WriteResult[];
}

/**
 * Stores each variable of `text` as the secret `prefix + NAME`; an empty value (`FLAG=`) is
 * stored as the empty value.
 * @throws CofferError E_INVALID_NAME naming the variable whose secret name would be invalid,
 *   or when `prefix` is not empty and does not end with `/`; nothing is written then
 */
export function importDotenv(store: Store, text: string | Uint8Array, prefix = ""): DotenvImportResult {
  if (prefix !== "" && !prefix.endsWith("/")) {
    throw new CofferError("E_INVALID_NAME", `prefix ${JSON.stringify(prefix)} must end with "/" (e.g. ${JSON.stringify(`${prefix}/`)}); nothing was imported`);
  }
  const entries = [...parseDotenv(text)].map(([key, value]) => {
    const name = `${prefix}${key}`;
    try {
      assertSecretName(name);
    } catch (err) {
      throw new CofferError("E_INVALID_NAME", `variable ${JSON.stringify(key)} cannot become a secret: ${(err as Error).message}; nothing was imported`);
    }
    // A value from a file is not one this store generated: its generator is forgotten.
    return { name, value, generator: null };
  });
  if (entries.length === 0) throw new CofferError("E_INVALID_VALUE", "the .env file holds no variable; nothing was imported");
  const written = internalsOf(store).write(() => {
    const w = store.setMany(entries);
    store.appendAudit({ action: "import", name: null, version: null, detail: { dotenv: w.length, prefix } });
    return w;
  });
  return { written };
}
