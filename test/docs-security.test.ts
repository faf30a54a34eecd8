/**
 * docs/security.md against the code: the systemd unit's hardening (and, when systemd-analyze is
 * installed, its verdict, with the ExecReload drop-in too), the config keys, variables and
 * metric names the page names, the production guard's rules, the TLS, PostgreSQL and Redis
 * claims, and the defaults it quotes. A failure here means the page has drifted from the code.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KNOWN_WEAK_JWT_SECRETS, parseServerConfig, productionProblems, weakSecretRule } from "../src/server/config.ts";
import { SERVER_SCHEMA } from "../src/server/config-schema.ts";
import { CLOCK_SKEW_SECONDS } from "../src/server/jwt.ts";
import { TOKEN_PREFIX } from "../src/server/keys.ts";
import { CHANGE_CHANNEL_POSTGRES, CHANGE_CHANNEL_REDIS } from "../src/server/changes.ts";
import { tempDir } from "./helpers.ts";

const root = (p: string): string => fileURLToPath(new URL(`../${p}`, import.meta.url));
const DOC = readFileSync(root("docs/security.md"), "utf8");
const CONFIG_SRC = readFileSync(root("src/server/config.ts"), "utf8");
const METRICS_SRC = readFileSync(root("src/server/metrics.ts"), "utf8");
const EXEC_RELOAD = "/bin/kill -HUP $MAINPID";
const STRONG = "Zq7vK2pX9mWc4TgR8yLbN3hJ6dFsA1eUoQ0iGtVwCxPk";
const EXEC_START = "/usr/bin/env coffer serve --data /var/lib/coffer --config /etc/coffer/server.yml";

/** The fenced blocks of a language, with the fence's indentation removed from every line. */
function blocks(lang: string): string[] {
  const out: string[] = [];
  for (const m of DOC.matchAll(/^( *)```([\w-]*)\n([\s\S]*?)^\1```$/gm)) {
    if (m[2] !== lang) continue;
    const indent = m[1]!.length;
    out.push(m[3]!.split("\n").map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join("\n"));
  }
  return out;
}

/** The unit in the page: its only ```ini block with a [Unit] section. */
function unitText(): string {
  const units = blocks("ini").filter((b) => /^\[Unit\]$/m.test(b));
  assert.equal(units.length, 1, "docs/security.md has exactly one ```ini block with [Unit], the unit");
  return units[0]!;
}

/** The drop-ins: the ```ini blocks that are only a [Service] section. */
function dropIns(): string[] {
  return blocks("ini").filter((b) => !/^\[Unit\]$/m.test(b));
}

/** The ExecReload drop-in. */
function reloadDropIn(): string {
  const found = dropIns().filter((b) => /^ExecReload=/m.test(b));
  assert.equal(found.length, 1, "docs/security.md has exactly one drop-in ```ini block with ExecReload=");
  return found[0]!;
}

/** The drop-in that lets bubblewrap start (runbooks with isolation: sandbox). */
function sandboxDropIn(): string {
  const found = dropIns().filter((b) => /^RestrictNamespaces=/m.test(b));
  assert.equal(found.length, 1, "docs/security.md has exactly one drop-in ```ini block with RestrictNamespaces=");
  return found[0]!;
}

/** `Key=value` settings of a unit, in order; comments and section headers left out. */
function settings(unit: string): [string, string][] {
  return unit
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith(";") && !l.startsWith("["))
    .map((l) => {
      const i = l.indexOf("=");
      assert.ok(i > 0, `not a Key=value line: ${l}`);
      return [l.slice(0, i), l.slice(i + 1)] as [string, string];
    });
}

