import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  KNOWN_WEAK_JWT_SECRETS,
  loadServerConfig,
  parseServerConfig,
  productionProblems,
  tempdirRefusal,
} from "../../src/server/config.ts";
import type { ServerConfig } from "../../src/server/config.ts";
import { configError, tempDir } from "../helpers.ts";

const F = "server.yml";
const STRONG = "Zq7vK2pX9mWc4TgR8yLbN3hJ6dFsA1eUoQ0iGtVwCxPk";


/** A lookup map as the config builds them: no prototype. */
const dict = <T>(o: Record<string, T>): Record<string, T> => Object.assign(Object.create(null) as Record<string, T>, o);

const parse = (text: string, env: NodeJS.ProcessEnv = {}, overrides: { listen?: string; production?: boolean } = {}): ServerConfig =>
  parseServerConfig(text, F, env, overrides);

const FULL = `listen: 0.0.0.0:9200
jwt: { secret: "${STRONG}", issuer: https://idp.example, audience: coffer, rolesClaim: groups, algorithms: [HS256, HS512] }
rateLimit: { requests: 100, window: 30s, ipRequests: 500 }
limits: { bodyBytes: 2097152, valueBytes: 1048576 }
roles:
  reader: [ { path: "app/*", capabilities: [read, list] } ]
  deployer:
    - { path: "app/**", capabilities: [read, list, write] }
    - { path: "db/api-*/password", capabilities: [read] }
    - { path: sys:metrics, capabilities: [read] }
devLogin: false
behindProxy: true
metrics: { public: true }
ui: { enabled: false }
database: postgres://coffer:pw@db.internal:5432/coffer
redis: rediss://cache.internal:6380
tls: { cert: /etc/coffer/tls.crt, key: /etc/coffer/tls.key, clientCa: /etc/coffer/ca.crt }
clients: { ci-runner: [reader], ops.example.com: [deployer, root] }
log: { level: warn }
`;

test("defaults without a file", () => {
  const config = loadServerConfig({ env: {} });
  assert.deepEqual(config, {
    listen: { host: "127.0.0.1", port: 8200 },
    rateLimit: { requests: 60, windowMs: 60_000, ipRequests: 600 },
    limits: { bodyBytes: Math.ceil((1024 * 1024 * 4) / 3) + 64 * 1024, valueBytes: 1024 * 1024 },
    roles: dict({}),
    devLogin: false,
    behindProxy: 0,
    production: false,
    metrics: { public: false },
    ui: { enabled: true },
    log: { level: "info" },
  });
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.listen));
  assert.deepEqual(parse(""), { ...config, file: F });
  assert.deepEqual(parse("# only a comment\n"), { ...config, file: F });
});

test("a full file", () => {
  const config = parse(FULL);
  assert.deepEqual(config, {
    file: F,
    listen: { host: "0.0.0.0", port: 9200 },
    jwt: { secret: STRONG, issuer: "https://idp.example", audience: "coffer", rolesClaim: "groups", algorithms: ["HS256", "HS512"] },
    rateLimit: { requests: 100, windowMs: 30_000, ipRequests: 500 },
    limits: { bodyBytes: 2097152, valueBytes: 1048576 },
    roles: dict({
      reader: [{ path: "app/*", capabilities: ["read", "list"] }],
      deployer: [
        { path: "app/**", capabilities: ["read", "list", "write"] },
        { path: "db/api-*/password", capabilities: ["read"] },
        { path: "sys:metrics", capabilities: ["read"] },
      ],
    }),
    devLogin: false,
    behindProxy: 1,
    production: false,
    metrics: { public: true },
    ui: { enabled: false },
    log: { level: "warn" },
    database: "postgres://coffer:pw@db.internal:5432/coffer",
    redis: "rediss://cache.internal:6380",
    tls: { cert: "/etc/coffer/tls.crt", key: "/etc/coffer/tls.key", clientCa: "/etc/coffer/ca.crt" },
    clients: dict({ "ci-runner": ["reader"], "ops.example.com": ["deployer", "root"] }),
  });
  assert.deepEqual(productionProblems(config), []);
});

test("loadServerConfig reads the file and names it; an unreadable file is E_CONFIG", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "server.yml");
  writeFileSync(file, "listen: 127.0.0.1:1\n");
  assert.deepEqual(loadServerConfig({ file, env: {} }).listen, { host: "127.0.0.1", port: 1 });
  assert.equal(loadServerConfig({ file, env: {} }).file, file);
  assert.match(configError(() => loadServerConfig({ file: join(dir, "nope.yml"), env: {} })), /nope\.yml: cannot read the server config file \(ENOENT\)/);
  assert.equal(configError(() => loadServerConfig({ file, env: {}, listen: "x" })), `--listen: must be HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8200 or [::1]:8200`);
});

