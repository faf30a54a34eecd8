import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { parse } from "yaml";
import { findConfig, listEnvironments, loadConfig, parseConfig, planFor } from "../../src/config/load.ts";
import type { ProjectConfig } from "../../src/config/load.ts";
import type { DeliveryPlan } from "../../src/config/plan.ts";
import { CONFIG_JSON_SCHEMA } from "../../src/config/schema.ts";
import { configError, tempDir } from "../helpers.ts";

const F = ".coffer.yml";

/** The example, with the `…` filled in. */
const EXAMPLE = `providers:                      # optional; the local store is always there as \`store\`
  vault: { type: vault, address: http://127.0.0.1:8200, mount: secret }   # token from VAULT_TOKEN
environments:
  dev:
    env:
      DATABASE_URL: app/db/url                  # a secret in the default provider
      STRIPE_KEY: { from: vault, path: payments/stripe, key: api_key }
    files:
      TLS_KEY: { secret: app/tls/key, mode: "0400" }   # $TLS_KEY is the file's path
      CA_CERT: app/tls/ca                       # a plain name is shorthand for { secret: … }
  ci: { extends: dev, env: { DATABASE_URL: ci/db/url, CA_CERT: { secret: ci/tls/ca, version: 3 } } }
`;

/** Every feature once. */
const FULL = `default: local
providers:
  vault:
    type: vault
    address: https://vault.example.com:8200
    mount: kv/team
    namespace: admin/team
    tokenEnv: TEAM_VAULT_TOKEN
  bao: { type: vault, address: "http://[::1]:8200" }
  secrets_dir: { type: folder, dir: /run/secrets }
  os: { type: env }
  local-store: { type: store }
environments:
  local:
    env:
      A: app/a
      B: { secret: app/b, version: 2 }
      C: { from: os, path: HOME_TOKEN }
      D: { from: secrets_dir, secret: db/password }
      E: { from: local-store, path: x.y/z-1 }
    files:
      K1: { secret: app/k1, mode: "600" }
      K2: { from: bao, path: "some path/with spaces", key: pem, mode: "0440", version: 7 }
      K3: app/k3
  staging.eu-1:
    extends: local
    env: {}
    files: {}
  prod_2: {}
`;

/** Coffer-server providers (provider type `server`). */
const SERVER = `providers:
  team: { type: server, url: https://coffer.internal:8200 }
  team2: { type: server, url: "http://[::1]:8200/coffer/", tokenEnv: TEAM2_TOKEN }
environments:
  dev:
    env:
      DB: { from: team, secret: app/db/password }
    files:
      TLS: { from: team2, path: app/tls/key, version: 2 }
`;

const VALID = { EXAMPLE, FULL, SERVER };


const load = (text: string): ProjectConfig => parseConfig(text, F);
const envs = (body: string): string => `environments:\n  dev:\n${body}`;

test("the issue's example: dev", () => {
  const plan = planFor(load(EXAMPLE), "dev", {});
  assert.deepEqual(plan, {
    file: F,
    environment: "dev",
    providers: {
      store: { type: "store" },
      vault: { type: "vault", address: "http://127.0.0.1:8200", mount: "secret" },
    },
    env: [
      { variable: "DATABASE_URL", ref: { provider: "store", path: "app/db/url" }, line: 6 },
      { variable: "STRIPE_KEY", ref: { provider: "vault", path: "payments/stripe", key: "api_key" }, line: 7 },
    ],
    files: [
      { variable: "TLS_KEY", ref: { provider: "store", path: "app/tls/key" }, mode: 0o400, line: 9 },
      { variable: "CA_CERT", ref: { provider: "store", path: "app/tls/ca" }, mode: 0o400, line: 10 },
    ],
  } satisfies DeliveryPlan);
});

