/**
 * `coffer doctor`: each check against the real CLI in a temp HOME, with a private
 * XDG_RUNTIME_DIR on tmpfs (/dev/shm), and a real `coffer serve` for the logged-in server check.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { coffer, cofferOk, serveAppServer, type RunResult } from "./run-cli.ts";

interface Check {
  check: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  fix: string | null;
  server?: { url: string; reachable: boolean; tokenValid: boolean | null; expiresAt: string | null; clockSkewSeconds: number | null };
}

/** A fresh user: `coffer init` and one secret, a private runtime dir on tmpfs, a project dir with a .coffer.yml. */
function setup(t: TestContext) {
  const home = tempDir(t);
  const runtime = mkdtempSync("/dev/shm/coffer-doctor-test-");
  t.after(() => rmSync(runtime, { recursive: true, force: true }));
  const env = { XDG_RUNTIME_DIR: runtime };
  const project = join(home, "project");
  mkdirSync(project);
  writeFileSync(join(project, ".coffer.yml"), "environments:\n  dev:\n    env:\n      DB: app/db\n");
  assert.equal(coffer(home, ["init"], { env }).code, 0);
  assert.equal(coffer(home, ["set", "app/db"], { env, input: "v" }).code, 0);
  const doctor = (args: string[] = [], extra: Record<string, string> = {}): RunResult => coffer(home, ["doctor", ...args], { env: { ...env, ...extra }, cwd: project });
  const checks = (extra: Record<string, string> = {}): { code: number; checks: Check[] } => {
    const r = doctor(["--json"], extra);
    assert.equal(r.err, "");
    return { code: r.code, checks: JSON.parse(r.out) as Check[] };
  };
  const identity = join(home, ".config", "coffer", "identity");
  const storeDir = join(home, ".local", "share", "coffer");
  return { home, runtime, project, env, doctor, checks, identity, storeDir };
}

const find = (checks: Check[], name: string): Check => {
  const c = checks.find((x) => x.check === name);
  assert.ok(c, `no check ${name} in ${JSON.stringify(checks)}`);
  return c;
};

test("a healthy fresh init: every check ok, exit 0, one line each; --json is [{check, status, detail, fix}]", (t) => {
  const { doctor, checks, identity, project } = setup(t);
  const r = doctor();
  assert.equal(r.code, 0, r.out + r.err);
  assert.equal(r.err, "");
  const lines = r.out.trimEnd().split("\n");
  assert.equal(lines.at(-1), "everything is ok");
  const json = checks();
  assert.equal(json.code, 0);
  assert.deepEqual(json.checks.map((c) => c.check), ["node", "identity", "identity dir", "store", "store dir", "runtime dir", "leftover dirs", "project file", "servers", "age"]);
  for (const c of json.checks) {
    assert.deepEqual(Object.keys(c), ["check", "status", "detail", "fix"]);
    assert.equal(c.status, "ok", `${c.check}: ${c.detail}`);
    assert.equal(c.fix, null);
    assert.equal(typeof c.detail, "string");
  }
  assert.equal(lines.length, json.checks.length + 2, "one line per check, a blank line and the summary");
  assert.match(find(json.checks, "node").detail, /^Node 2\d\.\d+\.\d+ \(coffer needs 24 or newer\)$/);
  assert.equal(find(json.checks, "identity").detail, `${identity} (yours, 0600)`);
  assert.match(find(json.checks, "runtime dir").detail, /\(yours, 0700, tmpfs\)/);
  assert.equal(find(json.checks, "project file").detail, `${join(project, ".coffer.yml")}: environments dev`);
});

test("a store directory made 0755 fails with the chmod that fixes it, exit 1", (t) => {
  const { doctor, checks, storeDir } = setup(t);
  chmodSync(storeDir, 0o755);
  const json = checks();
  assert.equal(json.code, 1);
  const c = find(json.checks, "store dir");
  assert.equal(c.status, "fail");
  assert.match(c.detail, /store directory .* is accessible by group or others \(mode 0755\)/);
  assert.equal(c.fix, `run \`chmod 700 ${storeDir}\``);
  const text = doctor();
  assert.equal(text.code, 1);
  assert.match(text.out, /^fail +store dir +store directory .*\n +fix: run `chmod 700 .*`\n/m);
  assert.match(text.out, /\n1 failed, 0 warnings\n$/);
});

test("an identity that is a symlink: to a file others can read or to nothing fails; to a private file warns with the mv that undoes it", (t) => {
  const { home, checks, identity } = setup(t);
  const elsewhere = join(home, "keys");
  mkdirSync(elsewhere, { mode: 0o700 });
  const real = join(elsewhere, "identity");
  renameSync(identity, real);
  symlinkSync(real, identity);

  let c = find(checks().checks, "identity");
  assert.equal(c.status, "warn");
  assert.match(c.detail, new RegExp(`is a symlink to ${real}; coffer follows it`));
  assert.equal(c.fix, `keep the file itself there: \`mv ${real} ${identity}\``);

  chmodSync(real, 0o644);
  const json = checks();
  assert.equal(json.code, 1);
  c = find(json.checks, "identity");
  assert.equal(c.status, "fail");
  assert.equal(c.fix, `run \`chmod 600 ${identity}\``);

  rmSync(real);
  c = find(checks().checks, "identity");
  assert.equal(c.status, "fail");
  assert.match(c.detail, /is a symlink to .*, which does not exist/);
});