test("each bad key is named with its line, all at once", () => {
  const text = `listen: nowhere
colour: red
jwt: { secret: "${STRONG}", issuer: i, audience: a, ttl: 5 }
rateLimit: { requests: 0, window: 1 minute }
limits: { bodyBytes: 100, valueBytes: -1 }
devLogin: yes please
metrics: { public: 1 }
database: mysql://db
redis: http://cache
tls: { cert: tls.crt, key: /k }
`;
  assert.equal(
    configError(() => parse(text)),
    `${F}: 12 problems:\n  ` +
      [
        `${F}:1: listen must be HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8200 or [::1]:8200, got "nowhere"`,
        `${F}:2: unknown key "colour" in the top level; allowed: listen, jwt, rateLimit, limits, roles, devLogin, behindProxy, trustedProxies, production, metrics, ui, vault, database, redis, tls, clients, log, runbooks`,
        `${F}:3: unknown key "ttl" in jwt; allowed: secret, jwksFile, jwksUrl, issuer, audience, rolesClaim, algorithms, maxLifetime`,
        `${F}:4: rateLimit.requests must be a positive whole number, got number 0`,
        `${F}:4: rateLimit.window must be a duration: a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w, got "1 minute"`,
        `${F}:5: limits.bodyBytes must be a whole number of bytes, at least 1024, got number 100`,
        `${F}:5: limits.valueBytes must be a positive whole number of bytes, got number -1`,
        `${F}:6: devLogin must be true or false, got the string "yes please"`,
        `${F}:7: metrics.public must be true or false, got number 1`,
        `${F}:8: database must be a postgres:// or postgresql:// URL, got a mysql:// URL`,
        `${F}:9: redis must be a redis:// or rediss:// URL, got a http:// URL`,
        `${F}:10: tls.cert must be an absolute path (starting with /), got "tls.crt"`,
      ].join("\n  "),
  );
  assert.equal(configError(() => parse("- a\n")), `${F}:1: the top level must be a map, got a list`);
  assert.equal(configError(() => parse("rateLimit: 5\n")), `${F}:1: rateLimit must be a map, got number 5`);
  assert.equal(configError(() => parse("listen: a:1\nlisten: b:2\n")), `${F}:2: YAML: Map keys must be unique`);
  assert.equal(configError(() => parse("tls: { cert: /c }\n")), `${F}:1: tls needs key (COFFER_TLS_KEY): the absolute path of the private key (PEM)`);
});

test("env overrides beat the file and name the variable in errors", () => {
  const text = "listen: 127.0.0.1:8200\nrateLimit: { requests: 10, window: 1m }\ndevLogin: true\n";
  const config = parse(text, {
    COFFER_LISTEN: "10.0.0.1:9000",
    COFFER_RATE_LIMIT_REQUESTS: "20",
    COFFER_RATE_LIMIT_WINDOW: "500ms",
    COFFER_RATE_LIMIT_IP_REQUESTS: "",
    COFFER_DEV_LOGIN: "0",
    COFFER_BEHIND_PROXY: "TRUE",
    COFFER_METRICS_PUBLIC: "1",
    COFFER_LIMITS_BODY_BYTES: "4096",
    COFFER_LIMITS_VALUE_BYTES: "2048",
    COFFER_DATABASE: "postgresql://db/coffer",
    COFFER_REDIS: "redis://cache:6379",
    COFFER_TLS_CERT: "/c.pem",
    COFFER_TLS_KEY: "/k.pem",
    COFFER_TLS_CLIENT_CA: "/ca.pem",
    COFFER_ROLES: '{"ci": [{"path": "ci/**", "capabilities": ["read"]}]}',
    COFFER_CLIENTS: "runner: [ci]",
    COFFER_JWT_JWKS_URL: "https://idp.example/.well-known/jwks.json",
    COFFER_JWT_ISSUER: "https://idp.example",
    COFFER_JWT_AUDIENCE: "coffer",
    COFFER_JWT_ROLES_CLAIM: "coffer_roles",
    COFFER_JWT_ALGORITHMS: "RS256, EdDSA",
    // not this module's business: ignored
    COFFER_HOME: "/x",
    COFFER_TOKEN: "ct_whatever",
    COFFER_PASSPHRASE_FILE: "/p",
    COFFER_SOMETHING_ELSE: "?",
  });
  assert.deepEqual(config.listen, { host: "10.0.0.1", port: 9000 });
  assert.deepEqual(config.rateLimit, { requests: 20, windowMs: 500, ipRequests: 200 });
  assert.equal(config.devLogin, false);
  assert.equal(config.behindProxy, 1);
  assert.deepEqual(config.metrics, { public: true });
  assert.deepEqual(config.limits, { bodyBytes: 4096, valueBytes: 2048 });
  assert.equal(config.database, "postgresql://db/coffer");
  assert.equal(config.redis, "redis://cache:6379");
  assert.deepEqual(config.tls, { cert: "/c.pem", key: "/k.pem", clientCa: "/ca.pem" });
  assert.deepEqual(config.roles, dict({ ci: [{ path: "ci/**", capabilities: ["read"] }] }));
  assert.deepEqual(config.clients, dict({ runner: ["ci"] }));
  assert.deepEqual(config.jwt, {
    jwksUrl: "https://idp.example/.well-known/jwks.json",
    issuer: "https://idp.example",
    audience: "coffer",
    rolesClaim: "coffer_roles",
    algorithms: ["RS256", "EdDSA"],
  });
  assert.equal(config.production, false);

  assert.equal(
    configError(() => parse(text, { COFFER_RATE_LIMIT_REQUESTS: "many", COFFER_DEV_LOGIN: "yes", COFFER_LISTEN: "::1:80" })),
    `${F}: 3 problems:\n  ` +
      [
        "COFFER_LISTEN: must be HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8200 or [::1]:8200",
        "COFFER_RATE_LIMIT_REQUESTS: must be a positive whole number",
        "COFFER_DEV_LOGIN: must be true, false, 1 or 0",
      ].join("\n  "),
  );
  assert.equal(configError(() => parse("", { COFFER_RATE_LIMIT_REQUESTS: "-3" })), "COFFER_RATE_LIMIT_REQUESTS: must be a positive whole number");
  assert.equal(configError(() => parse("", { COFFER_RATE_LIMIT_WINDOW: "soon" })), "COFFER_RATE_LIMIT_WINDOW: must be a duration: a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w");
  assert.equal(configError(() => parse("", { COFFER_ROLES: "x: [{ path: a, capabilities: [fly] }]" })), `COFFER_ROLES:1: role "x" rule 1 capability "fly" is unknown; capabilities: read, list, write, delete, purge, rotate, run, approve`);
  assert.match(configError(() => parse("", { COFFER_ROLES: "{ a: " })), /^COFFER_ROLES:1: YAML: /);
  assert.equal(configError(() => parse("", { COFFER_DATABASE: "mysql://u:hunter2@db" })), "COFFER_DATABASE: must be a postgres:// or postgresql:// URL");
  assert.equal(configError(() => parse("", { COFFER_JWT_SECRET: STRONG })), "server.yml: 2 problems:\n  jwt needs issuer (COFFER_JWT_ISSUER): the iss tokens must carry\n  jwt needs audience (COFFER_JWT_AUDIENCE): the aud tokens must carry");
  // clients name defined roles (or root) and need a client CA
  assert.equal(
    configError(() => parse("clients: { a: [admin] }\n", { COFFER_TLS_CERT: "/c", COFFER_TLS_KEY: "/k", COFFER_TLS_CLIENT_CA: "/ca" })),
    `${F}:1: client "a": role "admin" is not defined; roles: root`,
  );
  assert.equal(configError(() => parse("clients: { a: [root] }\n")), `${F}:1: clients needs tls.clientCa (COFFER_TLS_CLIENT_CA): client certificates are only asked for with a CA to check them`);
});