test("the issue's example: ci extends dev, overriding per variable and moving CA_CERT from files to env", () => {
  const plan = planFor(load(EXAMPLE), "ci", {});
  assert.equal(plan.environment, "ci");
  assert.deepEqual(plan.env, [
    { variable: "DATABASE_URL", ref: { provider: "store", path: "ci/db/url" }, line: 11 },
    { variable: "STRIPE_KEY", ref: { provider: "vault", path: "payments/stripe", key: "api_key" }, line: 7 },
    { variable: "CA_CERT", ref: { provider: "store", path: "ci/tls/ca", version: 3 }, line: 11 },
  ]);
  assert.deepEqual(plan.files, [{ variable: "TLS_KEY", ref: { provider: "store", path: "app/tls/key" }, mode: 0o400, line: 9 }]);
  assert.deepEqual(Object.keys(plan.providers), ["store", "vault"]);
});

test("every feature: providers, defaults, synonyms, modes, versions; plans name only the providers they use", () => {
  const config = load(FULL);
  assert.deepEqual(listEnvironments(config), ["local", "staging.eu-1", "prod_2"]);
  assert.equal(config.defaultEnvironment, "local");
  const plan = planFor(config, undefined, {});
  assert.equal(plan.environment, "local");
  assert.deepEqual(plan.providers, {
    store: { type: "store" },
    os: { type: "env" },
    secrets_dir: { type: "folder", dir: "/run/secrets" },
    "local-store": { type: "store" },
    bao: { type: "vault", address: "http://[::1]:8200", mount: "secret" },
  });
  assert.deepEqual(config.providers.get("vault"), {
    type: "vault",
    address: "https://vault.example.com:8200",
    mount: "kv/team",
    namespace: "admin/team",
    tokenEnv: "TEAM_VAULT_TOKEN",
  });
  assert.deepEqual(
    plan.env.map((d) => [d.variable, d.ref, d.line]),
    [
      ["A", { provider: "store", path: "app/a" }, 16],
      ["B", { provider: "store", path: "app/b", version: 2 }, 17],
      ["C", { provider: "os", path: "HOME_TOKEN" }, 18],
      ["D", { provider: "secrets_dir", path: "db/password" }, 19],
      ["E", { provider: "local-store", path: "x.y/z-1" }, 20],
    ],
  );
  assert.deepEqual(
    plan.files.map((d) => [d.variable, d.ref, d.mode, d.line]),
    [
      ["K1", { provider: "store", path: "app/k1" }, 0o600, 22],
      ["K2", { provider: "bao", path: "some path/with spaces", key: "pem", version: 7 }, 0o440, 23],
      ["K3", { provider: "store", path: "app/k3" }, 0o400, 24],
    ],
  );
  assert.deepEqual(planFor(config, "staging.eu-1", {}).files.length, 3);
  assert.deepEqual(planFor(config, "prod_2", {}), { file: F, environment: "prod_2", providers: { store: { type: "store" } }, env: [], files: [] });
});

test("loadConfig reads a file and names it as given in messages", (t) => {
  const dir = tempDir(t);
  const file = join(dir, ".coffer.yml");
  writeFileSync(file, EXAMPLE);
  assert.equal(planFor(loadConfig(file), "dev", {}).file, file);
  writeFileSync(file, envs("    env:\n      1BAD: app/x\n"));
  assert.equal(configError(() => loadConfig(file)), `${file}:4: environment variable name "1BAD" must match ^[A-Za-z_][A-Za-z0-9_]*$`);
  assert.match(configError(() => loadConfig(join(dir, "missing.yml"))), /missing\.yml: cannot read the config file \(ENOENT\)/);
});

