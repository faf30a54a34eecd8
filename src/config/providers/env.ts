/** The `env` provider's grammar: coffer's own environment variables, no settings. */
import { plainGrammar } from "./grammar.ts";

export type EnvSpec = { type: "env" };

export const envGrammar = plainGrammar("env", "Environment", "Values from coffer's own environment variables.", "env-name");