test("--listen wins over the file and COFFER_LISTEN; IPv6 and host names", () => {
  assert.deepEqual(parse("listen: 1.2.3.4:1\n", { COFFER_LISTEN: "5.6.7.8:2" }, { listen: "[::1]:8300" }).listen, { host: "::1", port: 8300 });
  assert.deepEqual(parse("listen: '[::]:8200'\n").listen, { host: "::", port: 8200 });
  assert.deepEqual(parse("listen: '[fe80::1%eth0]:8200'\n").listen, { host: "fe80::1%eth0", port: 8200 });
  assert.deepEqual(parse("listen: localhost:0\n").listen, { host: "localhost", port: 0 });
  assert.deepEqual(parse("", { COFFER_LISTEN: "coffer.internal:443" }).listen, { host: "coffer.internal", port: 443 });
  for (const bad of ["::1:8200", "[127.0.0.1]:80", "[::1]", "127.0.0.1", "127.0.0.1:65536", ":8200", "host:port", "a b:1", "[::1]:80x", "-x:1"]) {
    assert.match(configError(() => parse("", {}, { listen: bad })), /^--listen: must be HOST:PORT/, bad);
  }
});

test("durations: the one grammar of core/durations.ts, with each key's own bounds", () => {
  assert.equal(parse("rateLimit: { window: 500ms }\n").rateLimit.windowMs, 500);
  assert.equal(parse("", { COFFER_RATE_LIMIT_WINDOW: "90s" }).rateLimit.windowMs, 90_000);
  assert.equal(configError(() => parse("rateLimit: { window: 1w }\n")), `${F}:1: rateLimit.window must be between 1ms and 1d, got "1w"`);
  assert.equal(configError(() => parse("", { COFFER_RATE_LIMIT_WINDOW: "1 m" })), `COFFER_RATE_LIMIT_WINDOW: must be a duration: a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w`);
  assert.equal(parse("rateLimit: { window: 1h }\n").rateLimit.windowMs, 3_600_000);
  assert.equal(configError(() => parse("rateLimit: { window: 0s }\n")), `${F}:1: rateLimit.window must be between 1ms and 1d, got "0s"`);
  assert.equal(configError(() => parse("rateLimit: { window: 2d }\n")), `${F}:1: rateLimit.window must be between 1ms and 1d, got "2d"`);
  assert.match(configError(() => parse("rateLimit: { window: 60000 }\n")), /rateLimit\.window must be a duration.*got number 60000/);
});

