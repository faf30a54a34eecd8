/**
 * The JSON Schema of `.coffer.yml` (draft 2020-12), printed by `coffer config schema` so editors
 * can complete and check the file. It states the structural rules of `load.ts` with the same
 * patterns; the rules that need the whole file (a `from:` naming a configured provider, `key`
 * only for vault, `extends` targets and cycles, a variable in both env and files) are only in
 * `load.ts`. A test runs both over the same fixtures so they cannot drift.
 */
import { FILE_MODE_PATTERN } from "../core/file-mode.ts";
import { ENV_NAME_PATTERN, SECRET_NAME_MAX, SECRET_NAME_PATTERN } from "../core/names.ts";
import {
  DEFAULT_SERVER_TOKEN_ENV,
  DEFAULT_VAULT_MOUNT,
  ENVIRONMENT_NAME_PATTERN,
  PROVIDER_NAME_PATTERN,
  SERVER_URL_PATTERN,
  VAULT_ADDRESS_PATTERN,
} from "./load.ts";

const refProperties = {
  from: {
    title: "Provider",
    description: "The provider holding the value: `store` (the default, the local store) or a name under `providers:`.",
    type: "string",
    pattern: PROVIDER_NAME_PATTERN,
    default: "store",
  },
  secret: {
    title: "Secret",
    description: "The value's name or path in the provider (a secret name for `store` and `folder`). Synonym of `path`.",
    type: "string",
    minLength: 1,
  },
  path: {
    title: "Path",
    description: "Synonym of `secret`.",
    type: "string",
    minLength: 1,
  },
  key: {
    title: "Key",
    description: "For vault: the key inside the secret's map of keys.",
    type: "string",
    minLength: 1,
  },
  version: {
    title: "Version",
    description: "A specific version, where the provider keeps versions.",
    type: "integer",
    minimum: 1,
  },
} as const;

const exactlyOneOfSecretOrPath = [{ required: ["secret"] }, { required: ["path"] }] as const;

