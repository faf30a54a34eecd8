/**
 * `coffer set/get/list/history/rm/rm --purge/rollback/audit/audit verify` with `--server` and with
 * COFFER_SERVER, `coffer whoami` and `coffer token create|list|revoke`, against the real server
 * (in this process, on a free loopback port): the built CLI as a subprocess in a temp HOME,
 * logged in with `coffer login`. Exit codes are the local commands' (errors.ts), and no value
 * ever reaches stderr.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";
import { startTestServer, type TestServer } from "../server/harness.ts";
import { cofferAsync, type RunResult } from "./run-cli.ts";

const ROLES = `
roles:
  dev: [ { path: "app/**", capabilities: [read, list, write, delete] } ]
  auditor: [ { path: "sys:audit", capabilities: [read] } ]
  admin: [ { path: "sys:tokens", capabilities: [read, write, delete] } ]
  reader: [ { path: "app/*", capabilities: [read, list] } ]
  shredder: [ { path: "app/**", capabilities: [purge, list] } ]
`;
const V1 = "remote-value-one-Qz81";
const V2 = "remote-value-two-Wp27";
const ARGV_VALUE = "remote-argv-value-Lm44";
const VALUES = [V1, V2, ARGV_VALUE];

// The server runs in this process: the CLI must not be run with spawnSync.
const cli = cofferAsync;

interface Setup { home: string; s: TestServer; run: (args: string[], options?: { env?: Record<string, string>; input?: string }) => Promise<RunResult>; stderr: string[] }

async function setup(t: TestContext): Promise<Setup> {
  const s = await startTestServer(t, ROLES);
  const home = tempDir(t);
  const login = await cli(home, ["login", s.url], { env: { COFFER_TOKEN: await s.token(["dev", "auditor", "admin"], "alice") } });
  assert.equal(login.code, 0, login.err);
  const stderr: string[] = [];
  const run = async (args: string[], options: { env?: Record<string, string>; input?: string } = {}) => {
    const r = await cli(home, args, options);
    stderr.push(r.err);
    return r;
  };
  t.after(() => {
    for (const e of stderr) for (const v of VALUES) assert.ok(!e.includes(v), `a value reached stderr: ${e}`);
    for (const v of VALUES) assert.ok(!s.logs.join("\n").includes(v), "a value reached the server's log");
  });
  return { home, s, run, stderr };
}

type Via = (url: string, args: string[]) => { args: string[]; env: Record<string, string> };

async function secretsTour(t: TestContext, via: Via): Promise<void> {
  const { run, s } = await setup(t);
  const go = (args: string[], input?: string) => {
    const w = via(s.url, args);
    return run(w.args, { env: w.env, ...(input !== undefined && { input }) });
  };
  const set1 = await go(["set", "app/db/password", "--description", "primary db"], V1);
  assert.equal(set1.code, 0, set1.err);
  assert.equal(set1.err, "set app/db/password v1\n");
  const set2 = await go(["set", "app/db/password", "--json"], V2);
  assert.equal(set2.code, 0, set2.err);
  assert.deepEqual(JSON.parse(set2.out), { name: "app/db/password", version: 2 });
  const conflict = await go(["set", "app/db/password", "--if-version", "1"], "x");
  assert.equal(conflict.code, ERROR_CODES.E_CONFLICT.exit, conflict.err);

  const argv = await go(["set", "app/argv", ARGV_VALUE]);
  assert.equal(argv.code, 0, argv.err);
  assert.match(argv.err, /warning: a value on the command line lands in shell history and \/proc\/\*\/cmdline/);

  const get = await go(["get", "app/db/password"]);
  assert.equal(get.code, 0, get.err);
  assert.equal(get.out, V2);
  const getJson = JSON.parse((await go(["get", "app/db/password", "--version", "1", "--json"])).out);
  assert.deepEqual([getJson.name, getJson.version, getJson.value, typeof getJson.updatedAt], ["app/db/password", 1, V1, "string"]);

  const list = await go(["list", "app/"]);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^NAME\s+VERSION\s+UPDATED\s+BY\s+DESCRIPTION\n/);
  assert.match(list.out, /app\/db\/password\s+2\s+\S+Z\s+token:\S+\s+primary db/);
  assert.deepEqual(JSON.parse((await go(["list", "--json"])).out).map((r: { name: string }) => r.name), ["app/argv", "app/db/password"]);
  assert.equal((await go(["list", "nothing/"])).err, "no secrets under \"nothing/\"\n");

  const history = await go(["history", "app/db/password"]);
  assert.equal(history.code, 0, history.err);
  assert.match(history.out, /^VERSION\s+CREATED\s+BY\s*\n1\s+\S+\s+token:\S+\s*\n2\s+\S+\s+token:\S+\s+current\n$/);
  assert.deepEqual(JSON.parse((await go(["history", "app/db/password", "--json"])).out).map((v: { version: number }) => v.version), [1, 2]);

  const rollback = await go(["rollback", "app/db/password", "--to", "1"]);
  assert.equal(rollback.code, 0, rollback.err);
  assert.equal(rollback.err, "rolled back app/db/password: v3 now holds the value of v1\n");
  assert.equal((await go(["get", "app/db/password"])).out, V1);
  assert.equal((await go(["rollback", "app/db/password", "--to", "9"])).code, ERROR_CODES.E_NOT_FOUND.exit);

  const rm = await go(["rm", "app/db/password"]);
  assert.equal(rm.code, 0, rm.err);
  assert.match(rm.err, /^removed app\/db\/password \(v3 and its history kept; `coffer rollback app\/db\/password --to 3` restores it\)\n$/);
  const gone = await go(["get", "app/db/password"]);
  assert.equal(gone.code, ERROR_CODES.E_NOT_FOUND.exit, gone.err);
  assert.equal((await go(["rm", "app/db/password", "--json"])).code, ERROR_CODES.E_NOT_FOUND.exit);
  assert.equal((await go(["rollback", "app/db/password", "--to", "2", "--json"])).code, 0);
  assert.equal((await go(["get", "app/db/password"])).out, V2);

  const audit = await go(["audit"]);
  assert.equal(audit.code, 0, audit.err);
  assert.match(audit.out, /^SEQ\s+AT\s+ACTOR\s+ACTION\s+NAME\s+VERSION\s+DETAIL\n/);
  assert.match(audit.out, /secret\.rollback\s+app\/db\/password\s+3\s/);
  const reads = JSON.parse((await go(["audit", "--action", "secret.read", "--prefix", "app/db/", "--json"])).out);
  assert.ok(reads.length >= 3 && reads.every((r: { action: string; name: string }) => r.action === "secret.read" && r.name === "app/db/password"));
  const since = JSON.parse((await go(["audit", "--since", "1h", "--json"])).out);
  assert.ok(since.length > 5);
  for (const v of VALUES) assert.ok(!audit.out.includes(v));

  const verify = await go(["audit", "verify"]);
  assert.equal(verify.code, 0, verify.err);
  assert.match(verify.err, /^audit chain intact: \d+ records verify\n$/);
  assert.equal(JSON.parse((await go(["audit", "verify", "--full", "--json"])).out).ok, true);
}

test("set/get/list/history/rollback/rm/audit/audit verify with --server: the local commands' output and exit codes", async (t) => {
  await secretsTour(t, (url, args) => ({ args: [...args, "--server", url], env: {} }));
});

test("the same tour with COFFER_SERVER instead of --server", async (t) => {
  await secretsTour(t, (url, args) => ({ args, env: { COFFER_SERVER: url } }));
});

test("--server beats COFFER_SERVER; either with --store is a usage error; local-only flags are refused on a server", async (t) => {
  const { run, s } = await setup(t);
  const nowhere = "http://127.0.0.1:9";
  const ok = await run(["set", "app/x", "--server", s.url], { env: { COFFER_SERVER: nowhere }, input: V1 });
  assert.equal(ok.code, 0, ok.err);
  const wrong = await run(["get", "app/x", "--server", nowhere], { env: { COFFER_SERVER: s.url } });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.err, /127\.0\.0\.1:9/);
  assert.equal(wrong.out, "");

  // The server-only commands (whoami, token, runbook) take COFFER_SERVER over the saved login too.
  assert.notEqual((await run(["whoami"], { env: { COFFER_SERVER: nowhere } })).code, 0);
  assert.equal((await run(["whoami", "--server", s.url], { env: { COFFER_SERVER: nowhere } })).code, 0);

  const usage = ERROR_CODES.E_USAGE.exit;
  for (const [args, env, why] of [
    [["get", "app/x", "--server", s.url, "--store", "/tmp/x.db"], {}, /--store names a local store and --server a server/],
    [["list", "--store", "/tmp/x.db"], { COFFER_SERVER: s.url }, /--store names a local store and COFFER_SERVER a server/],
    [["list", "--deleted"], { COFFER_SERVER: s.url }, /--deleted is not available against a server/],
    [["set", "app/x", "--rotate-every", "30d", "--server", s.url], {}, /--rotate-every is not available against a server/],
    [["audit", "--action", "secret.read"], {}, /give --server URL/],
  ] as const) {
    const r = await run([...args], { env: { ...env }, input: V2 });
    assert.equal(r.code, usage, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, why);
  }
  assert.equal((await run(["get", "app/x", "--server", s.url])).out, V1, "nothing above changed it");
});

test("rm --purge --yes --server destroys every version with the local output; without the purge capability (delete is not enough) it is E_DENIED", async (t) => {
  const { run, s } = await setup(t);
  for (const v of [V1, V2]) assert.equal((await run(["set", "app/leaked", "--server", s.url], { input: v })).code, 0);
  const denied = await run(["rm", "app/leaked", "--purge", "--yes", "--server", s.url]);
  assert.equal(denied.code, ERROR_CODES.E_DENIED.exit, denied.err);
  assert.match(denied.err, /you may not purge secret "app\/leaked"/);

  const shredder = { COFFER_TOKEN: await s.token(["shredder"], "carol") };
  const unasked = await run(["rm", "app/leaked", "--purge", "--server", s.url], { env: shredder });
  assert.equal(unasked.code, ERROR_CODES.E_CANCELLED.exit, unasked.err);
  assert.match(unasked.err, /pass --yes/);
  assert.equal((await run(["get", "app/leaked", "--server", s.url])).out, V2, "nothing was purged without --yes");

  const purged = await run(["rm", "app/leaked", "--purge", "--yes", "--server", s.url], { env: shredder });
  assert.equal(purged.code, 0, purged.err);
  assert.equal(purged.err, "purged app/leaked: 2 versions destroyed\n");
  assert.equal(purged.out, "");
  for (const args of [["get", "app/leaked"], ["history", "app/leaked"], ["rollback", "app/leaked", "--to", "1"]]) {
    const r = await run([...args, "--server", s.url]);
    assert.equal(r.code, ERROR_CODES.E_NOT_FOUND.exit, `${args.join(" ")}: ${r.err}`);
  }
  assert.equal((await run(["rm", "app/leaked", "--purge", "--yes", "--server", s.url], { env: shredder })).code, ERROR_CODES.E_NOT_FOUND.exit);

  assert.equal((await run(["set", "app/other", "--server", s.url], { input: V1 })).code, 0);
  const json = await run(["rm", "app/other", "--purge", "--yes", "--json"], { env: { ...shredder, COFFER_SERVER: s.url } });
  assert.equal(json.code, 0, json.err);
  assert.deepEqual(JSON.parse(json.out), { name: "app/other", versions: 1, purged: true });

  const audit = JSON.parse((await run(["audit", "--action", "secret.purge", "--json", "--server", s.url])).out);
  assert.deepEqual(audit.map((r: { name: string; detail: { result: string; versions?: number } }) => [r.name, r.detail.result, r.detail.versions]),
    [["app/leaked", "denied", undefined], ["app/leaked", "ok", 2], ["app/leaked", "not_found", undefined], ["app/other", "ok", 1]]);
});

test("exit codes on 403 and 404 are the local ones (E_DENIED, E_NOT_FOUND), and a denied read leaks nothing", async (t) => {
  const { run, s } = await setup(t);
  assert.equal((await run(["set", "app/deep/x", "--server", s.url], { input: V1 })).code, 0);
  const reader = await s.token(["reader"], "bob");
  const denied = await run(["get", "app/deep/x", "--server", s.url], { env: { COFFER_TOKEN: reader } });
  assert.equal(denied.code, ERROR_CODES.E_DENIED.exit, denied.err);
  assert.match(denied.err, /you may not read secret "app\/deep\/x"/);
  assert.equal(denied.out, "");
  const setDenied = await run(["set", "app/y", "--server", s.url], { env: { COFFER_TOKEN: reader }, input: V2 });
  assert.equal(setDenied.code, ERROR_CODES.E_DENIED.exit, setDenied.err);
  assert.equal((await run(["audit", "--server", s.url], { env: { COFFER_TOKEN: reader } })).code, ERROR_CODES.E_DENIED.exit);
  assert.equal((await run(["history", "app/none", "--server", s.url])).code, ERROR_CODES.E_NOT_FOUND.exit);
  assert.equal((await run(["get", "app/none", "--server", s.url])).code, ERROR_CODES.E_NOT_FOUND.exit);
  assert.equal((await run(["rm", "app/none", "--server", s.url])).code, ERROR_CODES.E_NOT_FOUND.exit);
  const unauth = await run(["whoami", "--server", s.url], { env: { COFFER_TOKEN: "cof_not-a-real-token" } });
  assert.equal(unauth.code, ERROR_CODES.E_UNAUTHENTICATED.exit, unauth.err);
});

test("coffer whoami prints the subject, kind, roles and expiry", async (t) => {
  const { run, s } = await setup(t);
  const who = await run(["whoami"]);
  assert.equal(who.code, 0, who.err);
  assert.match(who.out, new RegExp(`^server   ${s.url.replace(/[.]/g, "\\.")}\nsubject  token:\\S+\nkind     token\nroles    dev, auditor, admin\nexpires  never\n$`));
  const json = JSON.parse((await run(["whoami", "--server", s.url, "--json"])).out);
  assert.deepEqual([json.kind, json.roles, json.expiresAt], ["token", ["dev", "auditor", "admin"], null]);
  assert.match(json.subject, /^token:/);
});

test("coffer token create prints the token alone on stdout, once; list shows it; revoke ends it", async (t) => {
  const { run } = await setup(t);
  const created = await run(["token", "create", "--name", "ci-deploy", "--role", "dev", "--ttl", "30d"]);
  assert.equal(created.code, 0, created.err);
  const token = created.out.trim();
  assert.match(created.out, /^cof_\S+\n$/);
  assert.ok(!created.err.includes(token), "the token is not on stderr");
  const id = /created token ([0-9a-f]{16}) "ci-deploy" \(roles: dev; expires (\S+)\)/.exec(created.err);
  assert.ok(id, created.err);
  const days = (Date.parse(id[2]!) - Date.now()) / 86_400_000;
  assert.ok(days > 29 && days <= 30, `expires in ${days} days`);

  const who = JSON.parse((await run(["whoami", "--json"], { env: { COFFER_TOKEN: token } })).out);
  assert.deepEqual(who.roles, ["dev"]);

  const list = await run(["token", "list"]);
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^ID\s+NAME\s+ROLES\s+CREATED\s+BY\s+EXPIRES\s+REVOKED\n/);
  assert.match(list.out, new RegExp(`${id[1]}\\s+ci-deploy\\s+dev\\s`));
  assert.ok(!list.out.includes(token));
  const listed = JSON.parse((await run(["token", "list", "--json"])).out);
  assert.equal(listed.find((x: { id: string }) => x.id === id[1]).revokedAt, null);

  const wider = await run(["token", "create", "--name", "too-wide", "--role", "reader"]);
  assert.equal(wider.code, ERROR_CODES.E_DENIED.exit, wider.err);
  assert.equal(wider.out, "");
  const json = JSON.parse((await run(["token", "create", "--name", "j", "--role", "auditor", "--json"])).out);
  assert.deepEqual([json.name, json.roles, json.expiresAt, typeof json.token], ["j", ["auditor"], null, "string"]);
  assert.equal((await run(["token", "create", "--name", "no-role"])).code, ERROR_CODES.E_USAGE.exit);

  const revoked = await run(["token", "revoke", id[1]!]);
  assert.equal(revoked.code, 0, revoked.err);
  assert.equal(revoked.err, `revoked token ${id[1]}\n`);
  const after = await run(["whoami"], { env: { COFFER_TOKEN: token } });
  assert.equal(after.code, ERROR_CODES.E_UNAUTHENTICATED.exit, after.err);
  assert.equal((await run(["token", "revoke", id[1]!])).code, ERROR_CODES.E_NOT_FOUND.exit);
  assert.equal((await run(["token", "revoke", "not-an-id"])).code, ERROR_CODES.E_USAGE.exit);
  assert.notEqual(JSON.parse((await run(["token", "list", "--json"])).out).find((x: { id: string }) => x.id === id[1]).revokedAt, null);
});

test("a revoked login gets the hint to log in again from every kind of server command (secrets, whoami, token, role)", async (t) => {
  const { run, s, home } = await setup(t);
  const self = await run(["whoami", "--json"]);
  assert.equal(self.code, 0, self.err);
  // The token coffer login saved is revoked by root: every command now meets a 401.
  const id = (await s.call("GET", "/v1/tokens", { token: s.rootToken })).json.tokens.find((x: { name: string }) => x.name === "alice").id as string;
  assert.equal((await s.call("DELETE", `/v1/tokens/${id}`, { token: s.rootToken })).status, 200);
  for (const args of [["get", "app/x", "--server", s.url], ["whoami"], ["token", "list"], ["role", "list"], ["list", "--server", s.url]]) {
    const r = await cli(home, args);
    assert.equal(r.code, ERROR_CODES.E_UNAUTHENTICATED.exit, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, /run `coffer login http:\/\/127\.0\.0\.1:\d+` again \(or check COFFER_TOKEN\)/, args.join(" "));
  }
});