test("roles: glob validation", () => {
  const role = (rule: string): string => `roles:\n  r:\n    - ${rule}\n`;
  for (const path of ["a", "app/*", "app/**", "**", "*/db", "db/api-*/password", "a/**/b", "x.y_z-1/*", "sys:tokens", "sys:audit", "sys:metrics"]) {
    assert.deepEqual(parse(role(`{ path: "${path}", capabilities: [read] }`)).roles["r"], [{ path, capabilities: ["read"] }], path);
  }
  const cases: [string, RegExp][] = [
    [`{ path: "a/**b", capabilities: [read] }`, /rule 1 path "a\/\*\*b": segment "\*\*b": '\*\*' must be a whole segment/],
    [`{ path: "../x", capabilities: [read] }`, /path "\.\.\/x": '\.\.' is not allowed/],
    [`{ path: "a/../b", capabilities: [read] }`, /'\.\.' is not allowed/],
    [`{ path: "/a", capabilities: [read] }`, /empty segment/],
    [`{ path: "a//b", capabilities: [read] }`, /empty segment/],
    [`{ path: "a/", capabilities: [read] }`, /empty segment/],
    [`{ path: "", capabilities: [read] }`, /path "": empty/],
    [`{ path: "a b", capabilities: [read] }`, /character outside the rule/],
    [`{ path: ".env", capabilities: [read] }`, /must start with a letter or digit/],
    [`{ path: "sys:root", capabilities: [read] }`, /not a known system path/],
    [`{ path: "${"a".repeat(257)}", capabilities: [read] }`, /longer than 256 characters/],
    [`{ path: a, capabilities: [] }`, /rule 1 capabilities is empty; give at least one of read, list, write, delete, purge, rotate, run, approve/],
    [`{ path: a, capabilities: [read, admin] }`, /capability "admin" is unknown; capabilities: read, list, write, delete, purge, rotate, run, approve/],
    [`{ path: a, capabilities: [read, read] }`, /capability "read" is listed twice/],
    [`{ path: a, capabilities: read }`, /capabilities must be a list of read, list, write, delete, purge, rotate, run, approve, got the string "read"/],
    [`{ path: a }`, /rule 1 needs capabilities/],
    [`{ capabilities: [read] }`, /rule 1 needs path/],
    [`{ path: a, capabilities: [read], deny: true }`, /unknown key "deny" in role "r" rule 1; allowed: path, capabilities/],
  ];
  for (const [rule, re] of cases) {
    const message = configError(() => parse(role(rule)));
    assert.match(message, new RegExp(`^${F}:3: `), rule);
    assert.match(message, re, rule);
  }
  assert.equal(configError(() => parse("roles:\n  root: [{ path: a, capabilities: [read] }]\n")), `${F}:2: role name "root" is reserved: root is built in (every capability on every path); choose another name`);
  assert.equal(configError(() => parse("roles:\n  Admin: [{ path: a, capabilities: [read] }]\n")), `${F}:2: role name "Admin" must match ^[a-z][a-z0-9_-]*$`);
  assert.equal(configError(() => parse("roles:\n  r: []\n")), `${F}:2: role "r" has no rules; give at least one { path, capabilities }`);
  assert.equal(configError(() => parse("roles:\n  r: { path: a }\n")), `${F}:2: role "r" must be a list of { path, capabilities }, got a map`);
  const aliases = parse("roles:\n  a: &rules [{ path: x, capabilities: [read] }]\n  b: *rules\n").roles;
  assert.deepEqual(aliases["b"], aliases["a"]);
  assert.match(configError(() => parse("roles:\n  __proto__: [{ path: x, capabilities: [read] }]\n")), /role name "__proto__" must match/);
  const tls = { COFFER_TLS_CERT: "/c", COFFER_TLS_KEY: "/k", COFFER_TLS_CLIENT_CA: "/ca" };
  const clients = parse("roles: { r: [{ path: x, capabilities: [read] }] }\nclients: { __proto__: [r], constructor: [r] }\n", tls).clients;
  assert.equal(Object.getPrototypeOf(clients), null);
  assert.deepEqual(Object.keys(clients ?? {}), ["__proto__", "constructor"]);
  assert.equal(({} as Record<string, unknown>)["r"], undefined);
});

test("jwt: key sources, algorithms, alg none refused", () => {
  const jwt = (body: string): string => `jwt: { issuer: i, audience: a, ${body} }\n`;
  assert.deepEqual(parse(jwt(`secret: "${STRONG}"`)).jwt?.algorithms, ["HS256"]);
  assert.deepEqual(parse(jwt("jwksFile: /etc/coffer/jwks.json")).jwt, {
    jwksFile: "/etc/coffer/jwks.json",
    issuer: "i",
    audience: "a",
    rolesClaim: "roles",
    algorithms: ["RS256", "ES256", "EdDSA"],
  });
  assert.equal(configError(() => parse(jwt(`secret: "${STRONG}", algorithms: [none]`))), `${F}:1: jwt.algorithms "none" is refused: it accepts unsigned tokens, which anyone can forge`);
  assert.match(configError(() => parse(jwt(`secret: "${STRONG}", algorithms: [HS256, NONE]`))), /"none" is refused: it accepts unsigned tokens/);
  assert.equal(
    configError(() => parse("", { COFFER_JWT_SECRET: STRONG, COFFER_JWT_ISSUER: "i", COFFER_JWT_AUDIENCE: "a", COFFER_JWT_ALGORITHMS: "none" })),
    `COFFER_JWT_ALGORITHMS: "none" is refused: it accepts unsigned tokens, which anyone can forge`,
  );
  assert.match(configError(() => parse(jwt(`secret: "${STRONG}", algorithms: [RS256]`))), /RS256 needs a key set \(jwksFile or jwksUrl\); with secret use HS256, HS384 or HS512/);
  assert.match(configError(() => parse(jwt("jwksFile: /j, algorithms: [HS256]"))), /HS256 needs secret; with jwksFile or jwksUrl use RS\*, PS\*, ES\* or EdDSA/);
  assert.match(configError(() => parse(jwt("jwksFile: /j, algorithms: [RS1]"))), /"RS1" is unknown; algorithms: HS256, HS384, HS512, RS256/);
  assert.match(configError(() => parse(jwt("jwksFile: /j, algorithms: []"))), /jwt\.algorithms must not be empty/);
  assert.match(configError(() => parse(jwt(`secret: "${STRONG}", jwksFile: /j`))), /jwt has secret and jwksFile: give exactly one of secret, jwksFile, jwksUrl/);
  assert.match(configError(() => parse(jwt(""))), /jwt needs one key source: secret \(COFFER_JWT_SECRET\), jwksFile \(COFFER_JWT_JWKS_FILE\) or jwksUrl \(COFFER_JWT_JWKS_URL\)/);
  assert.match(configError(() => parse(jwt("jwksUrl: http://idp/jwks"))), /jwt\.jwksUrl must be an https:\/\/ URL/);
  assert.match(configError(() => parse(jwt("jwksFile: jwks.json"))), /jwt\.jwksFile must be an absolute path/);
  assert.match(configError(() => parse(`jwt: { secret: "${STRONG}" }\n`)), /jwt needs issuer[^]*jwt needs audience/);
  // a non-string secret is refused without showing it
  const message = configError(() => parse(jwt("secret: 31415926535897932384626433832795")));
  assert.equal(message, `${F}:1: jwt.secret must be a string (quote it)`);
});

