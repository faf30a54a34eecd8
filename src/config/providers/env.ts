/** The `env` provider's grammar: coffer's own environment variables, no settings. */
import type { ProviderGrammar } from "./grammar.ts";

export interface EnvSpec {
  type: "env";
}

export const envGrammar: ProviderGrammar<EnvSpec> = {
  type: "env",
  schema: {
    title: "Environment",
    type: "object",
    additionalProperties: false,
    required: ["type"],
    properties: { type: { const: "env", description: "Values from coffer's own environment variables." } },
  },
  path: "env-name",
  cliForm: "env",
  spec: () => ({ type: "env" }),
};