test("errors name file, line and rule (exact messages)", () => {
  const cases: [string, string][] = [
    [envs("    env:\n      1BAD: app/x\n"), `${F}:4: environment variable name "1BAD" must match ^[A-Za-z_][A-Za-z0-9_]*$`],
    [envs("    vars: { A: b }\n"), `${F}:3: unknown key "vars" in environment "dev"; allowed: env, files, extends`],
    [envs("    env:\n      A: { secret: a, scret: b }\n"), `${F}:4: unknown key "scret" in A; allowed: from, secret, path, key, version`],
    [
      envs("    env:\n      A: { from: vault, path: x }\n"),
      `${F}:4: A: from: "vault" is not a configured provider; providers: store`,
    ],
    [
      envs('    files:\n      K: { secret: k, mode: "0777" }\n'),
      `${F}:4: K: mode "0777" must not let group or others write (e.g. "0400" or "0440")`,
    ],
    [
      envs('    files:\n      K:\n        secret: k\n        mode: "0660"\n'),
      `${F}:6: K: mode "0660" must not let group or others write (e.g. "0400" or "0440")`,
    ],
    [envs('    files:\n      K: { secret: k, mode: "200" }\n'), `${F}:4: K: mode "200" must let the owner read (e.g. "0400" or "0440")`],
    [
      "environments:\n  a: { extends: c }\n  b: { extends: a }\n  c: { extends: b }\n",
      `${F}:2: extends cycle: a → c → b → a; an environment may not extend itself, directly or through others`,
    ],
    [
      "environments:\n  a: { env: { X: x } }\n  b:\n    extends: nope\n",
      `${F}:4: environment "b" extends unknown environment "nope"; environments: a, b`,
    ],
    [
      "environments:\n  dev: [\n",
      `${F}:3: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    ],
    [envs("    env:\n      A: a\n      A: b\n"), `${F}:5: YAML: Map keys must be unique`],
    ["environments: { dev: {} }\n---\nx: 1\n", `${F}:2: YAML: the file must hold one YAML document (no second ---)`],
  ];
  for (const [text, message] of cases) assert.equal(configError(() => load(text)), message, text);
});

test("every problem is reported at once, sorted by line, on a single first line", () => {
  const text = `providers:
  Vault: { type: env }
  v: { type: vault, address: ftp://x }
environments:
  dev:
    env:
      1BAD: app/x
      OK: { from: nope, secret: a }
    files:
      K: { secret: k, mode: "0666", colour: red }
  -x: {}
`;
  const message = configError(() => load(text));
  assert.equal(message.split("\n").length, 8, "one problem a line");
  assert.equal(
    message,
    `${F}: 7 problems:\n  ` +
      [
        `${F}:2: provider name "Vault" must match ^[a-z][a-z0-9_-]*$`,
        `${F}:3: provider "v" address "ftp://x" must be an http:// or https:// URL`,
        `${F}:7: environment variable name "1BAD" must match ^[A-Za-z_][A-Za-z0-9_]*$`,
        `${F}:8: OK: from: "nope" is not a configured provider; providers: store`,
        `${F}:10: unknown key "colour" in K; allowed: from, secret, path, key, version, mode`,
        `${F}:10: K: mode "0666" must not let group or others write (e.g. "0400" or "0440")`,
        `${F}:11: environment name "-x" must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$`,
      ].join("\n  "),
  );
});

/**
 * Invalid files with exactly one problem each, broken for a structural reason: the validator
 * and the JSON Schema must both refuse them (so the two cannot drift).
 */
const STRUCTURAL: [string, string, RegExp][] = [
  ["bad variable name", envs("    env:\n      1BAD: a\n"), /environment variable name "1BAD"/],
  ["numeric variable name", envs("    env:\n      123: a\n"), /environment variable name "123"/],
  ["bad files variable name", envs("    files:\n      A-B: a\n"), /environment variable name "A-B"/],
  ["unknown top-level key", "environments: { dev: {} }\nextra: 1\n", /unknown key "extra" in the top level/],
  ["unknown environment key", envs("    vars: {}\n"), /unknown key "vars"/],
  ["unknown ref key", envs("    env:\n      A: { secret: a, scret: b }\n"), /unknown key "scret"/],
  ["mode in env", envs('    env:\n      A: { secret: a, mode: "0400" }\n'), /mode only applies to files/],
  ["unknown provider key", "providers:\n  v: { type: vault, address: https://x, token: t }\nenvironments: { dev: {} }\n", /unknown key "token"/],
  ["env provider with dir", "providers:\n  e: { type: env, dir: /x }\nenvironments: { dev: {} }\n", /unknown key "dir"/],
  ["store redefined", "providers:\n  store: { type: store }\nenvironments: { dev: {} }\n", /provider name "store" is reserved/],
  ["bad provider name", "providers:\n  Vault: { type: env }\nenvironments: { dev: {} }\n", /provider name "Vault" must match/],
  ["unknown provider type", "providers:\n  x: { type: s3 }\nenvironments: { dev: {} }\n", /type "s3" is unknown/],
  ["provider without type", "providers:\n  x: { dir: /x }\nenvironments: { dev: {} }\n", /needs type/],
  ["provider not a map", "providers:\n  x: env\nenvironments: { dev: {} }\n", /provider "x" must be a map/],
  ["relative folder dir", "providers:\n  f: { type: folder, dir: secrets }\nenvironments: { dev: {} }\n", /must be an absolute path/],
  ["folder without dir", "providers:\n  f: { type: folder }\nenvironments: { dev: {} }\n", /needs dir/],
  ["vault without address", "providers:\n  v: { type: vault }\nenvironments: { dev: {} }\n", /needs address/],
  ["vault ftp address", "providers:\n  v: { type: vault, address: ftp://x }\nenvironments: { dev: {} }\n", /http:\/\/ or https:\/\/ URL/],
  ["vault bad tokenEnv", "providers:\n  v: { type: vault, address: https://x, tokenEnv: 1T }\nenvironments: { dev: {} }\n", /tokenEnv/],
  ["server without url", "providers:\n  s: { type: server }\nenvironments: { dev: {} }\n", /provider "s" \(type server\) needs url/],
  ["server ftp url", "providers:\n  s: { type: server, url: ftp://x }\nenvironments: { dev: {} }\n", /url "ftp:\/\/x" must be an http:\/\/ or https:\/\/ URL/],
  ["server url with credentials", "providers:\n  s: { type: server, url: \"https://u:p@x\" }\nenvironments: { dev: {} }\n", /without credentials/],
  ["server url with a query", "providers:\n  s: { type: server, url: \"https://x/?a=1\" }\nenvironments: { dev: {} }\n", /without credentials, query or fragment/],
  ["server url with a fragment", "providers:\n  s: { type: server, url: \"https://x/#a\" }\nenvironments: { dev: {} }\n", /without credentials, query or fragment/],
  ["server bad tokenEnv", "providers:\n  s: { type: server, url: https://x, tokenEnv: 1T }\nenvironments: { dev: {} }\n", /tokenEnv: environment variable name "1T"/],
  ["server with mount", "providers:\n  s: { type: server, url: https://x, mount: kv }\nenvironments: { dev: {} }\n", /unknown key "mount" in provider "s" \(type server\); allowed: type, url, tokenEnv/],
  ["vault bad mount", "providers:\n  v: { type: vault, address: https://x, mount: /abs }\nenvironments: { dev: {} }\n", /mount "\/abs"/],
  ["bad environment name", "environments:\n  -dev: {}\n", /environment name "-dev"/],
  ["environment not a map", "environments:\n  dev: [a]\n", /environment "dev" must be a map, got a list/],
  ["null environment", "environments:\n  dev:\n", /environment "dev" must be a map, got null/],
  ["bad extends name", "environments:\n  dev: { extends: -x }\n", /extends "-x"/],
  ["secret and path", envs("    env:\n      A: { secret: a, path: b }\n"), /either secret or path/],
  ["neither secret nor path", envs("    env:\n      A: { from: store }\n"), /needs secret/],
  ["bad shorthand secret name", envs("    env:\n      A: ../x\n"), /invalid secret name "..\/x"/],
  ["secret name too long", envs(`    env:\n      A: ${"x".repeat(257)}\n`), /invalid secret name/],
  ["number as ref", envs("    env:\n      A: 42\n"), /got number 42 \(quote it: "42"\)/],
  ["null ref", envs("    env:\n      A:\n"), /got null/],
  ["list ref", envs("    env:\n      A: [a]\n"), /got a list/],
  ["version 0", envs("    env:\n      A: { secret: a, version: 0 }\n"), /version must be a positive integer/],
  ["version 1.5", envs("    env:\n      A: { secret: a, version: 1.5 }\n"), /version must be a positive integer/],
  ["version string", envs('    env:\n      A: { secret: a, version: "2" }\n'), /version must be a positive integer/],
  ["empty key", envs('    env:\n      A: { secret: a, key: "" }\n'), /key must not be empty/],
  ["mode 0777", envs('    files:\n      K: { secret: k, mode: "0777" }\n'), /group or others write/],
  ["mode 0660", envs('    files:\n      K: { secret: k, mode: "0660" }\n'), /group or others write/],
  ["mode 0602", envs('    files:\n      K: { secret: k, mode: "0602" }\n'), /group or others write/],
  ["mode 0200", envs('    files:\n      K: { secret: k, mode: "0200" }\n'), /owner read/],
  ["mode 4400", envs('    files:\n      K: { secret: k, mode: "4400" }\n'), /setuid/],
  ["mode rw", envs('    files:\n      K: { secret: k, mode: "rw" }\n'), /3-4 octal digits/],
  ["mode 08", envs('    files:\n      K: { secret: k, mode: "0800" }\n'), /3-4 octal digits/],
  ["mode unquoted", envs("    files:\n      K: { secret: k, mode: 0400 }\n"), /unquoted 0400 is a number/],
  ["default not a string", "default: [a]\nenvironments: { dev: {} }\n", /default must be a string/],
  ["empty file", "", /the file is empty/],
  ["comment-only file", "# nothing here\n", /the file is empty/],
  ["top level a list", "- a\n", /the top level must be a map, got a list/],
  ["no environments", "providers: {}\n", /missing environments/],
  ["empty environments", "environments: {}\n", /environments is empty/],
  ["env not a map", envs("    env: [a]\n"), /env must be a map/],
];

/** Invalid for reasons that need the whole file: the validator refuses them, the schema cannot. */
const SEMANTIC: [string, string, RegExp][] = [
  ["unknown provider in from", envs("    env:\n      A: { from: vault, path: x }\n"), /not a configured provider/],
  ["bad secret name in a ref object", envs("    env:\n      A: { secret: a//b }\n"), /invalid secret name "a\/\/b"/],
  ["bad env-provider name", "providers:\n  os: { type: env }\n" + envs("    env:\n      A: { from: os, path: a-b }\n"), /"a-b" \(provider os\)/],
  ["bad secret name on a server", "providers:\n  s: { type: server, url: https://x }\n" + envs("    env:\n      A: { from: s, path: ../x }\n"), /invalid secret name "..\/x"/],
  ["key on an env ref", "providers:\n  os: { type: env }\n" + envs("    env:\n      A: { from: os, path: A_B, key: k }\n"), /key only applies to providers whose values are maps of keys: vault, store and server \(provider os is type env\)/],
  ["variable in env and files", envs("    env: { A: a }\n    files: { A: a }\n"), /variable A is in both env and files/],
  ["unknown parent", "environments:\n  dev: { extends: prod }\n", /extends unknown environment "prod"/],
  ["self cycle", "environments:\n  dev: { extends: dev }\n", /extends cycle: dev → dev/],
  ["unknown default", "default: prod\nenvironments: { dev: {} }\n", /default names unknown environment "prod"; environments: dev/],
];

test("structural problems: one problem each, refused by the validator and by the JSON Schema alike", () => {
  const ajv = new Ajv2020.default({ strict: true, strictRequired: false, allErrors: true });
  const validate = ajv.compile(CONFIG_JSON_SCHEMA);
  for (const [name, text] of Object.values(VALID).map((v, i) => [`valid ${i}`, v] as const)) {
    load(text);
    assert.ok(validate(parse(text)), `${name}: ${ajv.errorsText(validate.errors)}`);
  }
  for (const [name, text, rule] of STRUCTURAL) {
    const message = configError(() => load(text));
    assert.match(message, new RegExp(`^${F}:\\d+: `), `${name}: one problem: ${message}`);
    assert.match(message, rule, name);
    assert.equal(validate(parse(text)), false, `${name}: the schema accepts what the validator refuses`);
  }
  for (const [name, text, rule] of SEMANTIC) {
    assert.match(configError(() => load(text)), rule, name);
    assert.ok(validate(parse(text)), `${name}: structurally fine: ${ajv.errorsText(validate.errors)}`);
  }
});

test("server providers: url and tokenEnv kept, the plan names them, exact messages", () => {
  const config = load(SERVER);
  assert.deepEqual(config.providers.get("team"), { type: "server", url: "https://coffer.internal:8200" });
  assert.deepEqual(config.providers.get("team2"), { type: "server", url: "http://[::1]:8200/coffer/", tokenEnv: "TEAM2_TOKEN" });
  const plan = planFor(config, "dev");
  assert.deepEqual(plan.providers, {
    store: { type: "store" },
    team: { type: "server", url: "https://coffer.internal:8200" },
    team2: { type: "server", url: "http://[::1]:8200/coffer/", tokenEnv: "TEAM2_TOKEN" },
  });
  assert.deepEqual(plan.files[0]?.ref, { provider: "team2", path: "app/tls/key", version: 2 });
  assert.equal(
    configError(() => load("providers:\n  s: { type: server, url: \"https://ci:hunter2@x\" }\nenvironments: { dev: {} }\n")),
    `${F}:2: provider "s" url "https://ci:hunter2@x" must be an http:// or https:// URL without credentials, query or fragment, e.g. https://coffer.internal:8200`,
  );
  assert.equal(
    configError(() => load("providers:\n  s: { type: server }\nenvironments: { dev: {} }\n")),
    `${F}:2: provider "s" (type server) needs url: the http:// or https:// URL of a coffer server`,
  );
  assert.equal(
    configError(() => load("providers:\n  x: { type: s3 }\nenvironments: { dev: {} }\n")),
    `${F}:2: provider "x" type "s3" is unknown; types: store, folder, env, vault, server`,
  );
});

test("the schema is draft 2020-12 with an $id, titles and closed objects", () => {
  assert.equal(CONFIG_JSON_SCHEMA.$schema, "https://json-schema.org/draft/2020-12/schema");
  assert.ok(CONFIG_JSON_SCHEMA.$id.length > 0);
  assert.equal(CONFIG_JSON_SCHEMA.additionalProperties, false);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(CONFIG_JSON_SCHEMA)));
});