test("production: production: true, COFFER_PRODUCTION=1 or --production; COFFER_ENV no longer", () => {
  assert.equal(parse("production: true\n").production, true);
  assert.equal(parse("", { COFFER_PRODUCTION: "1" }).production, true);
  assert.equal(parse("", { COFFER_PRODUCTION: "true" }).production, true);
  assert.equal(parse("", { COFFER_ENV: "dev" }).production, false);
  assert.equal(parse("", { COFFER_ENV: "staging", COFFER_PRODUCTION: "1" }).production, true);
  assert.equal(parse("", {}, { production: true }).production, true);
  assert.equal(loadServerConfig({ env: {}, production: true }).production, true);
  // COFFER_ENV=production with a switch is fine: the switch is what counts
  assert.equal(parse("", { COFFER_ENV: "production" }, { production: true }).production, true);
});

test("COFFER_ENV=prod without --production refuses to start, in any spelling, and names the switch", () => {
  for (const spelling of ["production", "Production", "PRODUCTION", "prod", "Prod", "PROD", " production "]) {
    const message = configError(() => parse("", { COFFER_ENV: spelling }));
    assert.match(message, /no longer turns on the server's production checks/, spelling);
    assert.match(message, /production: true in the server config, COFFER_PRODUCTION=1, or pass --production/, spelling);
  }
  assert.equal(parse("", { COFFER_ENV: "production-eu" }).production, false, "another environment's name is not the switch");
});

test("a weak JWT secret is refused outside production too, with how to make one", () => {
  const jwt = (secret: string): string => `jwt: { secret: "${secret}", issuer: i, audience: a }\n`;
  assert.equal(
    configError(() => parse(jwt("short-but-not-known"))),
    `${F}:1: jwt.secret is only 19 bytes long, too short to resist guessing: use a random secret of at least 32 bytes, e.g. from \`openssl rand -base64 48\``,
  );
  assert.equal(
    configError(() => parse(jwt("Dev-Secret-Change-Me"))),
    `${F}:1: jwt.secret is a known default ("Dev-Secret-Change-Me") anyone can sign tokens with: use a random secret of at least 32 bytes, e.g. from \`openssl rand -base64 48\``,
  );
  // long enough, but published (jwt.io's example)
  assert.match(configError(() => parse(jwt("a-string-secret-at-least-256-bits-long"))), /is a known default/);
  for (const weak of KNOWN_WEAK_JWT_SECRETS) assert.match(configError(() => parse(jwt(weak))), /jwt\.secret/, weak);
  // the README's own placeholder, and one long enough but obviously a placeholder
  assert.match(configError(() => parse(jwt("…"))), /jwt\.secret is only 3 bytes long/);
  assert.match(configError(() => parse(jwt("replace-this-with-a-random-secret..."))), /jwt\.secret is a placeholder/);
  assert.match(configError(() => parse("", { COFFER_JWT_SECRET: "short", COFFER_JWT_ISSUER: "i", COFFER_JWT_AUDIENCE: "a" })), /^COFFER_JWT_SECRET: is only 5 bytes long/);
  assert.equal(parse(jwt(STRONG)).jwt?.secret, STRONG);
});

test("production guard: devLogin, plain HTTP off loopback, a proxy setup listening off loopback", () => {
  const jwt = (secret: string): string => `jwt: { secret: "${secret}", issuer: i, audience: a }\n`;
  assert.deepEqual(productionProblems(parse("devLogin: true\n")), [
    "devLogin (COFFER_DEV_LOGIN) is on: it hands out credentials without checking anyone; set devLogin: false in production",
  ]);
  assert.deepEqual(productionProblems(parse("listen: 0.0.0.0:8200\n")), [
    "listen (COFFER_LISTEN) is 0.0.0.0:8200, a non-loopback address, with plain HTTP: tokens would cross the network in clear; " +
      "configure tls (COFFER_TLS_CERT, COFFER_TLS_KEY), or listen on 127.0.0.1 and put a TLS-terminating proxy in front with behindProxy: 1 (COFFER_BEHIND_PROXY)",
  ]);
  assert.match(productionProblems(parse("", {}, { listen: "[::]:8200" }))[0] ?? "", /is \[::\]:8200, a non-loopback address/);
  assert.deepEqual(productionProblems(parse("listen: 0.0.0.0:8200\ntls: { cert: /c, key: /k }\n")), []);
  assert.deepEqual(productionProblems(parse("listen: 127.0.0.1:8200\nbehindProxy: true\n")), []);
  // all fine on loopback with a strong secret
  for (const listen of ["127.0.0.1:8200", "127.1.2.3:1", "localhost:8200", "[::1]:8200"]) {
    assert.deepEqual(productionProblems(parse(`listen: "${listen}"\n${jwt(STRONG)}`, {}, { production: true })), [], listen);
  }
  assert.equal(productionProblems(parse(`listen: 0.0.0.0:1\ndevLogin: true\n`)).length, 2);
});

test("in production, behindProxy without tls requires a loopback listen address", () => {
  for (const yaml of ["listen: 0.0.0.0:8200\nbehindProxy: true\n", "listen: 10.0.0.2:8200\nbehindProxy: 2\n", "listen: 0.0.0.0:8200\ntrustedProxies: [10.0.0.5]\n"]) {
    const problems = productionProblems(parse(yaml, {}, { production: true }));
    assert.equal(problems.length, 1, yaml);
    assert.match(problems[0]!, /with behindProxy or trustedProxies and plain HTTP: a client that reaches the port without the proxy could choose its own address/);
    assert.match(problems[0]!, /listen on 127\.0\.0\.1 with the TLS-terminating proxy on the same host/);
  }
  assert.deepEqual(productionProblems(parse("listen: 0.0.0.0:8200\nbehindProxy: true\ntls: { cert: /c, key: /k }\n")), []);
});

test("behindProxy is a hop count (true = 1) and trustedProxies a list of addresses or CIDRs, never both", () => {
  assert.equal(parse("behindProxy: true\n").behindProxy, 1);
  assert.equal(parse("behindProxy: false\n").behindProxy, 0);
  assert.equal(parse("behindProxy: 3\n").behindProxy, 3);
  assert.equal(parse("", { COFFER_BEHIND_PROXY: "true" }).behindProxy, 1);
  assert.equal(parse("", { COFFER_BEHIND_PROXY: "2" }).behindProxy, 2);
  assert.equal(parse("", { COFFER_BEHIND_PROXY: "0" }).behindProxy, 0);
  for (const bad of ["-1", "17", "yes", "1.5"]) {
    assert.match(configError(() => parse(`behindProxy: ${bad}\n`)), /behindProxy must be true, false or a number of proxy hops from 0 to 16/, bad);
  }
  assert.match(configError(() => parse("", { COFFER_BEHIND_PROXY: "many" })), /^COFFER_BEHIND_PROXY: must be true, false or a number/);
  const t = parse("trustedProxies: [10.0.0.5, 10.1.0.0/16, \"fd00::/8\", \"::1\"]\n");
  assert.deepEqual(t.trustedProxies, ["10.0.0.5", "10.1.0.0/16", "fd00::/8", "::1"]);
  assert.equal(t.behindProxy, 0);
  assert.deepEqual(parse("", { COFFER_TRUSTED_PROXIES: "10.0.0.5, 192.168.0.0/24" }).trustedProxies, ["10.0.0.5", "192.168.0.0/24"]);
  assert.match(configError(() => parse("trustedProxies: [proxy.example]\n")), /trustedProxies "proxy\.example": not an IP address or CIDR/);
  assert.match(configError(() => parse("trustedProxies: [10.0.0.0/33]\n")), /prefix length must be a number from 1 to 32/);
  assert.match(configError(() => parse("trustedProxies: [0.0.0.0/0]\n")), /a \/0 trusts every address/);
  assert.match(configError(() => parse("trustedProxies: []\n")), /must not be empty/);
  assert.match(configError(() => parse("behindProxy: 1\ntrustedProxies: [10.0.0.5]\n")), /give behindProxy \(a number of hops\) or trustedProxies \(addresses\), not both/);
});

test("a strong secret's text never appears in a message", () => {
  const messages: string[] = [];
  const collect = (fn: () => unknown): void => {
    try {
      const r = fn();
      if (Array.isArray(r)) messages.push(...(r as string[]));
    } catch (err) {
      messages.push((err as Error).message);
    }
  };
  collect(() => parse(`jwt: { secret: "${STRONG}", algorithms: [none, RS256], jwksUrl: http://x }\nlisten: x\n`));
  collect(() => parse(`jwt: { secret: "${STRONG}", issuer: i, audience: a, extra: 1 }\n`));
  collect(() => parse("", { COFFER_JWT_SECRET: STRONG, COFFER_JWT_ALGORITHMS: "none", COFFER_LISTEN: "x" }));
  collect(() => parse(`jwt: { secret: "${STRONG}", issuer: i, audience: a }\nlisten: 0.0.0.0:1\ndevLogin: true\n`, {}, { production: true }));
  collect(() => productionProblems(parse(`jwt: { secret: "${STRONG}", issuer: i, audience: a }\nlisten: 0.0.0.0:1\ndevLogin: true\n`)));
  collect(() => productionProblems(parse(`jwt: { secret: "${STRONG.slice(0, 20)}", issuer: i, audience: a }\n`)));
  collect(() => parse(`jwt: { secret: "${STRONG}", issuer: i, audience: a, secret: "${STRONG}" }\n`));
  collect(() => parse(`jwt: { secret: "${STRONG}\n`));
  collect(() => parse(`jwt: { secret: ${STRONG} ${STRONG}: x, issuer: i }\n`));
  collect(() => parse(`jwt:\n  secret: ${STRONG}\n   - ${STRONG}\n`));
  assert.ok(messages.length >= 9, String(messages.length));
  for (const m of messages) {
    assert.ok(!m.includes(STRONG), m);
    assert.ok(!m.includes(STRONG.slice(0, 20)), m);
  }
  // database and redis URLs may hold passwords: only their scheme is shown
  const db = configError(() => parse("database: mysql://u:hunter2@db\nredis: http://:hunter2@cache\n"));
  assert.ok(!db.includes("hunter2"), db);
});

test("log.level: pino's levels from the file or COFFER_LOG_LEVEL, info when absent; anything else is refused", () => {
  assert.equal(parse("").log.level, "info");
  assert.equal(parse("log: { level: debug }\n").log.level, "debug");
  assert.equal(parse("log: { level: debug }\n", { COFFER_LOG_LEVEL: "silent" }).log.level, "silent");
  for (const level of ["fatal", "error", "warn", "info", "debug", "trace", "silent"]) assert.equal(parse("", { COFFER_LOG_LEVEL: level }).log.level, level);
  const rule = "must be one of fatal, error, warn, info, debug, trace, silent";
  assert.equal(configError(() => parse("log: { level: verbose }\n")), `${F}:1: log.level ${rule}, got "verbose"`);
  assert.equal(configError(() => parse("", { COFFER_LOG_LEVEL: "DEBUG" })), `COFFER_LOG_LEVEL: ${rule}`);
  assert.match(configError(() => parse("log: { level: debug, format: json }\n")), /format/);
});

test("jwt.maxLifetime: a duration from the file or COFFER_JWT_MAX_LIFETIME, 24 h when absent", () => {
  const jwt = (body: string): string => `jwt: { secret: "${STRONG}", issuer: i, audience: a${body} }\n`;
  assert.equal(parse(jwt("")).jwt?.maxLifetimeMs, undefined);
  assert.equal(parse(jwt(", maxLifetime: 1h")).jwt?.maxLifetimeMs, 3_600_000);
  assert.equal(parse(jwt(""), { COFFER_JWT_MAX_LIFETIME: "30m" }).jwt?.maxLifetimeMs, 1_800_000);
  assert.match(configError(() => parse(jwt(", maxLifetime: forever"))), /jwt\.maxLifetime must be a duration/);
  assert.match(configError(() => parse(jwt(", maxLifetime: 400d"))), /jwt\.maxLifetime must be between 1s and 366d/);
  assert.equal(parse(jwt(", maxLifetime: 2w")).jwt?.maxLifetimeMs, 14 * 86_400_000);
  assert.match(configError(() => parse(jwt(", maxLifetime: 999ms"))), /jwt\.maxLifetime must be between 1s and 366d, got "999ms"/);
});

/* ------------------------------------------ runbooks ------------------------------------------ */

test("runbooks: absent by default; dir alone gives the defaults (10 executions a minute, sandbox-only in production)", () => {
  assert.equal(parse("").runbooks, undefined);
  const r = parse("runbooks: { dir: /etc/coffer/runbooks }\n").runbooks;
  assert.deepEqual(r, { dir: "/etc/coffer/runbooks", rateLimit: { executions: 10, windowMs: 60_000 }, allowUnsandboxed: false });
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r!.rateLimit));
});

