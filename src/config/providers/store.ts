/** The `store` provider's grammar: the local store, no settings. */
import { plainGrammar } from "./grammar.ts";

export type StoreSpec = { type: "store" };

export const storeGrammar = plainGrammar("store", "Local store", "The local encrypted store.", "secret-name");
