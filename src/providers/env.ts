/**
 * The `env` provider: a variable of coffer's own environment (e.g. a CI secret that coffer
 * passes on under another name or into a file). No settings: `{ type: env }`, `--provider env`.
 */
import { CofferError } from "../errors.ts";
import { assertEnvName } from "../core/names.ts";
import { Secret } from "../core/secret.ts";
import { plainGrammar, type ProviderType } from "./grammar.ts";
import { describeRef, type Provider, type ProviderContext, type SecretRef } from "./provider.ts";

export type EnvSpec = { type: "env" };

/**
 * Creates the `env` provider: `resolve({path: "NAME"})` is `ctx.env.NAME`, version 1,
 * `updatedAt` the time of the read. Keys and versions are not supported (E_CONFIG).
 */
export function createEnvProvider(name: string, _spec: EnvSpec, ctx: ProviderContext): Provider {
  return {
    name,
    resolve(ref: SecretRef): Promise<Secret> {
      return Promise.resolve().then(() => {
        if (ref.key !== undefined || ref.version !== undefined) {
          throw new CofferError("E_CONFIG", `${describeRef(ref)}: the env provider has no keys or versions; name only the variable`);
        }
        assertEnvName(ref.path);
        const value = ctx.env[ref.path];
        if (value === undefined) {
          throw new CofferError("E_NOT_FOUND", `environment variable ${ref.path} is not set (provider "${name}")`);
        }
        return new Secret({ name: ref.path, version: 1, updatedAt: new Date().toISOString() }, Buffer.from(value, "utf8"));
      });
    },
    close(): void {},
  };
}

export const envType: ProviderType<EnvSpec> = {
  ...plainGrammar("env", "Environment", "Values from coffer's own environment variables.", "env-name"),
  create: createEnvProvider,
};