test("runbooks: every key from the file, and runAs resolved to its uid and gid", () => {
  const r = parse("runbooks:\n  dir: /srv/runbooks\n  rateLimit: { executions: 5, window: 30s }\n  runAs: nobody\n  allowUnsandboxed: true\n").runbooks;
  assert.deepEqual(r, {
    dir: "/srv/runbooks",
    rateLimit: { executions: 5, windowMs: 30_000 },
    runAs: { user: "nobody", uid: 65534, gid: 65534 },
    allowUnsandboxed: true,
  });
});

test("runbooks: every key has its COFFER_ variable, nested sections included, and a variable beats the file", () => {
  const env = {
    COFFER_RUNBOOKS_DIR: "/x",
    COFFER_RUNBOOKS_RATE_LIMIT_EXECUTIONS: "3",
    COFFER_RUNBOOKS_RATE_LIMIT_WINDOW: "2m",
    COFFER_RUNBOOKS_RUN_AS: "nobody",
    COFFER_RUNBOOKS_ALLOW_UNSANDBOXED: "1",
  };
  assert.deepEqual(parse("", env).runbooks, {
    dir: "/x",
    rateLimit: { executions: 3, windowMs: 120_000 },
    runAs: { user: "nobody", uid: 65534, gid: 65534 },
    allowUnsandboxed: true,
  });
  assert.equal(parse("runbooks: { dir: /file, rateLimit: { executions: 7 } }\n", { COFFER_RUNBOOKS_RATE_LIMIT_EXECUTIONS: "2" }).runbooks?.rateLimit.executions, 2);
  assert.equal(
    configError(() => parse("", { COFFER_RUNBOOKS_RATE_LIMIT_EXECUTIONS: "0", COFFER_RUNBOOKS_RUN_AS: "Bad Name", COFFER_RUNBOOKS_ALLOW_UNSANDBOXED: "maybe" })),
    `${F}: 4 problems:\n  COFFER_RUNBOOKS_RATE_LIMIT_EXECUTIONS: must be a positive whole number\n  COFFER_RUNBOOKS_RUN_AS: must be a user name matching ^[a-z_][a-z0-9_-]{0,31}$\n  ` +
      "COFFER_RUNBOOKS_ALLOW_UNSANDBOXED: must be true, false, 1 or 0\n  runbooks needs dir (COFFER_RUNBOOKS_DIR): the absolute path of the directory of runbook files",
  );
});

