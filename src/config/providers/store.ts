/** The `store` provider's grammar: the local store, no settings. */
import type { ProviderGrammar } from "./grammar.ts";

export interface StoreSpec {
  type: "store";
}

export const storeGrammar: ProviderGrammar<StoreSpec> = {
  type: "store",
  schema: {
    title: "Local store",
    type: "object",
    additionalProperties: false,
    required: ["type"],
    properties: { type: { const: "store", description: "The local encrypted store." } },
  },
  path: "secret-name",
  cliForm: "store",
  spec: () => ({ type: "store" }),
};