test("no identity and no store: fail, and the fix is coffer init", (t) => {
  const home = tempDir(t);
  const r = coffer(home, ["doctor", "--json"]);
  assert.equal(r.code, 1);
  const checks = JSON.parse(r.out) as Check[];
  for (const name of ["identity", "store"]) {
    const c = find(checks, name);
    assert.equal(c.status, "fail");
    assert.match(c.fix ?? "", /^run `coffer init`/);
  }
});

test("a run dir left behind by a killed coffer run warns, naming it, with how it goes away", (t) => {
  const { checks, runtime } = setup(t);
  const dead = spawnSync("true").pid!; // exited and reaped: no such process any more
  const base = join(runtime, "coffer");
  const left = join(base, "0123456789abcdef");
  mkdirSync(left, { recursive: true, mode: 0o700 });
  chmodSync(base, 0o700);
  writeFileSync(join(left, ".coffer-owner"), JSON.stringify({ kind: "run", pid: dead, pgid: dead, created: "2026-01-01T00:00:00.000Z" }), { mode: 0o600 });
  writeFileSync(join(left, "db.pem"), "x", { mode: 0o400 });
  const json = checks();
  assert.equal(json.code, 0, "a warning alone is exit 0");
  const c = find(json.checks, "leftover dirs");
  assert.equal(c.status, "warn");
  assert.match(c.detail, new RegExp(`1 runtime dir left by a coffer that was killed.*${left} \\(run, pid ${dead},`));
  assert.equal(c.fix, `the next \`coffer run\` or \`coffer load\` removes them; or now: \`rm -r ${left}\``);
  assert.equal(find(json.checks, "runtime dir").status, "ok");
});

test("XDG_RUNTIME_DIR unset, or not private: warn with the fix, naming where coffer run goes instead", (t) => {
  const { checks, runtime } = setup(t);
  let c = find(checks({ XDG_RUNTIME_DIR: "" }).checks, "runtime dir");
  assert.equal(c.status, "warn");
  assert.match(c.detail, /no XDG_RUNTIME_DIR: secrets go to \/dev\/shm\/coffer-\d+/);
  assert.match(c.fix ?? "", /systemd-logind/);
  chmodSync(runtime, 0o755);
  c = find(checks().checks, "runtime dir");
  assert.equal(c.status, "warn");
  assert.match(c.detail, new RegExp(`XDG_RUNTIME_DIR=${runtime} is not a private dir of yours`));
});

test("a project file others can write fails with the coffer trust that would accept it", (t) => {
  const { checks, project } = setup(t);
  chmodSync(join(project, ".coffer.yml"), 0o666);
  const c = find(checks().checks, "project file");
  assert.equal(c.status, "fail");
  assert.equal(c.fix, `if you trust it: \`coffer trust ${project}\``);
});

test("logged-in servers: one that is down fails with reachable false; a real coffer serve is ok with the token's expiry and the clock skew; a revoked token fails", async (t) => {
  const { home, checks, env } = setup(t);
  // a port nothing listens on
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const down = `http://127.0.0.1:${(probe.address() as { port: number }).port}`;
  await new Promise((resolve) => probe.close(resolve));

  const served = await serveAppServer(t, home);
  const created = coffer(home, ["token", "create", "--name", "doctor", "--role", "app", "--ttl", "30d", "--server", served.url, "--json"], { env: { ...env, COFFER_TOKEN: served.root } });
  assert.equal(created.code, 0, created.err);
  const token = JSON.parse(created.out) as { token: string; id: string; expiresAt: string };
  cofferOk(home, ["login", served.url, "--token-stdin"], token.token);
  // the down server's token, saved as `coffer login` saves one (login itself needs the server up)
  const file = join(home, ".config", "coffer", "tokens.json");
  const saved = JSON.parse(readFileSync(file, "utf8"));
  saved.servers[down] = { token: `cof_${"D".repeat(43)}`, savedAt: new Date().toISOString() };
  writeFileSync(file, JSON.stringify(saved), { mode: 0o600 });

  let json = checks();
  assert.equal(json.code, 1);
  const bad = find(json.checks, `server ${down}`);
  assert.equal(bad.status, "fail");
  assert.match(bad.detail, /^unreachable: /);
  assert.deepEqual(bad.server, { url: down, reachable: false, tokenValid: null, expiresAt: null, clockSkewSeconds: null });
  assert.match(bad.fix ?? "", /start the server or check the URL/);

  const up = find(json.checks, `server ${served.url}`);
  assert.equal(up.status, "ok", up.detail);
  assert.equal(up.server?.reachable, true);
  assert.equal(up.server?.tokenValid, true);
  assert.equal(up.server?.expiresAt, token.expiresAt);
  assert.equal(typeof up.server?.clockSkewSeconds, "number");
  assert.ok(Math.abs(up.server!.clockSkewSeconds!) <= 2, "the same machine's clock");
  assert.match(up.detail, new RegExp(`^reachable, token valid, expires ${token.expiresAt}, clock skew -?\\d+s$`));
  assert.equal(JSON.stringify(json.checks).includes(token.token), false, "the token is never printed");

  const revoke = coffer(home, ["token", "revoke", token.id, "--server", served.url], { env: { COFFER_TOKEN: served.root } });
  assert.equal(revoke.code, 0, revoke.err);
  json = checks();
  const revoked = find(json.checks, `server ${served.url}`);
  assert.equal(revoked.status, "fail");
  assert.equal(revoked.server?.reachable, true);
  assert.equal(revoked.server?.tokenValid, false);
  assert.match(revoked.fix ?? "", new RegExp(`coffer login ${served.url}`));
});