test("runbooks: every bad key named with its line, all at once", () => {
  const text = "runbooks:\n  dir: r\n  rateLimit: { executions: 0, window: 30, x: 1 }\n  runAs: no-such-user-coffer\n  allowUnsandboxed: yes\n  sandbox: true\n";
  assert.equal(
    configError(() => parse(text)),
    `${F}: 7 problems:\n` +
      `  ${F}:2: runbooks.dir must be an absolute path (starting with /), got "r"\n` +
      `  ${F}:3: unknown key "x" in runbooks.rateLimit; allowed: executions, window\n` +
      `  ${F}:3: runbooks.rateLimit.executions must be a positive whole number, got number 0\n` +
      `  ${F}:3: runbooks.rateLimit.window must be a duration: a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w, got number 30\n` +
      `  ${F}:4: runbooks.runAs names "no-such-user-coffer", which is not a user of this host; create it (useradd --system no-such-user-coffer) or name another\n` +
      `  ${F}:5: runbooks.allowUnsandboxed must be true or false, got the string "yes"\n` +
      `  ${F}:6: unknown key "sandbox" in runbooks; allowed: dir, rateLimit, runAs, allowUnsandboxed`,
  );
  assert.equal(configError(() => parse("runbooks: { rateLimit: { executions: 2 } }\n")), `${F}:1: runbooks needs dir (COFFER_RUNBOOKS_DIR): the absolute path of the directory of runbook files`);
  assert.match(configError(() => parse("runbooks: { dir: /r, rateLimit: { window: 2d } }\n")), /runbooks\.rateLimit\.window must be between 1ms and 1d, got "2d"/);
});

