/**
 * The JSON Schema of `.coffer.yml` (draft 2020-12): the single source of the file's structure.
 * `load.ts` checks files against it (schema-check.ts), and `coffer config schema` prints it
 * without coffer's `x-` message keywords ({@link CONFIG_JSON_SCHEMA}) so editors can complete and
 * check the file. The rules that need the whole file (a `from:` naming a configured provider,
 * `key` only for vault, `extends` targets and cycles, a variable in both env and files) are code
 * in `load.ts`. Each provider's entry comes from its grammar (src/providers/).
 */
import { FILE_MODE_PATTERN } from "../core/file-mode.ts";
import { ENV_NAME_PATTERN, SECRET_NAME_MAX, SECRET_NAME_PATTERN, SECRET_NAME_RULE } from "../core/names.ts";
import { PROVIDERS } from "../providers/index.ts";
import { publicSchema, type Schema } from "./schema-check.ts";

/** A provider's name in `providers:`. */
export const PROVIDER_NAME_PATTERN = "^[a-z][a-z0-9_-]*$";
/** An environment's name in `environments:`. */
export const ENVIRONMENT_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";

/** The `$defs` every config schema shares (names, paths, provider entries). */
export const SHARED_DEFS = {
  envName: {
    type: "string",
    pattern: ENV_NAME_PATTERN,
    "x-rule": "{where:}environment variable name {value} must match {pattern}",
  },
  absolutePath: { type: "string", pattern: "^/", "x-rule": "{where} {value} must be an absolute path (starting with /)" },
  secretName: {
    title: "Secret name",
    description: "A secret in the local store: path-like segments of [A-Za-z0-9_.-], each starting with a letter or digit.",
    type: "string",
    pattern: SECRET_NAME_PATTERN,
    maxLength: SECRET_NAME_MAX,
    not: { pattern: "\\.\\." },
    "x-format": "secret-name",
    "x-rule": `{where:}invalid secret name {value}: ${SECRET_NAME_RULE}`,
  },
  allowDangerous: {
    title: "Allowed dangerous variables",
    description:
      "Variables on coffer's dangerous list (PATH, LD_*, NODE_OPTIONS, proxies, …: they change how programs load or run) " +
      "that may be set here; each is refused unless named in this list, and coffer warns when it sets one.",
    type: "array",
    items: { type: "string", pattern: ENV_NAME_PATTERN, "x-format": "dangerous-env-name", "x-rule": "{where}: {rule}" },
    "x-expect": "a list of variable names",
  },
  provider: {
    title: "Provider",
    oneOf: PROVIDERS.map((g) => g.schema),
  },
} as const satisfies Schema;

const refProperties = {
  from: {
    title: "Provider",
    description: "The provider holding the value: `store` (the default, the local store) or a name under `providers:`.",
    type: "string",
    default: "store",
  },
  secret: {
    title: "Secret",
    description: "The value's name or path in the provider (a secret name for `store` and `folder`). Synonym of `path`.",
    type: "string",
    minLength: 1,
  },
  path: { title: "Path", description: "Synonym of `secret`.", type: "string", minLength: 1 },
  key: { title: "Key", description: "For vault, store and server: the key inside the secret's map of keys (a store or server value that is a JSON object, as the server's Vault API writes it).", type: "string", minLength: 1 },
  version: { title: "Version", description: "A specific version, where the provider keeps versions.", type: "integer", minimum: 1 },
} as const;

const exactlyOneOfSecretOrPath = [{ required: ["secret"] }, { required: ["path"] }] as const;

const ref = (file: boolean): Schema => ({
  title: file ? "File reference" : "Reference",
  description: `A secret name in the local store, or { from, secret, key, version${file ? ", mode" : ""} }.`,
  "x-expect": `a secret name or { secret, from?, key?, version?${file ? ", mode?" : ""} }`,
  oneOf: [
    { $ref: "#/$defs/secretName" },
    {
      type: "object",
      additionalProperties: false,
      "x-sep": ": ",
      properties: {
        ...refProperties,
        ...(!file && { mode: { not: {}, "x-rule": "{where} only applies to files:, not env:" } }),
        ...(file && {
          mode: {
            title: "File mode",
            description: 'Octal, as a quoted string ("0400", "600"): the owner may read, group and others may not write. Default "0400".',
            type: "string",
            pattern: FILE_MODE_PATTERN,
            default: "0400",
            "x-format": "file-mode",
          },
        }),
      },
      oneOf: exactlyOneOfSecretOrPath,
    },
  ],
});

const variables = (title: string, description: string, item: string): Schema => ({
  title,
  description,
  type: "object",
  propertyNames: { $ref: "#/$defs/envName" },
  additionalProperties: { $ref: `#/$defs/${item}` },
});

/** The schema with coffer's message keywords, as the checker reads it. */
export const CONFIG_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "urn:coffer:schema:coffer.yml:1",
  title: "coffer project file (.coffer.yml)",
  description: "Which secrets a project's processes get, per environment, as environment variables or files. Names values, never holds them.",
  type: "object",
  additionalProperties: false,
  required: ["environments"],
  properties: {
    providers: {
      title: "Providers",
      description: "Where values come from, by name. The local store is always there as `store`.",
      type: "object",
      propertyNames: {
        pattern: PROVIDER_NAME_PATTERN,
        not: { const: "store", "x-rule": 'provider name "store" is reserved: the local store is always there as store; remove it or choose another name' },
        "x-rule": "provider name {value} must match {pattern}",
      },
      additionalProperties: { $ref: "#/$defs/provider" },
      "x-item": "provider {key}",
    },
    environments: {
      title: "Environments",
      description: "Each environment's env vars and files, by environment name.",
      type: "object",
      minProperties: 1,
      propertyNames: { pattern: ENVIRONMENT_NAME_PATTERN, "x-rule": "environment name {value} must match {pattern}" },
      additionalProperties: { $ref: "#/$defs/environment" },
      "x-item": "environment {key}",
      "x-needs": "a map of environment names to their env: and files:",
      "x-empty": "{where} is empty; define at least one environment",
    },
    allowDangerous: { $ref: "#/$defs/allowDangerous" },
    default: {
      title: "Default environment",
      description: "The environment used when neither --env nor COFFER_ENV chooses one.",
      type: "string",
      pattern: ENVIRONMENT_NAME_PATTERN,
    },
  },
  $defs: {
    ...SHARED_DEFS,
    environment: {
      title: "Environment",
      type: "object",
      additionalProperties: false,
      properties: {
        env: variables("Environment variables", "Variable name → the secret whose value it is set to.", "envRef"),
        files: variables("Files", "Variable name → the secret written to a file; the variable is set to the file's path.", "fileRef"),
        extends: {
          title: "Extends",
          description: "Another environment whose entries this one starts from; its own entries replace the parent's.",
          type: "string",
          pattern: ENVIRONMENT_NAME_PATTERN,
          "x-rule": "{where} {value}: environment names must match {pattern}",
        },
      },
    },
    envRef: ref(false),
    fileRef: ref(true),
  },
};

/** The JSON Schema of `.coffer.yml`, as `coffer config schema` prints it. */
export const CONFIG_JSON_SCHEMA = publicSchema(CONFIG_SCHEMA) as typeof CONFIG_SCHEMA & { $schema: string; $id: string; additionalProperties: false };
