import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  defaultEnvName,
  fileNameOf,
  loadAgentConfig,
  parseAgentConfig,
  parseInterval,
  parseMode,
  parseOnChange,
  parseOwner,
  parseProviderSpec,
  parseSecretIds,
} from "../../src/agent/config.ts";
import { tempDir } from "../helpers.ts";

/** The message of the CofferError with `code` that `fn` throws. */
function errorOf(fn: () => unknown, code: string): string {
  try {
    fn();
  } catch (err) {
    assert.equal((err as { code?: string }).code, code, String(err));
    return (err as Error).message;
  }
  assert.fail(`expected an ${code} error`);
}
const usageError = (fn: () => unknown): string => errorOf(fn, "E_USAGE");
const configError = (fn: () => unknown): string => errorOf(fn, "E_CONFIG");

const F = "agent.yml";

/** The brief's example. */
const EXAMPLE = `backends:
  folder: { type: folder, dir: /etc/secrets }
  vault: { type: vault, address: https://vault.internal:8200, mount: secret, tokenFile: /etc/coffer/vault-token }
  store: { type: store }
services:
  web:
    backend: vault
    override: { mount: kv }            # optional: override that backend's settings
    secrets: [ db/password, api/key=API_KEY ]
    dir: /run/web-secrets              # optional
    watch: true                        # optional
    pollInterval: 30s                  # optional
    onChange: exit                     # exit | restart-unit:NAME | signal:HUP | exec:CMD | none
    mode: "0400"                       # optional
    owner: web                         # optional user name
  files:
    backend: folder
    secrets:
      - tls/key
      - tls/cert=CERT
`;

test("parseProviderSpec: the accepted forms", () => {
  assert.deepEqual(parseProviderSpec("store"), { type: "store" });
  assert.deepEqual(parseProviderSpec("env"), { type: "env" });
  assert.deepEqual(parseProviderSpec("folder:/etc/secrets"), { type: "folder", dir: "/etc/secrets" });
  assert.deepEqual(parseProviderSpec("vault:https://vault.internal:8200#kv"), {
    type: "vault",
    address: "https://vault.internal:8200",
    mount: "kv",
  });
  assert.deepEqual(parseProviderSpec("vault:http://127.0.0.1:8200"), { type: "vault", address: "http://127.0.0.1:8200", mount: "secret" });
  assert.deepEqual(parseProviderSpec("vault:https://v.example/#team/kv"), { type: "vault", address: "https://v.example/", mount: "team/kv" });
  assert.deepEqual(parseProviderSpec("server:https://coffer.internal:8200"), { type: "server", url: "https://coffer.internal:8200" });
  assert.deepEqual(parseProviderSpec("server:http://[::1]:8200/c/"), { type: "server", url: "http://[::1]:8200/c/" });
});