test("extends: chains of three, moves between env and files, parent's entries first", () => {
  const config = load(`environments:
  base:
    env: { A: a, B: b }
    files: { C: c }
  mid:
    extends: base
    files: { A: a2 }
    env: { C: c2, D: d }
  top:
    extends: mid
    env: { B: b3, A: a3 }
`);
  const top = planFor(config, "top", {});
  assert.deepEqual(
    top.env.map((d) => [d.variable, d.ref.path, d.line]),
    [
      ["B", "b3", 11],
      ["C", "c2", 8],
      ["D", "d", 8],
      ["A", "a3", 11],
    ],
  );
  assert.deepEqual(top.files, []);
  const mid = planFor(config, "mid", {});
  assert.deepEqual(mid.env.map((d) => d.variable), ["B", "C", "D"]);
  assert.deepEqual(mid.files.map((d) => [d.variable, d.ref.path]), [["A", "a2"]]);
});

test("planFor guards a hand-built config: unknown parent and cycles", () => {
  const config = load("environments:\n  a: {}\n  b: {}\n");
  config.environments.get("a")!.extends = "b";
  config.environments.get("a")!.extendsLine = 2;
  config.environments.get("b")!.extends = "a";
  config.environments.get("b")!.extendsLine = 3;
  assert.equal(
    configError(() => planFor(config, "a", {})),
    `${F}:3: extends cycle: a → b → a; an environment may not extend itself, directly or through others`,
  );
  config.environments.get("b")!.extends = "zz";
  assert.equal(
    configError(() => planFor(config, "a", {})),
    `${F}:3: environment "b" extends unknown environment "zz"; environments: a, b`,
  );
});