test("runbooks.runAs: root is refused, tempdir scripts would run as root", () => {
  assert.equal(configError(() => parse("runbooks: { dir: /r, runAs: root }\n")), `${F}:1: runbooks.runAs names "root" (uid 0): tempdir scripts would run as root; name an unprivileged user`);
});

test("tempdirRefusal: production without allowUnsandboxed refuses tempdir runbooks, naming the key and its variable", () => {
  assert.equal(tempdirRefusal(parse("runbooks: { dir: /r }\n")), undefined);
  assert.match(tempdirRefusal(parse("runbooks: { dir: /r }\n", {}, { production: true }))!, /runbooks\.allowUnsandboxed: true \(COFFER_RUNBOOKS_ALLOW_UNSANDBOXED=1\)/);
  assert.equal(tempdirRefusal(parse("runbooks: { dir: /r, allowUnsandboxed: true }\n", {}, { production: true })), undefined);
});

test("roles: runbook:NAME rules with run and approve; a capability on the wrong kind of path is named with its line", () => {
  const config = parse("roles:\n  ops:\n    - { path: 'runbook:cdn-*', capabilities: [read, run] }\n    - { path: 'runbook:*', capabilities: [approve] }\n");
  assert.deepEqual(config.roles["ops"], [
    { path: "runbook:cdn-*", capabilities: ["read", "run"] },
    { path: "runbook:*", capabilities: ["approve"] },
  ]);
  const bad = "roles:\n  ops:\n    - path: runbook:cdn-*\n      capabilities: [read, write]\n    - path: app/*\n      capabilities:\n        - read\n        - run\n    - { path: 'runbook:a/b', capabilities: [read] }\n";
  assert.equal(
    configError(() => parse(bad)),
    `${F}: 3 problems:\n` +
      `  ${F}:4: role "ops" rule 1 (runbook:cdn-*): write does not apply to runbooks; a runbook: rule grants read, run, approve\n` +
      `  ${F}:8: role "ops" rule 2 (app/*): run applies only to runbooks (runbook:NAME); secret names take read, list, write, delete, purge, rotate; system paths read, list, write, delete\n` +
      `  ${F}:9: role "ops" rule 3 path "runbook:a/b": a runbook pattern is one segment: runbook names have no '/'; a rule path is a system path (sys:tokens, sys:audit, sys:metrics, sys:roles), runbook:NAME (a glob over runbook names, e.g. runbook:*, runbook:cdn-*) or '/'-separated segments of letters, digits, '_', '.', '-' and '*', where '*' is one whole segment, '**' (a whole segment) is any number of segments (a trailing '/**' at least one) and '*' inside a segment stays within it (e.g. app/*, app/**, db/api-*/password)`,
  );
  assert.match(configError(() => parse("", { COFFER_ROLES: "x: [{ path: 'sys:audit', capabilities: [approve] }]" })), /^COFFER_ROLES:1: role "x" rule 1 \(sys:audit\): approve applies only to runbooks/);
});