test("parseProviderSpec: refusals name the accepted forms", () => {
  assert.equal(usageError(() => parseProviderSpec("vaults")), `invalid provider "vaults": use store, folder:/absolute/dir, env, vault:https://host:8200[#mount] or server:https://host:8200`);
  assert.equal(usageError(() => parseProviderSpec("")), `invalid provider "": use store, folder:/absolute/dir, env, vault:https://host:8200[#mount] or server:https://host:8200`);
  assert.equal(
    usageError(() => parseProviderSpec("folder:secrets")),
    `invalid provider "folder:secrets": folder: needs an absolute directory, e.g. folder:/etc/secrets`,
  );
  assert.equal(
    usageError(() => parseProviderSpec("vault:ftp://x")),
    `invalid provider "vault:ftp://x": vault address "ftp://x" must be an http:// or https:// URL, e.g. vault:https://vault.internal:8200#secret`,
  );
  assert.match(usageError(() => parseProviderSpec("vault:https://x:8200#")), /vault mount "" \(after #\) must match/);
  assert.match(usageError(() => parseProviderSpec("vault:https://x:8200#../sys")), /vault mount "\.\.\/sys"/);
  assert.equal(
    usageError(() => parseProviderSpec("server:https://u:p@x")),
    `invalid provider "server:https://u:p@x": server url "https://u:p@x" must be an http:// or https:// URL without credentials, query or fragment, e.g. https://coffer.internal:8200`,
  );
  assert.match(usageError(() => parseProviderSpec("server:https://x/?t=1")), /server url/);
  usageError(() => parseProviderSpec("server:"));
  usageError(() => parseProviderSpec("STORE"));
  usageError(() => parseProviderSpec("vault:"));
});

test("defaultEnvName: upper-case, non-alphanumerics as _, a leading digit gets _", () => {
  assert.equal(defaultEnvName("db/prod-password"), "DB_PROD_PASSWORD");
  assert.equal(defaultEnvName("api.key"), "API_KEY");
  assert.equal(defaultEnvName("1password/key"), "_1PASSWORD_KEY");
  assert.equal(defaultEnvName("a_b"), "A_B");
});

test("parseSecretIds: IDs, explicit names, spaces", () => {
  assert.deepEqual(parseSecretIds("db/prod-password"), [{ id: "db/prod-password", env: "DB_PROD_PASSWORD" }]);
  assert.deepEqual(parseSecretIds("db/password, api/key=API_KEY ,tls/key=tls_key"), [
    { id: "db/password", env: "DB_PASSWORD" },
    { id: "api/key", env: "API_KEY" },
    { id: "tls/key", env: "tls_key" },
  ]);
  assert.deepEqual(parseSecretIds("9lives"), [{ id: "9lives", env: "_9LIVES" }]);
});

test("parseSecretIds: refusals", () => {
  assert.equal(usageError(() => parseSecretIds("")), "--secrets is empty: give ID[=ENV_NAME],… (e.g. db/password,api/key=API_KEY)");
  assert.equal(
    usageError(() => parseSecretIds("a,,b")),
    "--secrets: entry 2 is empty (a stray comma?); give ID[=ENV_NAME],… (e.g. db/password,api/key=API_KEY)",
  );
  assert.equal(
    usageError(() => parseSecretIds("api/key=1KEY")),
    `--secrets: "api/key=1KEY": environment variable name "1KEY" must match ^[A-Za-z_][A-Za-z0-9_]*$`,
  );
  assert.match(usageError(() => parseSecretIds("../etc/passwd")), /^--secrets: invalid secret ID "\.\.\/etc\/passwd": IDs are path-like/);
  assert.match(usageError(() => parseSecretIds("/abs")), /invalid secret ID "\/abs"/);
  assert.match(usageError(() => parseSecretIds("a//b")), /invalid secret ID "a\/\/b"/);
  assert.match(usageError(() => parseSecretIds("a/.hidden")), /invalid secret ID "a\/\.hidden"/);
  assert.match(usageError(() => parseSecretIds("=X")), /invalid secret ID ""/);
  assert.equal(usageError(() => parseSecretIds("a,b,a=OTHER")), `--secrets: secret "a" is listed twice`);
  assert.equal(
    usageError(() => parseSecretIds("db/password,db-password")),
    `--secrets: secrets "db/password" and "db-password" both use the variable DB_PASSWORD; give one another name with ID=ENV_NAME`,
  );
  assert.equal(
    usageError(() => parseSecretIds("a=X,b=X")),
    `--secrets: secrets "a" and "b" both use the variable X; give one another name with ID=ENV_NAME`,
  );
  assert.equal(
    usageError(() => parseSecretIds("db/x,db_x=OTHER")),
    `--secrets: secrets "db/x" and "db_x" would both be the file DIR/db_x ("/" becomes "_"); deliver only one`,
  );
  assert.deepEqual(parseSecretIds("db/x,db=DBX"), [
    { id: "db/x", env: "DB_X" },
    { id: "db", env: "DBX" },
  ]);
  assert.equal(
    usageError(() => parseSecretIds("x".repeat(201))),
    `--secrets: secret "${"x".repeat(80)}…" cannot be delivered: its file name would be longer than 200 characters`,
  );
  assert.match(usageError(() => parseSecretIds("secrets.env")), /^--secrets: secret "secrets.env" cannot be delivered: DIR\/secrets.env is the env file/);
  assert.deepEqual(parseSecretIds("x/secrets.env"), [{ id: "x/secrets.env", env: "X_SECRETS_ENV" }]);
});

test("fileNameOf: a flat name inside DIR, never outside", () => {
  assert.equal(fileNameOf("db/password"), "db_password");
  assert.equal(fileNameOf("a/b.c/d-e"), "a_b.c_d-e");
  assert.equal(fileNameOf("token"), "token");
  assert.equal(fileNameOf("x/secrets.env"), "x_secrets.env");
  for (const bad of ["../x", "a/../../x", "/etc/passwd", "a//b", ".env", "a/./b", "", "a/", "..", "."]) {
    assert.throws(() => fileNameOf(bad), (e: unknown) => (e as { code?: string }).code === "E_INVALID_NAME", bad);
  }
  assert.match(usageError(() => fileNameOf("secrets.env")), /^secret "secrets.env" cannot be delivered: DIR\/secrets.env is the env file/);
  assert.match(usageError(() => fileNameOf("y".repeat(201))), /longer than 200 characters/);
});

test("parseOnChange: every form", () => {
  assert.deepEqual(parseOnChange("exit"), { kind: "exit" });
  assert.deepEqual(parseOnChange("none"), { kind: "none" });
  assert.deepEqual(parseOnChange("restart-unit:web@1.service"), { kind: "restart-unit", unit: "web@1.service" });
  assert.deepEqual(parseOnChange("signal:HUP"), { kind: "signal", signal: "SIGHUP" });
  assert.deepEqual(parseOnChange("signal:SIGUSR1"), { kind: "signal", signal: "SIGUSR1" });
  assert.deepEqual(parseOnChange("signal:term"), { kind: "signal", signal: "SIGTERM" });
  assert.deepEqual(parseOnChange("exec:systemctl reload nginx"), { kind: "exec", command: "systemctl reload nginx" });
});

test("parseOnChange: refusals", () => {
  assert.equal(
    usageError(() => parseOnChange("restart")),
    `invalid on-change action "restart": use exit, restart-unit:NAME, signal:HUP|USR1|USR2|TERM|INT, exec:CMD or none`,
  );
  assert.equal(
    usageError(() => parseOnChange("signal:KILL")),
    `invalid on-change action "signal:KILL": signal must be one of HUP, USR1, USR2, TERM, INT (with or without SIG)`,
  );
  assert.equal(
    usageError(() => parseOnChange("restart-unit:web;reboot")),
    `invalid on-change action "restart-unit:web;reboot": unit name "web;reboot" must match ^[a-zA-Z0-9:_.@\\-]+$, not start with "-" and have at most 255 characters`,
  );
  assert.match(usageError(() => parseOnChange("restart-unit:--force")), /unit name "--force"/);
  assert.match(usageError(() => parseOnChange("restart-unit:")), /unit name ""/);
  assert.equal(usageError(() => parseOnChange("exec:  ")), `invalid on-change action "exec:  ": exec: needs a command, e.g. exec:/usr/local/bin/reload`);
  usageError(() => parseOnChange("EXIT"));
});

test("parseInterval: units and bounds", () => {
  assert.equal(parseInterval("30s"), 30_000);
  assert.equal(parseInterval("500ms"), 500);
  assert.equal(parseInterval("2m"), 120_000);
  assert.equal(parseInterval("1h"), 3_600_000);
  assert.equal(parseInterval("100ms"), 100);
  assert.equal(usageError(() => parseInterval("99ms")), `invalid interval "99ms": must be between 100ms and 1h`);
  assert.equal(usageError(() => parseInterval("61m")), `invalid interval "61m": must be between 100ms and 1h`);
  assert.equal(
    usageError(() => parseInterval("30")),
    `invalid interval "30": must be a duration: a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w`,
  );
  // d and w are the one grammar's units too; these are only out of bounds
  assert.equal(usageError(() => parseInterval("1d")), `invalid interval "1d": must be between 100ms and 1h`);
  assert.equal(usageError(() => parseInterval("1w")), `invalid interval "1w": must be between 100ms and 1h`);
  for (const bad of ["1.5s", "-1s", "s", "30 s", "30S", "99999999999s"]) usageError(() => parseInterval(bad));
});

test("parseMode: octal, owner reads, nobody else writes", () => {
  assert.equal(parseMode("0400"), 0o400);
  assert.equal(parseMode("0440"), 0o440);
  assert.equal(parseMode("600"), 0o600);
  assert.equal(parseMode("0644"), 0o644);
  assert.equal(usageError(() => parseMode("0664")), `invalid mode "0664": must not let group or others write (e.g. "0400" or "0440")`);
  assert.equal(usageError(() => parseMode("0200")), `invalid mode "0200": must let the owner read (e.g. "0400" or "0440")`);
  assert.equal(
    usageError(() => parseMode("4777")),
    `invalid mode "4777": must not set setuid, setgid or sticky bits and must not let group or others write (e.g. "0400" or "0440")`,
  );
  assert.equal(usageError(() => parseMode("0x400")), `invalid mode "0x400": must be 3-4 octal digits, e.g. "0400" or "0440"`);
  usageError(() => parseMode("0800"));
  usageError(() => parseMode("40"));
});

test("parseOwner: names and uids", () => {
  assert.equal(parseOwner("web"), "web");
  assert.equal(parseOwner("www-data"), "www-data");
  assert.equal(parseOwner("1000"), "1000");
  for (const bad of ["", "-web", "web user", "a:b", "x".repeat(33), "../x"]) usageError(() => parseOwner(bad));
});

test("loadAgentConfig: the example", (t) => {
  const dir = tempDir(t);
  const file = join(dir, F);
  writeFileSync(file, EXAMPLE);
  assert.deepEqual(loadAgentConfig(file, "web"), {
    provider: { type: "vault", address: "https://vault.internal:8200", mount: "kv" },
    tokenFile: "/etc/coffer/vault-token",
    secrets: [
      { id: "db/password", env: "DB_PASSWORD" },
      { id: "api/key", env: "API_KEY" },
    ],
    dir: "/run/web-secrets",
    watch: true,
    pollIntervalMs: 30_000,
    onChange: { kind: "exit" },
    mode: 0o400,
    owner: "web",
  });
  assert.deepEqual(loadAgentConfig(file, "files"), {
    provider: { type: "folder", dir: "/etc/secrets" },
    secrets: [
      { id: "tls/key", env: "TLS_KEY" },
      { id: "tls/cert", env: "CERT" },
    ],
  });
});

test("loadAgentConfig: unreadable file, unknown service", (t) => {
  const dir = tempDir(t);
  const missing = join(dir, "nope.yml");
  assert.equal(configError(() => loadAgentConfig(missing, "web")), `${missing}: cannot read the agent config file (ENOENT); check the path given to --config`);
  assert.equal(configError(() => parseAgentConfig(EXAMPLE, F, "api")), `${F}:5: unknown service "api"; services: web, files`);
});

test("parseAgentConfig: overrides and vault token settings", () => {
  const text = `backends:
  v: { type: vault, address: "https://v:8200", tokenEnv: VAULT_TOKEN }
  f: { type: folder, dir: /a }
services:
  a: { backend: v, override: { tokenFile: /etc/t, namespace: ns, address: "https://other:8200" }, secrets: [x] }
  b: { backend: f, override: { dir: /b }, secrets: [x] }
  c: { backend: v, secrets: [x] }
`;
  assert.deepEqual(parseAgentConfig(text, F, "a"), {
    provider: { type: "vault", address: "https://other:8200", mount: "secret", namespace: "ns" },
    tokenFile: "/etc/t",
    secrets: [{ id: "x", env: "X" }],
  });
  assert.deepEqual(parseAgentConfig(text, F, "b").provider, { type: "folder", dir: "/b" });
  assert.deepEqual(parseAgentConfig(text, F, "c"), {
    provider: { type: "vault", address: "https://v:8200", mount: "secret", tokenEnv: "VAULT_TOKEN" },
    secrets: [{ id: "x", env: "X" }],
  });
});

test("parseAgentConfig: server backends", () => {
  const text = `backends:
  s: { type: server, url: "https://coffer.internal:8200", tokenEnv: WEB_TOKEN }
  t: { type: server, url: "http://127.0.0.1:8200" }
services:
  a: { backend: s, secrets: [x] }
  b: { backend: t, override: { url: "https://other:8200/c" }, secrets: [x] }
`;
  assert.deepEqual(parseAgentConfig(text, F, "a"), {
    provider: { type: "server", url: "https://coffer.internal:8200", tokenEnv: "WEB_TOKEN" },
    secrets: [{ id: "x", env: "X" }],
  });
  assert.deepEqual(parseAgentConfig(text, F, "b").provider, { type: "server", url: "https://other:8200/c" });
  const svc = (backend: string): string => `backends:\n${backend}services:\n  a: { backend: s, secrets: [x] }\n`;
  assert.equal(
    configError(() => parseAgentConfig(svc("  s: { type: server }\n"), F, "a")),
    `${F}:2: backend "s" (type server) needs url: the http:// or https:// URL of a coffer server`,
  );
  assert.equal(
    configError(() => parseAgentConfig(svc("  s: { type: server, url: \"ftp://x\" }\n"), F, "a")),
    `${F}:2: backend "s" (type server) url "ftp://x" must be an http:// or https:// URL without credentials, query or fragment, e.g. https://coffer.internal:8200`,
  );
  assert.equal(
    configError(() => parseAgentConfig(svc("  s: { type: server, url: \"https://x\", tokenFile: /t }\n"), F, "a")),
    `${F}:2: unknown key "tokenFile" in backend "s" (type server); allowed: type, url, tokenEnv, staleIfError`,
  );
});

test("parseAgentConfig: every problem at once, with file:line", () => {
  const text = `backends:
  f: { type: folder, dir: relative }
  v: { type: vault, address: ftp://x, colour: blue }
  s: { type: store }
services:
  web:
    backend: s
    override: { mount: kv }
    secrets: [ db/password, ../x, db-password, api=1BAD ]
    pollInterval: 5
    onChange: signal:KILL
    mode: 0644
    owner: "web user"
    watch: "yes"
    extra: 1
  other: { broken: entirely }
`;
  const message = configError(() => parseAgentConfig(text, F, "web"));
  assert.equal(
    message,
    [
      `${F}: 13 problems:\n  ${F}:2: backend "f" (type folder) dir "relative" must be an absolute path (starting with /)`,
      `${F}:3: unknown key "colour" in backend "v" (type vault); allowed: type, address, mount, namespace, tokenEnv, tokenFile`,
      `${F}:3: backend "v" (type vault) address "ftp://x" must be an http:// or https:// URL`,
      `${F}:8: unknown key "mount" in service "web" override (backend "s", type store); allowed: (none)`,
      `${F}:9: service "web" secrets: invalid secret ID "../x": IDs are path-like segments of letters, digits, '_', '.', '-', each starting with a letter or digit, separated by single '/', at most 256 characters`,
      `${F}:9: service "web" secrets: "api=1BAD": environment variable name "1BAD" must match ^[A-Za-z_][A-Za-z0-9_]*$`,
      `${F}:9: service "web" secrets: secrets "db/password" and "db-password" both use the variable DB_PASSWORD; give one another name with ID=ENV_NAME`,
      `${F}:10: service "web" pollInterval must be a string, got number 5 (quote it: "5")`,
      `${F}:11: service "web" onChange: invalid on-change action "signal:KILL": signal must be one of HUP, USR1, USR2, TERM, INT (with or without SIG)`,
      `${F}:12: service "web" mode must be a quoted string of 3-4 octal digits, e.g. "0400" (unquoted 0644 is a number)`,
      `${F}:13: service "web" owner: invalid owner "web user": a user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32 characters) or a numeric uid`,
      `${F}:14: service "web" watch must be true or false, got the string "yes"`,
      `${F}:15: unknown key "extra" in service "web"; allowed: backend, override, secrets, allowDangerous, dir, watch, pollInterval, onChange, mode, owner`,
    ].join("\n  "),
  );
  // The broken entry of another service is not this service's problem.
  assert.doesNotMatch(message, /broken/);
});

test("parseAgentConfig: single problems", () => {
  const svc = (body: string, backends = "  f: { type: folder, dir: /s }\n") => `backends:\n${backends}services:\n  web:\n${body}`;
  const cases: [string, string][] = [
    [svc("    backend: vault\n    secrets: [a]\n"), `${F}:5: service "web": backend "vault" is not in backends:; backends: f`],
    [svc("    secrets: [a]\n"), `${F}:4: service "web" needs backend: the name of one of backends:`],
    [svc("    backend: f\n"), `${F}:4: service "web" needs secrets: a list of ID or ID=ENV_NAME`],
    [svc("    backend: f\n    secrets: []\n"), `${F}:6: service "web" secrets is empty; list at least one ID`],
    [svc("    backend: f\n    secrets: a,b\n"), `${F}:6: service "web" secrets must be a list of ID or ID=ENV_NAME, got the string "a,b"`],
    [svc("    backend: f\n    secrets: [a, b, a]\n"), `${F}:6: service "web" secrets: secret "a" is listed twice`],
    [
      svc("    backend: f\n    secrets:\n      - db/x\n      - db_x=DBX2\n"),
      `${F}:8: service "web" secrets: secrets "db/x" and "db_x" would both be the file DIR/db_x ("/" becomes "_"); deliver only one`,
    ],
    [svc("    backend: f\n    secrets: [a]\n    dir: run/x\n"), `${F}:7: service "web" dir "run/x" must be an absolute path (starting with /)`],
    [svc("    backend: f\n    secrets: [a]\n    pollInterval: 10ms\n"), `${F}:7: service "web" pollInterval: invalid interval "10ms": must be between 100ms and 1h`],
    [svc("    backend: f\n    secrets: [a]\n    mode: \"0666\"\n"), `${F}:7: service "web" mode: invalid mode "0666": must not let group or others write (e.g. "0400" or "0440")`],
    [
      svc("    backend: f\n    override: { type: vault }\n    secrets: [a]\n"),
      `${F}:6: service "web" override (backend "f", type folder): type cannot be overridden; choose another backend`,
    ],
    [
      svc("    backend: v\n    secrets: [a]\n", "  v: { type: vault, address: https://v, tokenEnv: T, tokenFile: /t }\n"),
      `${F}:2: backend "v": give tokenEnv or tokenFile, not both`,
    ],
    [svc("    backend: f\n    secrets: [a]\n", "  f: { type: folder }\n"), `${F}:2: backend "f" (type folder) needs dir: an absolute directory path`],
    [svc("    backend: f\n    secrets: [a]\n", "  f: { type: nfs }\n"), `${F}:2: backend "f" type "nfs" is unknown; types: store, folder, env, vault, server`],
    [svc("    backend: F\n    secrets: [a]\n", "  F: { type: store }\n"), `${F}:2: backend name "F" must match ^[a-z][a-z0-9_-]*$`],
    ["services: { web: { backend: s, secrets: [a] } }\n", `${F}:1: missing backends: a map of backend names to { type, … }`],
    ["", `${F}:1: the file is empty; it needs backends: and services:`],
    [svc("    backend: f\n    backend: f\n    secrets: [a]\n"), `${F}:6: YAML: Map keys must be unique`],
    ["backends: {}\nservices: { web: {} }\n---\nx: 1\n", `${F}:3: YAML: the file must hold one YAML document (no second ---)`],
    [
      "backends: {}\nservices: { web: {} }\nextra: 1\n",
      `${F}: 3 problems:\n  ${F}:2: service "web" needs backend: the name of one of backends:\n  ${F}:2: service "web" needs secrets: a list of ID or ID=ENV_NAME\n  ${F}:3: unknown key "extra" in the top level; allowed: backends, services`,
    ],
    ["backends: []\nservices: { web: { backend: x, secrets: [a] } }\n", `${F}:1: backends must be a map, got a list`],
  ];
  for (const [text, expected] of cases) {
    assert.equal(configError(() => parseAgentConfig(text, F, "web")), expected, text);
  }
});

test("parseAgentConfig: aliases resolve", () => {
  const text = `backends:
  f: { type: folder, dir: /s }
common: &c [a, b=B]
services:
  web: { backend: f, secrets: *c }
`;
  // `common` is not allowed at the top level: the alias still resolves, the key is refused.
  assert.match(configError(() => parseAgentConfig(text, F, "web")), /^agent\.yml:3: unknown key "common" in the top level/);
  const ok = `backends:
  f: &f { type: folder, dir: /s }
services:
  web: { backend: f, secrets: &s [a, b=B] }
  api: { backend: f, secrets: *s }
`;
  assert.deepEqual(parseAgentConfig(ok, F, "api"), {
    provider: { type: "folder", dir: "/s" },
    secrets: [
      { id: "a", env: "A" },
      { id: "b", env: "B" },
    ],
  });
});