test("environment selection: argument, then COFFER_ENV, then default:, then the only one", () => {
  const two = load("default: b\nenvironments:\n  a: {}\n  b: {}\n");
  assert.equal(planFor(two, "a", { COFFER_ENV: "b" }).environment, "a");
  assert.equal(planFor(two, undefined, { COFFER_ENV: "a" }).environment, "a");
  assert.equal(planFor(two, undefined, { COFFER_ENV: "" }).environment, "b");
  assert.equal(planFor(two, undefined, {}).environment, "b");

  const one = load("environments:\n  only: {}\n");
  assert.equal(planFor(one, undefined, {}).environment, "only");

  const none = load("environments:\n  a: {}\n  b: {}\n");
  assert.equal(
    configError(() => planFor(none, undefined, {})),
    `${F}: which environment? choose one with --env NAME, COFFER_ENV or default: in the file; environments: a, b`,
  );
  assert.equal(configError(() => planFor(none, "c", {})), `${F}: unknown environment "c"; environments: a, b`);
  assert.equal(
    configError(() => planFor(none, undefined, { COFFER_ENV: "prod" })),
    `${F}: unknown environment "prod" (from COFFER_ENV); environments: a, b`,
  );
  assert.equal(configError(() => planFor(none, "constructor", {})), `${F}: unknown environment "constructor"; environments: a, b`);
});

