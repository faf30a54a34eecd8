/**
 * The `vault` provider's grammar: HashiCorp Vault / OpenBao KV v2, `{ type: vault, address,
 * mount?, namespace?, tokenEnv? }`, `--provider vault:https://host:8200[#mount]`.
 */
import { SECRET_NAME_PATTERN } from "../../core/names.ts";
import { tokenTransportRule } from "../../core/token-transport.ts";
import { show } from "../yaml-checker.ts";
import { HTTP_URL_PATTERN, isHttpUrl, type ProviderGrammar } from "./grammar.ts";

export interface VaultSpec {
  type: "vault";
  address: string;
  mount: string;
  namespace?: string;
  tokenEnv?: string;
}

/** The default KV v2 mount. */
export const DEFAULT_VAULT_MOUNT = "secret";
const URL_RULE = "must be an http:// or https:// URL";
const MOUNT_RULE = `must match ${SECRET_NAME_PATTERN}`;

const addressRule = (s: string): string | undefined => (!isHttpUrl(s) ? URL_RULE : tokenTransportRule(s));
const mountRule = (s: string): string | undefined => (new RegExp(SECRET_NAME_PATTERN).test(s) && !s.includes("..") ? undefined : MOUNT_RULE);

export const vaultGrammar: ProviderGrammar<VaultSpec> = {
  type: "vault",
  schema: {
    title: "Vault",
    type: "object",
    additionalProperties: false,
    required: ["type", "address"],
    properties: {
      type: { const: "vault", description: "HashiCorp Vault / OpenBao KV v2 over HTTP with a token." },
      address: {
        type: "string",
        pattern: HTTP_URL_PATTERN,
        description: "An http:// or https:// URL.",
        "x-format": "vault-address",
        "x-needs": "an http:// or https:// URL",
      },
      mount: { type: "string", pattern: SECRET_NAME_PATTERN, default: DEFAULT_VAULT_MOUNT, description: "The KV v2 mount.", "x-format": "mount" },
      namespace: { type: "string", pattern: SECRET_NAME_PATTERN, description: "A Vault Enterprise namespace.", "x-format": "mount" },
      tokenEnv: { $ref: "#/$defs/envName", default: "VAULT_TOKEN", description: "The environment variable holding the token." },
    },
  },
  agentProperties: { tokenFile: { $ref: "#/$defs/absolutePath", description: "A file holding the token, read at start." } },
  formats: { "vault-address": addressRule, mount: mountRule },
  path: "text",
  keys: true,
  cliForm: "vault:https://host:8200[#mount]",
  fromCli(rest) {
    const hash = rest.indexOf("#");
    const address = hash < 0 ? rest : rest.slice(0, hash);
    const mount = hash < 0 ? DEFAULT_VAULT_MOUNT : rest.slice(hash + 1);
    const bad = addressRule(address);
    if (bad === URL_RULE) return { rule: `vault address ${show(address)} ${URL_RULE}, e.g. vault:https://vault.internal:8200#secret` };
    if (mountRule(mount) !== undefined) return { rule: `vault mount ${show(mount)} (after #) ${MOUNT_RULE}` };
    if (bad !== undefined) return { rule: `it ${bad}` };
    return { ok: { type: "vault", address, mount } };
  },
  spec: (s) => ({
    type: "vault",
    address: s["address"] as string,
    mount: (s["mount"] as string | undefined) ?? DEFAULT_VAULT_MOUNT,
    ...(s["namespace"] !== undefined && { namespace: s["namespace"] as string }),
    ...(s["tokenEnv"] !== undefined && { tokenEnv: s["tokenEnv"] as string }),
  }),
};