/** Every `code span` of the page. */
function codeSpans(): string[] {
  const prose = DOC.replace(/^( *)```[\s\S]*?^\1```$/gm, "");
  return [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
}

/** A program on PATH, or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return ["/usr/bin", "/bin"].map((d) => join(d, name)).find((p) => existsSync(p));
}

/** `rateLimit.ipRequests` → `COFFER_RATE_LIMIT_IP_REQUESTS`, as config.ts names variables. */
function envName(path: string): string {
  return `COFFER_${path.split(".").map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_")}`;
}

/** The top-level keys and the sections' keys of the server config's schema, sections within sections too (`runbooks.rateLimit`). */
function configKeys(): { top: string[]; sections: Map<string, string[]> } {
  type Props = Record<string, { properties?: Props }>;
  const props = SERVER_SCHEMA["properties"] as Props;
  const sections = new Map<string, string[]>();
  const walk = (prefix: string, p: Props): void => {
    for (const [k, v] of Object.entries(p)) {
      if (v.properties === undefined) continue;
      const path = prefix === "" ? k : `${prefix}.${k}`;
      sections.set(path, Object.keys(v.properties));
      walk(path, v.properties);
    }
  };
  walk("", props);
  assert.ok(sections.size >= 5, "the schema has its sections");
  return { top: Object.keys(props), sections };
}

test("the unit carries the hardening directives and leaves MemoryDenyWriteExecute off", () => {
  const s = settings(unitText());
  const has = (key: string, value: string): boolean => s.some(([k, v]) => k === key && v === value);
  const required: [string, string][] = [
    ["NoNewPrivileges", "yes"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["PrivateTmp", "yes"],
    ["PrivateDevices", "yes"],
    ["ProtectKernelTunables", "yes"],
    ["ProtectKernelModules", "yes"],
    ["ProtectKernelLogs", "yes"],
    ["ProtectControlGroups", "yes"],
    ["RestrictNamespaces", "yes"],
    ["LockPersonality", "yes"],
    ["RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"],
    ["SystemCallFilter", "@system-service"],
    ["SystemCallArchitectures", "native"],
    ["CapabilityBoundingSet", ""],
    ["UMask", "0077"],
    ["LimitCORE", "0"],
    ["User", "coffer"],
    ["StateDirectory", "coffer"],
    ["StateDirectoryMode", "0700"],
    ["Environment", "COFFER_PRODUCTION=1"],
    ["ExecStart", EXEC_START],
    ["KillSignal", "SIGTERM"],
    ["Restart", "on-failure"],
  ];
  for (const [k, v] of required) assert.ok(has(k, v), `the unit sets ${k}=${v}`);
  assert.ok(s.some(([k]) => k === "TimeoutStopSec"), "the unit sets TimeoutStopSec");
  for (const [k, v] of s) {
    if (k === "MemoryDenyWriteExecute") assert.doesNotMatch(v, /^(yes|true|on|1)$/i, "MemoryDenyWriteExecute=yes breaks Node's JIT");
  }
  // --data is the StateDirectory, so systemd creates and owns what the server opens.
  assert.match(EXEC_START, /--data \/var\/lib\/coffer /);
  assert.match(DOC, /MemoryDenyWriteExecute=yes` would break the server/);
});

test("systemd-analyze verify accepts the unit, and security --offline rates it as the page says", { skip: onPath("systemd-analyze") === undefined && "no systemd-analyze" }, (t) => {
  const analyze = onPath("systemd-analyze")!;
  const dir = tempDir(t, "coffer-docs-unit-");
  // An ExecStart binary that exists here; coffer itself may not be on this machine's PATH.
  const bin = /^[A-Za-z0-9_./+-]+$/.test(process.execPath) ? process.execPath : "/bin/sh";
  const unit = unitText().replace(/^ExecStart=.*$/m, `ExecStart=${bin} --version`);
  assert.notEqual(unit, unitText(), "ExecStart was replaced");
  writeFileSync(join(dir, "coffer.service"), unit);
  const r = spawnSync(analyze, ["verify", "./coffer.service"], { cwd: dir, encoding: "utf8" });
  assert.equal(r.error, undefined);
  assert.equal(r.stderr, "", `systemd-analyze verify complains:\n${r.stderr}`);
  assert.equal(r.status, 0);

  // The unit with the drop-in's ExecReload= merged into [Service] is accepted too.
  const reload = settings(reloadDropIn()).map(([k, v]) => `${k}=${v}`).join("\n");
  writeFileSync(join(dir, "reload.service"), unit.replace(/^(ExecStart=.*)$/m, `$1\n${reload}`));
  const r2 = spawnSync(analyze, ["verify", "./reload.service"], { cwd: dir, encoding: "utf8" });
  assert.equal(r2.stderr, "", `systemd-analyze verify complains about the unit with the drop-in:\n${r2.stderr}`);
  assert.equal(r2.status, 0);

  // And with the sandbox drop-in: the namespaces bubblewrap makes, and its mount calls.
  const sandbox = settings(sandboxDropIn());
  assert.deepEqual(sandbox, [["RestrictNamespaces", ""], ["RestrictNamespaces", "user mnt pid net ipc uts cgroup"], ["SystemCallFilter", "@mount"]]);
  writeFileSync(join(dir, "sandbox.service"), unit.replace(/^(ExecStart=.*)$/m, `$1\n${sandbox.map(([k, v]) => `${k}=${v}`).join("\n")}`));
  const r3 = spawnSync(analyze, ["verify", "./sandbox.service"], { cwd: dir, encoding: "utf8" });
  assert.equal(r3.stderr, "", `systemd-analyze verify complains about the unit with the sandbox drop-in:\n${r3.stderr}`);
  assert.equal(r3.status, 0);

  // The check is real: the same unit with a missing binary is refused.
  writeFileSync(join(dir, "broken.service"), unit.replace(/^ExecStart=\S+/m, "ExecStart=/nonexistent/coffer"));
  const broken = spawnSync(analyze, ["verify", "./broken.service"], { cwd: dir, encoding: "utf8" });
  assert.notEqual(broken.status, 0);

  const sec = spawnSync(analyze, ["security", "--offline=yes", "./coffer.service"], { cwd: dir, encoding: "utf8" });
  const level = /Overall exposure level for \S+: ([0-9.]+)/.exec(sec.stdout);
  if (level === null) return t.skip(`security --offline gives no level here:\n${sec.stdout}${sec.stderr}`);
  assert.ok(Number(level[1]) <= 3.0, `exposure ${level[1]} is above 3.0`);
  const quoted = /rates it at \*\*([0-9.]+) OK\*\*/.exec(DOC);
  const checkedWith = /Checked with systemd ([0-9]+)/.exec(DOC);
  assert.ok(quoted && checkedWith, "the page quotes the exposure level and the systemd version it was checked with");
  const version = /systemd ([0-9]+)/.exec(spawnSync(analyze, ["--version"], { encoding: "utf8" }).stdout)?.[1];
  // Scores move between systemd versions; on the quoted one the figure must match.
  if (version === checkedWith[1]) assert.equal(level[1], quoted[1], "the exposure level quoted in the page");
});

test("every config key and COFFER_ variable the page names exists in src/server/config.ts", () => {
  const { top, sections } = configKeys();
  for (const named of ["devLogin", "behindProxy", "metrics.public"]) {
    assert.ok(DOC.includes(`\`${named}`), `the page names ${named}`);
    assert.ok(CONFIG_SRC.includes(named.split(".").at(-1)!), `config.ts knows ${named}`);
  }
  // COFFER_EXECUTION_ID is not read: it is what the server gives a runbook's script.
  const known = new Set<string>(["COFFER_ENV", "COFFER_EXECUTION_ID"]);
  for (const k of top) known.add(envName(k));
  for (const [s, keys] of sections) for (const k of keys) known.add(envName(`${s}.${k}`));

  let checked = 0;
  for (const span of codeSpans()) {
    const dotted = /^([a-z][A-Za-z]*(?:\.[a-z][A-Za-z]*)?)\.([a-z][A-Za-z]*)(?:$|:|\{)/.exec(span);
    if (dotted !== null && sections.has(dotted[1]!)) {
      assert.ok(sections.get(dotted[1]!)!.includes(dotted[2]!), `\`${span}\`: ${dotted[1]}.${dotted[2]} is not a key of config.ts`);
      checked++;
      continue;
    }
    const keyColon = /^([a-z][A-Za-z]*):(?: |$)/.exec(span);
    if (keyColon !== null) {
      assert.ok(top.includes(keyColon[1]!), `\`${span}\`: ${keyColon[1]} is not a top-level key of config.ts`);
      checked++;
    }
  }
  assert.ok(checked >= 20, `only ${checked} config keys found in the page`);
  const vars = new Set([...DOC.matchAll(/\bCOFFER_[A-Z_]+\b/g)].map((m) => m[0]));
  for (const v of vars) assert.ok(known.has(v), `${v} is not a variable config.ts reads`);
  assert.ok(vars.size >= 5);
});

test("every ```yaml block is a valid server config that passes the production guard", () => {
  const yaml = blocks("yaml");
  assert.ok(yaml.length >= 2, "the page has the roles example and the mutual TLS example");
  let withRoles = 0;
  let withClients = 0;
  for (const text of yaml) {
    const config = parseServerConfig(text, "docs/security.md", {}, { production: true });
    assert.deepEqual(productionProblems(config), [], text);
    assert.equal(config.metrics.public, false);
    if (["reader", "deployer", "auditor", "minter"].every((role) => Object.hasOwn(config.roles, role))) withRoles++;
    if (config.clients !== undefined) {
      withClients++;
      assert.ok(config.tls?.clientCa !== undefined, "clients come with tls.clientCa");
      for (const roles of Object.values(config.clients)) assert.ok(!roles.includes("root"), "the example maps no certificate to root");
    }
  }
  assert.equal(withRoles, 1, "one example defines the roles reader, deployer, auditor and minter");
  assert.equal(withClients, 1, "one example maps client certificates to roles");
});

test("the page's list of production-guard rules is productionProblems' list", () => {
  const start = DOC.indexOf("### What the production guard refuses");
  const end = DOC.indexOf("The server prints every problem at once", start);
  assert.ok(start > 0 && end > start, "the page has the production guard section");
  const bullets = DOC.slice(start, end)
    .split(/\n\s*- /)
    .slice(1)
    .map((b) => b.replace(/\s+/g, " ").trim());
  const parse = (text: string) => parseServerConfig(text, "server.yml", {}, { production: true });
  const jwt = (secret: string): string => `jwt: { secret: "${secret}", issuer: i, audience: a }\n`;
  // Each crafted config breaks one rule; the phrase is what the message and the bullet share.
  const rules: [string, string][] = [
    ["devLogin: true\n", "devLogin"],
    ["listen: 0.0.0.0:8200\n", "non-loopback"],
  ];
  assert.equal(bullets.length, rules.length, `the page lists ${bullets.length} rules, the guard has ${rules.length}`);
  const matched = new Set<number>();
  for (const [text, phrase] of rules) {
    const problems = productionProblems(parse(text));
    assert.equal(problems.length, 1, text);
    const message = problems[0]!;
    assert.ok(message.includes(phrase), `the guard's message says "${phrase}": ${message}`);
    const named = /^(\S+) \((COFFER_[A-Z_]+)\)/.exec(message);
    assert.ok(named, `the message names its key and variable: ${message}`);
    const i = bullets.findIndex((b) => b.includes(`\`${named[1]}\` (\`${named[2]}\`)`) && b.includes(phrase));
    assert.ok(i >= 0, `no bullet names \`${named[1]}\` (\`${named[2]}\`) and "${phrase}"`);
    matched.add(i);
    if (message.includes("behindProxy")) assert.match(bullets[i]!, /`behindProxy: 1` \(`COFFER_BEHIND_PROXY`\)/);
  }
  assert.equal(matched.size, rules.length, "each bullet is a different rule");
  // The defaults the page quotes are on the list; its command is the one the message gives.
  // The weak-secret paragraph after the bullets: its defaults are on the list, refused in any mode.
  const weakPara = DOC.slice(DOC.indexOf("In production or not, the server refuses a `jwt.secret`", start), end);
  const defaults = codeSpans().filter((s) => /^[a-z0-9]+(-[a-z0-9]+)*$/.test(s) && weakPara.includes(`\`${s}\``));
  assert.ok(defaults.includes("dev-secret-change-me"));
  for (const d of defaults) assert.ok(KNOWN_WEAK_JWT_SECRETS.includes(d), `${d} is not in KNOWN_WEAK_JWT_SECRETS`);
  for (const weak of [jwt("dev-secret-change-me"), jwt("short")]) assert.throws(() => parseServerConfig(weak, "server.yml", {}), /jwt\.secret/);
  const command = /`(openssl rand [^`]+)`/.exec(weakSecretRule("short")!)?.[1];
  assert.ok(command !== undefined && DOC.includes(`\`${command}\``), `the page gives ${command}`);
  // A fine production config has no problem at all.
  assert.deepEqual(productionProblems(parse(`listen: 127.0.0.1:8200\n${jwt(STRONG)}`)), []);
  assert.deepEqual(productionProblems(parse("listen: 127.0.0.1:8200\nbehindProxy: true\n")), []);
});