test("prototype-ish names are plain names", () => {
  const config = load(`providers:
  constructor: { type: env }
environments:
  toString:
    env:
      __proto__: { from: constructor, path: X }
      constructor: a
`);
  const plan = planFor(config, "toString", {});
  assert.deepEqual(plan.env.map((d) => [d.variable, d.ref.provider]), [["__proto__", "constructor"], ["constructor", "store"]]);
  assert.deepEqual(Object.keys(plan.providers), ["store", "constructor"]);
  assert.match(configError(() => load(envs("    env:\n      A: { from: toString, path: x }\n"))), /"toString" is not a configured provider/);
});

test("aliases are followed; an unknown alias is a problem with its line", () => {
  const config = load("environments:\n  dev: &d { env: { A: a } }\n  ci: *d\n");
  assert.deepEqual(planFor(config, "ci", {}).env.map((d) => d.variable), ["A"]);
  assert.match(configError(() => load("environments:\n  dev: {}\n  x: *nope\n")), /^\.coffer\.yml:3: .*nope/);
});

test("findConfig: the nearest .coffer.yml or .coffer.yaml up the tree", (t) => {
  const root = tempDir(t);
  const deep = join(root, "a", "b", "c");
  mkdirSync(deep, { recursive: true });
  assert.equal(
    configError(() => findConfig(deep)),
    `no .coffer.yml in ${deep} or its parents up to ${root} (the search stops at your home, a filesystem boundary, or a shared directory such as /tmp); create one or pass --config F`,
  );
  writeFileSync(join(root, ".coffer.yml"), EXAMPLE);
  assert.equal(findConfig(deep), join(root, ".coffer.yml"));
  writeFileSync(join(root, "a", ".coffer.yaml"), EXAMPLE);
  assert.equal(findConfig(deep), join(root, "a", ".coffer.yaml"));
  mkdirSync(join(root, "a", "b", ".coffer.yml")); // a directory is not the file
  assert.equal(findConfig(deep), join(root, "a", ".coffer.yaml"));
  writeFileSync(join(deep, ".coffer.yml"), EXAMPLE);
  assert.equal(findConfig(deep), join(deep, ".coffer.yml"));
});
