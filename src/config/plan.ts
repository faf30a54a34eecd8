/**
 * What `.coffer.yml` says for one environment, checked and resolved of `extends`: the plan that
 * `coffer run`, `coffer load` and `coffer config check` carry out. It names values, never holds them.
 */
import type { ProviderSpec, SecretRef } from "../providers/provider.ts";

/** An environment variable to set to a secret's value. */
export interface EnvDelivery {
  variable: string;
  ref: SecretRef;
  /** where it is declared, for messages */
  line: number;
}

/** A file to write with a secret's value; the variable is set to the file's path. */
export interface FileDelivery {
  variable: string;
  ref: SecretRef;
  /** file mode, e.g. 0o400 (the default) */
  mode: number;
  line: number;
}

/** One environment's plan. */
export interface DeliveryPlan {
  /** the config file's path */
  file: string;
  /** the environment's name */
  environment: string;
  /**
   * the variables on the dangerous list (dangerous-env.ts) the plan sets, which the file allowed
   * with `allowDangerous:`; the caller warns about them
   */
  dangerous?: string[];
  /** every provider the plan may use, by name; always includes `store` */
  providers: Record<string, ProviderSpec>;
  env: EnvDelivery[];
  files: FileDelivery[];
}