test("TLS is described as it is: the guard takes tls: as HTTPS, and the server serves it", () => {
  // tls: answers the plain-HTTP rule, and the server really uses it (tls.ts, wired in server.ts).
  const config = parseServerConfig("listen: 0.0.0.0:8200\ntls: { cert: /c, key: /k }\n", "server.yml", {}, { production: true });
  assert.deepEqual(productionProblems(config), []);
  const server = readFileSync(root("src/server/server.ts"), "utf8");
  assert.match(server, /loadTlsOptions\(config\.tls\)/);
  assert.match(server, /reloadOnSighup\(/);
  const tls = readFileSync(root("src/server/tls.ts"), "utf8");
  assert.match(tls, /minVersion: "TLSv1\.2"/);
  assert.match(DOC, /TLS 1\.2 as the minimum/);
  // The old warnings are gone.
  assert.doesNotMatch(DOC, /not implemented yet|does not turn on HTTPS|TLS is not\s+implemented/);
  // clients may name root (unlike a JWT claim), and the page warns about it.
  const rootClient = parseServerConfig(
    "tls: { cert: /c, key: /k, clientCa: /ca }\nclients: { admin-box: [root] }\n", "server.yml", {}, {},
  );
  assert.deepEqual({ ...rootClient.clients }, { "admin-box": ["root"] });
  assert.match(DOC, /`clients:` may\s+map a certificate to `root`\. Don't do it/);
  assert.match(DOC, /never map a certificate to `root`/);
  // SIGHUP: the drop-in is the one the page describes; without tls serve keeps running (it says so).
  assert.deepEqual(settings(reloadDropIn()), [["ExecReload", EXEC_RELOAD]]);
  assert.match(DOC, /Without `tls:` there is nothing to reload: `coffer serve` logs that and keeps running/);
  const serve = readFileSync(root("src/cli/commands/serve.ts"), "utf8");
  assert.match(serve, /reloadOnSighup: true/);
  assert.match(serve, /process\.on\("SIGHUP", \(\) => ctx\.say\("coffer: SIGHUP: nothing to reload/, "serve ignores SIGHUP without tls: (the page says so)");
  void server;
});

test("the page covers the new keys: database, redis, tls.clientCa, clients; and its PostgreSQL and Redis claims", () => {
  const { top, sections } = configKeys();
  for (const key of ["database", "redis", "tls", "clients"]) {
    assert.ok(top.includes(key), `config.ts knows ${key}`);
    assert.ok(DOC.includes(`\`${key}`), `the page names \`${key}\``);
  }
  assert.ok(sections.get("tls")?.includes("clientCa"));
  for (const span of ["`tls.clientCa`", "`tls.cert`", "`tls.key`", "`COFFER_DATABASE`", "`COFFER_REDIS`", "`COFFER_TLS_CLIENT_CA`"]) {
    assert.ok(DOC.includes(span), `the page names ${span}`);
  }
  // The URL schemes the page gives are the ones config.ts accepts.
  const parse = (text: string) => parseServerConfig(text, "server.yml", {});
  assert.equal(parse("database: postgres://coffer:p@db.internal:5432/coffer?sslmode=verify-full\n").database?.startsWith("postgres://"), true);
  assert.equal(parse("redis: rediss://:p@redis.internal:6380\n").redis, "rediss://:p@redis.internal:6380");
  assert.match(DOC, /`sslmode=verify-full`/);
  assert.match(DOC, /`rediss:\/\/`/);
  // clients needs tls.clientCa, as the page says.
  assert.throws(() => parse("roles: { reader: [ { path: app/*, capabilities: [read] } ] }\nclients: { a: [reader] }\n"), /needs tls\.clientCa/);
  // The channels and key prefixes the page names are the code's.
  assert.ok(DOC.includes(`\`${CHANGE_CHANNEL_POSTGRES}\``));
  assert.ok(DOC.includes(`\`${CHANGE_CHANNEL_REDIS}:<store id>\``));
  assert.match(readFileSync(root("src/server/rate-limit-store.ts"), "utf8"), /`coffer:rl:\$\{prefix\}:`/);
  assert.ok(DOC.includes("`coffer:rl:<store id>:`"));
  // Health says degraded while Redis is down, with the rateLimit text the page quotes.
  const app = ["src/server/routes/system.ts", "src/server/routes/watch.ts"].map((f) => readFileSync(root(f), "utf8")).join("\n");
  assert.ok(app.includes(`"per instance: redis unreachable"`) && DOC.includes(`\`"rateLimit": "per instance: redis unreachable"\``));
  assert.ok(app.includes(`"degraded"`) && DOC.includes(`\`"status": "degraded"\``));
  assert.ok(app.includes(`"secret.watch"`) && DOC.includes("`secret.watch`"));
  // A second init against a database made with another key is refused, as the page says.
  assert.match(readFileSync(root("src/server/server.ts"), "utf8"), /"E_CONFLICT", "the database was already initialised with another master key/);
  assert.match(DOC, /is then refused with `E_CONFLICT`/);
});

test("every coffer_ metric the page names is defined in src/server/metrics.ts", () => {
  const defined = new Set([...METRICS_SRC.matchAll(/"(coffer_[a-z0-9_]+)"/g)].map((m) => m[1]!));
  assert.ok(defined.size >= 8, "metric names parsed from metrics.ts");
  // Table names and the NOTIFY channel share the prefix; they are checked against the code too.
  const storage = readdirSync(root("src/storage")).filter((f) => f.startsWith("postgres"))
    .map((f) => readFileSync(root(`src/storage/${f}`), "utf8")).join("\n");
  const tables = new Set([...storage.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(coffer_[a-z_]+)/g)].map((m) => m[1]!));
  assert.ok(tables.has("coffer_versions") && tables.has("coffer_audit"));
  const named = new Set([...DOC.matchAll(/\bcoffer_[a-z0-9_]+/g)].map((m) => m[0]));
  let metrics = 0;
  for (const name of named) {
    if (tables.has(name) || name === CHANGE_CHANNEL_POSTGRES) continue;
    assert.ok(defined.has(name), `${name} is not a metric of src/server/metrics.ts (nor a table or channel)`);
    metrics++;
  }
  for (const m of ["coffer_rate_limit_shared", "coffer_rate_limit_local_fallbacks_total", "coffer_change_bus_up"]) {
    assert.ok(named.has(m), `the page names ${m}`);
  }
  assert.ok(metrics >= 7, `only ${metrics} metrics named`);
});

test("the defaults and constants the page quotes are the code's", () => {
  const d = parseServerConfig("", "server.yml", {});
  assert.equal(`${d.listen.host}:${d.listen.port}`, "127.0.0.1:8200");
  assert.ok(DOC.includes("`127.0.0.1:8200`"));
  assert.equal(d.rateLimit.windowMs, 60_000);
  assert.match(DOC, new RegExp(`by\\s+default ${d.rateLimit.ipRequests} per minute`));
  assert.match(DOC, new RegExp(`by\\s+default ${d.rateLimit.requests} per minute`));
  assert.equal(d.rateLimit.ipRequests, 10 * d.rateLimit.requests);
  assert.match(DOC, /default 10 × `rateLimit\.requests`/);
  assert.equal(d.limits.valueBytes, 1024 * 1024);
  const base64 = Math.ceil((d.limits.valueBytes * 4) / 3);
  assert.equal(d.limits.bodyBytes, base64 + 64 * 1024);
  assert.match(DOC, new RegExp(`default, ${base64.toLocaleString("en").replaceAll(",", " ")} bytes\\s+\\(a 1 MiB value in base64\\) \\+ 64 KiB`));
  assert.match(DOC, /default 1 MiB\)/);
  assert.equal(d.metrics.public, false);
  assert.equal(d.devLogin, false);
  assert.match(DOC, new RegExp(`get ${CLOCK_SKEW_SECONDS} s of clock skew`));
  assert.ok(DOC.includes(`\`${TOKEN_PREFIX}\``));
});