/** The JSON Schema of `.coffer.yml`. */
export const CONFIG_JSON_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "urn:coffer:schema:coffer.yml:1",
  title: "coffer project file (.coffer.yml)",
  description:
    "Which secrets a project's processes get, per environment, as environment variables or files. " +
    "Names values, never holds them.",
  type: "object",
  additionalProperties: false,
  required: ["environments"],
  properties: {
    providers: {
      title: "Providers",
      description: "Where values come from, by name. The local store is always there as `store`.",
      type: "object",
      propertyNames: { pattern: PROVIDER_NAME_PATTERN, not: { const: "store" } },
      additionalProperties: { $ref: "#/$defs/provider" },
    },
    environments: {
      title: "Environments",
      description: "Each environment's env vars and files, by environment name.",
      type: "object",
      minProperties: 1,
      propertyNames: { pattern: ENVIRONMENT_NAME_PATTERN },
      additionalProperties: { $ref: "#/$defs/environment" },
    },
    allowDangerous: {
      title: "Allowed dangerous variables",
      description:
        "Variables on coffer's dangerous list (PATH, LD_*, NODE_OPTIONS, proxies, …: they change how programs load or run) " +
        "that this file may set in env: or files:; each is refused unless named here, and coffer warns when it sets one.",
      type: "array",
      items: { type: "string", pattern: ENV_NAME_PATTERN },
    },
    default: {
      title: "Default environment",
      description: "The environment used when neither --env nor COFFER_ENV chooses one.",
      type: "string",
      pattern: ENVIRONMENT_NAME_PATTERN,
    },
  },
  $defs: {
    secretName: {
      title: "Secret name",
      description: "A secret in the local store: path-like segments of [A-Za-z0-9_.-], each starting with a letter or digit.",
      type: "string",
      pattern: SECRET_NAME_PATTERN,
      maxLength: SECRET_NAME_MAX,
      not: { pattern: "\\.\\." },
    },
    provider: {
      title: "Provider",
      type: "object",
      required: ["type"],
      oneOf: [
        {
          title: "Local store",
          type: "object",
          additionalProperties: false,
          required: ["type"],
          properties: { type: { const: "store", description: "The local encrypted store." } },
        },
        {
          title: "Folder",
          type: "object",
          additionalProperties: false,
          required: ["type", "dir"],
          properties: {
            type: { const: "folder", description: "One file per secret in a directory." },
            dir: { type: "string", pattern: "^/", description: "The directory, an absolute path." },
          },
        },
        {
          title: "Environment",
          type: "object",
          additionalProperties: false,
          required: ["type"],
          properties: { type: { const: "env", description: "Values from coffer's own environment variables." } },
        },
        {
          title: "Vault",
          type: "object",
          additionalProperties: false,
          required: ["type", "address"],
          properties: {
            type: { const: "vault", description: "HashiCorp Vault / OpenBao KV v2 over HTTP with a token." },
            address: { type: "string", pattern: VAULT_ADDRESS_PATTERN, description: "An http:// or https:// URL." },
            mount: {
              type: "string",
              pattern: SECRET_NAME_PATTERN,
              default: DEFAULT_VAULT_MOUNT,
              description: "The KV v2 mount.",
            },
            namespace: { type: "string", pattern: SECRET_NAME_PATTERN, description: "A Vault Enterprise namespace." },
            tokenEnv: {
              type: "string",
              pattern: ENV_NAME_PATTERN,
              default: "VAULT_TOKEN",
              description: "The environment variable holding the token.",
            },
          },
        },
        {
          title: "Coffer server",
          type: "object",
          additionalProperties: false,
          required: ["type", "url"],
          properties: {
            type: { const: "server", description: "A coffer team server (`coffer serve`) over HTTP with an API token." },
            url: {
              type: "string",
              pattern: SERVER_URL_PATTERN,
              description: "The server's http:// or https:// URL, without credentials, query or fragment.",
            },
            tokenEnv: {
              type: "string",
              pattern: ENV_NAME_PATTERN,
              default: DEFAULT_SERVER_TOKEN_ENV,
              description: "The environment variable holding the API token.",
            },
          },
        },
      ],
    },
    environment: {
      title: "Environment",
      type: "object",
      additionalProperties: false,
      properties: {
        extends: {
          title: "Extends",
          description: "Another environment whose entries this one starts from; its own entries replace the parent's.",
          type: "string",
          pattern: ENVIRONMENT_NAME_PATTERN,
        },
        env: {
          title: "Environment variables",
          description: "Variable name → the secret whose value it is set to.",
          type: "object",
          propertyNames: { pattern: ENV_NAME_PATTERN },
          additionalProperties: { $ref: "#/$defs/envRef" },
        },
        files: {
          title: "Files",
          description: "Variable name → the secret written to a file; the variable is set to the file's path.",
          type: "object",
          propertyNames: { pattern: ENV_NAME_PATTERN },
          additionalProperties: { $ref: "#/$defs/fileRef" },
        },
      },
    },
    envRef: {
      title: "Reference",
      description: "A secret name in the local store, or { from, secret, key, version }.",
      oneOf: [
        { $ref: "#/$defs/secretName" },
        {
          type: "object",
          additionalProperties: false,
          properties: refProperties,
          oneOf: exactlyOneOfSecretOrPath,
        },
      ],
    },
    fileRef: {
      title: "File reference",
      description: "A secret name in the local store, or { from, secret, key, version, mode }.",
      oneOf: [
        { $ref: "#/$defs/secretName" },
        {
          type: "object",
          additionalProperties: false,
          properties: {
            ...refProperties,
            mode: {
              title: "File mode",
              description:
                'Octal, as a quoted string ("0400", "600"): the owner may read, group and others may not write. Default "0400".',
              type: "string",
              pattern: FILE_MODE_PATTERN,
              default: "0400",
            },
          },
          oneOf: exactlyOneOfSecretOrPath,
        },
      ],
    },
  },
} as const;
