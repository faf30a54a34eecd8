/**
 * Runbooks over the real server (in this process, on a free loopback port) with real processes
 * and a real bubblewrap: secrets injected and masked, policies and claims, timeouts, output
 * caps, working directories, the sandbox, rate limits, approvals and the server's own
 * environment kept out. The PostgreSQL case (two instances) is in runbooks-cluster.test.ts.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { SignJWT } from "jose";
import { tempDir } from "../helpers.ts";
import { startTestServer, type Reply, type TestServer } from "./harness.ts";

const JWT_SECRET = "runbook-tests-jwt-secret-0123456789abcdef";
const SECRET_VALUE = "cdn-token-Zq8wY3vN1xT5";
const KEY_VALUE = "-----BEGIN KEY-----\nkey-material-Pq7rS9tU\n-----END KEY-----\n";

const ROLES = `
roles:
  ops: [ { path: "runbook:*", capabilities: [read, run] } ]
  viewer: [ { path: "runbook:*", capabilities: [read] } ]
  approver: [ { path: "runbook:*", capabilities: [read, approve] } ]
  minter: [ { path: "sys:tokens", capabilities: [read, write] }, { path: "runbook:*", capabilities: [read, run, approve] } ]
  unrelated: [ { path: "app/*", capabilities: [read] } ]
jwt:
  secret: "${JWT_SECRET}"
  issuer: https://idp.test
  audience: coffer
  rolesClaim: roles
`;

/** Writes runbook files into a fresh dir and starts a server serving them. */
async function serverWith(t: TestContext, runbooks: Record<string, string>, extra = "", reloadOnSighup = false): Promise<TestServer & { dir: string }> {
  const dir = join(tempDir(t, "coffer-runbooks-"), "runbooks");
  mkdirSync(dir, { mode: 0o755 });
  for (const [name, text] of Object.entries(runbooks)) writeFileSync(join(dir, `${name}.yml`), text, { mode: 0o644 });
  const s = await startTestServer(t, `${ROLES}\nrunbooks:\n  dir: ${dir}\n${extra}`, {}, { reloadOnSighup });
  return { ...s, dir };
}

async function jwt(sub: string, roles: string[], claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub, roles, iss: "https://idp.test", aud: "coffer", iat: now, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(JWT_SECRET));
}

async function putSecret(s: TestServer, name: string, value: string): Promise<void> {
  const r = await s.call("PUT", `/v1/secrets/${name}`, { token: s.rootToken, body: { value } });
  assert.equal(r.status, 200, r.text);
}

async function run(s: TestServer, name: string, token: string, params: Record<string, string> = {}): Promise<Reply> {
  return s.call("POST", `/v1/runbooks/${name}/run`, { token, body: { params } });
}

/** Polls the execution until `until` holds (default: a final status), for at most `ms`. */
async function waitFor(s: TestServer, id: string, token: string, until: (e: any) => boolean = (e) => !["running", "pending-approval"].includes(e.status), ms = 60_000): Promise<any> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await s.call("GET", `/v1/executions/${id}`, { token });
    assert.equal(r.status, 200, r.text);
    if (until(r.json.execution)) return r.json.execution;
    if (Date.now() > deadline) assert.fail(`execution ${id} stayed ${r.json.execution.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function output(s: TestServer, id: string, token: string): Promise<string> {
  const r = await s.call("GET", `/v1/executions/${id}/output`, { token });
  assert.equal(r.status, 200, r.text);
  return r.text;
}

/** Waits until the output holds `pattern`, and returns the match. */
async function outputMatching(s: TestServer, id: string, token: string, pattern: RegExp): Promise<RegExpMatchArray> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = (await output(s, id, token)).match(pattern);
    if (m !== null) return m;
    if (Date.now() > deadline) assert.fail(`the output never matched ${pattern}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Whether `pid` still runs (a zombie waiting for its parent to reap it runs nothing). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Waits (generously) for `pid` to be gone: a killed process takes a moment to die. */
async function gone(pid: number): Promise<boolean> {
  const deadline = Date.now() + 10_000;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

test("a runbook's param is printed and its secret is masked; the value is in no output, history, audit record or log", async (t) => {
  const s = await serverWith(t, {
    flush: `description: Flush the CDN cache for one region
run: |
  echo "flushing $REGION with $CDN_TOKEN"
  printf '%s' "$CDN_TOKEN" | base64
  cat "$CLIENT_KEY"
  echo "note=$NOTE"
params:
  REGION: { pattern: "^[a-z0-9-]{1,32}$", required: true, description: the region }
  NOTE: { required: false, default: "none" }
secrets:
  CDN_TOKEN: cdn/token
files:
  CLIENT_KEY: cdn/client-key
`,
  });
  await putSecret(s, "cdn/token", SECRET_VALUE);
  await putSecret(s, "cdn/client-key", KEY_VALUE);
  const ops = await s.token(["ops"]);
  const started = await run(s, "flush", ops, { REGION: "eu-west-1" });
  assert.equal(started.status, 202, started.text);
  assert.equal(started.json.status, "running");
  const done = await waitFor(s, started.json.id, ops);
  assert.equal(done.status, "succeeded");
  assert.equal(done.exitCode, 0);
  assert.deepEqual(done.params, { REGION: "eu-west-1", NOTE: "none" });
  const out = await output(s, started.json.id, ops);
  assert.match(out, /flushing eu-west-1 with \*\*\*/);
  assert.match(out, /note=none/);
  const metrics = await s.call("GET", "/metrics", { token: s.rootToken });
  assert.match(metrics.text, /^coffer_runbook_executions_total\{runbook="flush",status="succeeded"\} 1$/m);
  assert.match(metrics.text, /^coffer_runbook_execution_duration_seconds_count\{runbook="flush"\} 1$/m);
  assert.match(metrics.text, /^coffer_runbook_executions_running 0$/m);
  const history = await s.call("GET", "/v1/executions?runbook=flush", { token: ops });
  const audit = await s.call("GET", "/v1/audit", { token: s.rootToken });
  assert.ok(audit.json.records.some((r: any) => r.action === "runbook.finish" && r.detail.status === "succeeded"));
  for (const [what, text] of [["output", out], ["history", history.text], ["audit", audit.text], ["log", s.logs.join("\n")]]) {
    for (const secret of [SECRET_VALUE, Buffer.from(SECRET_VALUE).toString("base64"), "key-material-Pq7rS9tU"]) {
      assert.ok(!text!.includes(secret), `the ${what} holds a secret value`);
    }
  }
});

test("a role with read only gets 403 on run, and a JWT without the required claim gets 403", async (t) => {
  const s = await serverWith(t, {
    hello: "description: hi\nrun: echo hi\n",
    opsonly: "description: ops team only\nrun: echo ok\nrequire: { claims: { team: ops } }\n",
  });
  const viewer = await s.token(["viewer"]);
  assert.equal((await run(s, "hello", viewer)).status, 403);
  assert.equal((await s.call("GET", "/v1/runbooks", { token: viewer })).json.runbooks.length, 2);
  const none = await s.token(["approver"]);
  const noRead = await s.token(["unrelated"]);
  assert.equal((await s.call("GET", "/v1/runbooks", { token: noRead })).json.runbooks.length, 0);
  assert.equal((await run(s, "hello", none)).status, 403);
  const withoutClaim = await jwt("carol", ["ops"], { team: "web" });
  assert.equal((await run(s, "opsonly", withoutClaim)).status, 403);
  const token = await s.token(["ops"]); // a token has no claims: it never matches a claim rule
  assert.equal((await run(s, "opsonly", token)).status, 403);
  const withClaim = await jwt("dave", ["ops"], { team: ["web", "ops"] });
  const ok = await run(s, "opsonly", withClaim);
  assert.equal(ok.status, 202, ok.text);
});

test("timeout: 2s on sleep 600 ends timed-out, and no process of its group is left", async (t) => {
  const s = await serverWith(t, { slow: "description: slow\ntimeout: 2s\nrun: |\n  sleep 600 &\n  echo \"pids $$ $!\"\n  sleep 600\n" });
  const ops = await s.token(["ops"]);
  const r = await run(s, "slow", ops);
  const [, shell, child] = await outputMatching(s, r.json.id, ops, /pids (\d+) (\d+)/);
  const done = await waitFor(s, r.json.id, ops, undefined, 15_000 + 30_000);
  assert.equal(done.status, "timed-out");
  assert.equal(done.exitCode, null);
  for (const pid of [Number(shell), Number(child)]) assert.ok(await gone(pid), `process ${pid} of the group survived`);
});

test("outputLimit: 1MiB on a 200 MB writer ends truncated with at most 1 MiB stored, and the server's memory stays bounded", async (t) => {
  const s = await serverWith(t, { noisy: "description: noisy\noutputLimit: 1MiB\nrun: head -c 200000000 /dev/zero | tr '\\0' x\n" });
  const ops = await s.token(["ops"]);
  const before = process.memoryUsage().rss;
  const r = await run(s, "noisy", ops);
  const done = await waitFor(s, r.json.id, ops, undefined, 120_000);
  const grown = process.memoryUsage().rss - before;
  assert.equal(done.status, "succeeded");
  assert.equal(done.truncated, true);
  assert.ok(done.outputBytes <= 1024 * 1024, `${done.outputBytes} bytes stored`);
  assert.ok((await output(s, r.json.id, ops)).length <= 1024 * 1024);
  assert.ok(grown < 50 * 1024 * 1024, `the server grew by ${grown} bytes`);
});

test("the working directory exists during the run and is gone after, on every end state", async (t) => {
  const s = await serverWith(t, {
    ok: "description: ok\nrun: echo \"dir=$PWD home=$HOME\"\n",
    fails: "description: fails\nrun: |\n  echo \"dir=$PWD\"\n  exit 3\n",
    waits: "description: waits\ntimeout: 3s\nrun: |\n  echo \"dir=$PWD\"\n  touch \"$PWD/marker\"\n  sleep 600\n",
  });
  const ops = await s.token(["ops"]);
  const dirOf = async (id: string): Promise<string> => (await outputMatching(s, id, ops, /dir=(\S+)/))[1]!;
  // succeeded
  let r = await run(s, "ok", ops);
  let done = await waitFor(s, r.json.id, ops);
  assert.equal(done.status, "succeeded");
  const okOut = await output(s, r.json.id, ops);
  const [, dir, home] = okOut.match(/dir=(\S+) home=(\S+)/)!;
  assert.equal(dir, home);
  assert.equal(existsSync(dir!), false);
  // failed
  r = await run(s, "fails", ops);
  done = await waitFor(s, r.json.id, ops);
  assert.equal(done.status, "failed");
  assert.equal(done.exitCode, 3);
  assert.equal(existsSync(await dirOf(r.json.id)), false);
  // cancelled: the dir is there while it runs
  r = await run(s, "waits", ops);
  let d = await dirOf(r.json.id);
  assert.equal(existsSync(d), true);
  const cancel = await s.call("POST", `/v1/executions/${r.json.id}/cancel`, { token: ops });
  assert.equal(cancel.status, 200, cancel.text);
  done = await waitFor(s, r.json.id, ops);
  assert.equal(done.status, "cancelled");
  assert.equal(existsSync(d), false);
  assert.equal((await s.call("POST", `/v1/executions/${r.json.id}/cancel`, { token: ops })).status, 409);
  // timed-out
  r = await run(s, "waits", ops);
  d = await dirOf(r.json.id);
  done = await waitFor(s, r.json.id, ops, undefined, 45_000);
  assert.equal(done.status, "timed-out");
  assert.equal(existsSync(d), false);
  // interrupted: the server stops while it runs
  r = await run(s, "waits", ops);
  d = await dirOf(r.json.id);
  const id = r.json.id;
  await s.server.close();
  assert.equal(existsSync(d), false);
  const { openStorage } = await import("../../src/server/server.ts");
  const storage = await openStorage(s.dataDir, s.config);
  t.after(() => storage.close());
  assert.equal((await storage.getExecution(id))?.status, "interrupted");
});

test("a sandboxed runbook, with the server running as root, cannot reach the host's loopback, write outside its dir, remount, or read the data dir", async (t) => {
  assert.equal(process.getuid?.(), 0, "this test checks the sandbox against a server running as root");
  const listener = createServer((c) => c.end("hello from the host\n"));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  t.after(() => listener.close());
  const port = (listener.address() as AddressInfo).port;
  const s = await serverWith(t, {
    boxed: `description: tries to get out
isolation: sandbox
run: |
  echo "uid=$(id -u)"
  if (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null; then echo "connect=yes"; else echo "connect=no"; fi
  if touch /usr/escaped 2>/dev/null; then echo "write-usr=yes"; else echo "write-usr=no"; fi
  if touch /etc/escaped 2>/dev/null; then echo "write-etc=yes"; else echo "write-etc=no"; fi
  if touch /tmp/escaped 2>/dev/null; then echo "write-tmp=yes"; else echo "write-tmp=no"; fi
  if touch /escaped 2>/dev/null; then echo "write-root=yes"; else echo "write-root=no"; fi
  if mount -o remount,rw /usr 2>/dev/null; then echo "remount=yes"; else echo "remount=no"; fi
  if cat "$DATA/master.key" >/dev/null 2>&1 || ls "$DATA" >/dev/null 2>&1; then echo "data=yes"; else echo "data=no"; fi
  if cat /etc/shadow >/dev/null 2>&1; then echo "shadow=yes"; else echo "shadow=no"; fi
  touch "$PWD/inside" && echo "write-dir=yes"
shell: /bin/bash
params:
  DATA: { required: true }
`,
  });
  const ops = await s.token(["ops"]);
  const r = await run(s, "boxed", ops, { DATA: s.dataDir });
  assert.equal(r.status, 202, r.text);
  const done = await waitFor(s, r.json.id, ops);
  const out = await output(s, r.json.id, ops);
  assert.equal(done.status, "succeeded", out);
  assert.match(out, /uid=65534/);
  for (const line of ["connect=no", "write-usr=no", "write-etc=no", "write-tmp=no", "write-root=no", "remount=no", "data=no", "shadow=no", "write-dir=yes"]) {
    assert.ok(out.includes(line), `expected ${line} in:\n${out}`);
  }
  assert.equal(existsSync("/usr/escaped"), false);
  assert.equal(existsSync("/etc/escaped"), false);
});

test("the 11th execution within a minute gets 429 with Retry-After; tokens made by one caller share its limit", async (t) => {
  const s = await serverWith(t, { quick: "description: quick\nrun: \"true\"\n" });
  const alice = await jwt("alice", ["minter"]);
  const made = await s.call("POST", "/v1/tokens", { token: alice, body: { name: "alice-ci", roles: ["minter"] } });
  assert.equal(made.status, 201, made.text);
  for (let i = 0; i < 10; i++) assert.equal((await run(s, "quick", i % 2 === 0 ? alice : made.json.token)).status, 202);
  const eleventh = await run(s, "quick", made.json.token);
  assert.equal(eleventh.status, 429, eleventh.text);
  assert.match(eleventh.headers.get("retry-after") ?? "", /^\d+$/);
  assert.equal((await run(s, "quick", await jwt("bob", ["ops"]))).status, 202, "another principal has its own limit");
});

test("approvals: 1 refuses the requester's own approval and a descended token's, and another principal's starts it", async (t) => {
  const s = await serverWith(t, { guarded: "description: needs a second person\napprovals: 1\nrun: echo approved-and-ran\n" });
  const alice = await jwt("alice", ["minter"]);
  const child = (await s.call("POST", "/v1/tokens", { token: alice, body: { name: "alice-child", roles: ["minter"] } })).json.token;
  const grandchild = (await s.call("POST", "/v1/tokens", { token: child, body: { name: "alice-grandchild", roles: ["minter"] } })).json.token;
  const r = await run(s, "guarded", alice);
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.status, "pending-approval");
  const id = r.json.id;
  for (const [who, token] of [["the requester", alice], ["a token it made", child], ["a token made by that token", grandchild]]) {
    const refused = await s.call("POST", `/v1/executions/${id}/approve`, { token });
    assert.equal(refused.status, 403, `${who}: ${refused.text}`);
  }
  const alsoAlice = await jwt("alice", ["approver"]); // the same subject with another JWT is the same principal
  assert.equal((await s.call("POST", `/v1/executions/${id}/approve`, { token: alsoAlice })).status, 403);
  assert.equal((await s.call("GET", `/v1/executions/${id}`, { token: alice })).json.execution.status, "pending-approval");
  const bob = await jwt("bob", ["approver"]);
  const ok = await s.call("POST", `/v1/executions/${id}/approve`, { token: bob });
  assert.equal(ok.status, 200, ok.text);
  const done = await waitFor(s, id, alice);
  assert.equal(done.status, "succeeded");
  assert.deepEqual(done.approvals, ["jwt:bob"]);
  assert.match(await output(s, id, alice), /approved-and-ran/);
  assert.equal((await s.call("POST", `/v1/executions/${id}/approve`, { token: await jwt("erin", ["approver"]) })).status, 409);

  // Another pending one, turned down by an approver: rejected, and it never runs.
  const second = await run(s, "guarded", alice);
  const rejected = await s.call("POST", `/v1/executions/${second.json.id}/cancel`, { token: bob });
  assert.equal(rejected.status, 200, rejected.text);
  assert.equal(rejected.json.execution.status, "rejected");
  assert.equal(rejected.json.execution.startedAt, null);
});

test("the server's environment (a canary variable set when it starts) is absent from a script's env", async (t) => {
  process.env["COFFER_CANARY_RUNBOOK"] = "canary-b7e1";
  process.env["SOME_OTHER_CANARY"] = "canary-c9f2";
  t.after(() => {
    delete process.env["COFFER_CANARY_RUNBOOK"];
    delete process.env["SOME_OTHER_CANARY"];
  });
  const s = await serverWith(t, { envdump: "description: env\nrun: env\n" });
  const ops = await s.token(["ops"]);
  const r = await run(s, "envdump", ops);
  const done = await waitFor(s, r.json.id, ops);
  assert.equal(done.status, "succeeded");
  const env = await output(s, r.json.id, ops);
  assert.ok(!env.includes("canary-"), env);
  assert.match(env, /^COFFER_EXECUTION_ID=/m);
  assert.match(env, /^PATH=/m);
  assert.ok(!/^COFFER_(?!EXECUTION_ID=)/m.test(env), "a COFFER_ variable of the server leaked");
});

test("names such as ../x, %2e%2e%2fx and a/b never reach a file outside the runbooks dir", async (t) => {
  const s = await serverWith(t, { inside: "description: inside\nrun: echo inside\n" });
  writeFileSync(join(s.dir, "..", "x.yml"), "description: outside\nrun: echo escaped\n");
  mkdirSync(join(s.dir, "a"));
  writeFileSync(join(s.dir, "a", "b.yml"), "description: nested\nrun: echo nested\n");
  const ops = await s.token(["ops"]);
  for (const name of ["..%2fx", "%2e%2e%2fx", "a%2fb", "a%2Fb", "..", "%2e%2e", "x", "b"]) {
    const r = await s.call("POST", `/v1/runbooks/${name}/run`, { token: ops, body: { params: {} } });
    assert.ok([400, 404].includes(r.status), `${name}: ${r.status} ${r.text}`);
  }
  for (const path of ["/v1/runbooks/../x/run", "/v1/runbooks/a/b/run"]) {
    const r = await s.call("POST", path, { token: ops, body: { params: {} } });
    assert.ok([400, 404].includes(r.status), `${path}: ${r.status}`);
  }
  const names = (await s.call("GET", "/v1/runbooks", { token: ops })).json.runbooks.map((r: any) => r.name);
  assert.deepEqual(names, ["inside"]);
  assert.ok(!readFileSync(join(s.dir, "..", "x.yml"), "utf8").includes("ran"));
});

test("bad params are refused with 400 naming each problem, and run nothing", async (t) => {
  const s = await serverWith(t, {
    p: "description: p\nrun: echo ran\nparams:\n  REGION: { pattern: \"^[a-z]+$\", required: true }\n",
  });
  const ops = await s.token(["ops"]);
  const cases: [unknown, RegExp][] = [
    [{}, /REGION/],
    [{ REGION: "EU" }, /REGION/],
    [{ REGION: "eu\u0007" }, /REGION/],
    [{ REGION: "eu", EXTRA: "x" }, /EXTRA/],
    [{ REGION: "a".repeat(5000) }, /REGION/],
  ];
  for (const [params, why] of cases) {
    const v = await s.call("POST", "/v1/runbooks/p/validate", { token: ops, body: { params } });
    assert.equal(v.status, 400, v.text);
    assert.match(v.json.error.message, why);
    assert.ok(Array.isArray(v.json.error.problems));
    const r = await s.call("POST", "/v1/runbooks/p/run", { token: ops, body: { params } });
    assert.equal(r.status, 400);
  }
  assert.equal((await s.call("POST", "/v1/runbooks/p/validate", { token: ops, body: { params: { REGION: "eu" } } })).status, 200);
  assert.equal((await s.call("GET", "/v1/executions?runbook=p", { token: ops })).json.executions.length, 0);
});

test("an execution's output streams live over server-sent events and ends with its final status", async (t) => {
  const s = await serverWith(t, { ticks: "description: ticks\nrun: |\n  for i in 1 2 3; do echo \"tick $i\"; sleep 0.2; done\n  exit 4\n" });
  const ops = await s.token(["ops"]);
  const r = await run(s, "ticks", ops);
  const res = await fetch(`${s.url}/v1/executions/${r.json.id}/output`, { headers: { authorization: `Bearer ${ops}`, accept: "text/event-stream" } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await res.text();
  const events = text.split("\n\n").filter((e) => e.startsWith("event:"));
  const outputText = events.filter((e) => e.startsWith("event: output")).map((e) => JSON.parse(e.split("data: ")[1]!).text).join("");
  assert.equal(outputText, "tick 1\ntick 2\ntick 3\n");
  const end = events.at(-1)!;
  assert.match(end, /^event: end/);
  const final = JSON.parse(end.split("data: ")[1]!).execution;
  assert.equal(final.status, "failed");
  assert.equal(final.exitCode, 4);
});

test("an invalid runbook is listed with its problems, logged at start, and can never run", async (t) => {
  const s = await serverWith(t, { broken: "description: broken\nrun: echo x\nunknownKey: 1\n", good: "description: good\nrun: echo good\n" });
  const ops = await s.token(["ops"]);
  const list = (await s.call("GET", "/v1/runbooks", { token: ops })).json.runbooks;
  const broken = list.find((r: any) => r.name === "broken");
  assert.equal(broken.valid, false);
  assert.match(broken.problems.join("\n"), /unknownKey/);
  assert.ok(s.logs.some((l) => l.includes("broken")));
  assert.equal((await run(s, "broken", ops)).status, 409);
});

test("a runbook whose secret the server does not hold is refused with 409 naming it, and nothing runs", async (t) => {
  const s = await serverWith(t, { needs: "description: needs a secret\nrun: echo ran\nsecrets:\n  TOKEN: missing/token\n" });
  const ops = await s.token(["ops"]);
  const r = await run(s, "needs", ops);
  assert.equal(r.status, 409, r.text);
  assert.match(r.json.error.message, /missing\/token/);
  assert.equal((await s.call("GET", "/v1/executions?runbook=needs", { token: ops })).json.executions.length, 0);
});

test("SIGHUP re-reads the runbooks directory: a new runbook appears, a removed one is gone", async (t) => {
  const s = await serverWith(t, { first: "description: first\nrun: echo first\n" }, "", true);
  const ops = await s.token(["ops"]);
  const names = async (): Promise<string[]> => (await s.call("GET", "/v1/runbooks", { token: ops })).json.runbooks.map((r: { name: string }) => r.name);
  assert.deepEqual(await names(), ["first"]);
  writeFileSync(join(s.dir, "second.yml"), "description: second\nrun: echo second\n", { mode: 0o644 });
  rmSync(join(s.dir, "first.yml"));
  process.kill(process.pid, "SIGHUP");
  const deadline = Date.now() + 30_000;
  while ((await names()).join() !== "second") {
    assert.ok(Date.now() < deadline, `still ${(await names()).join()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(s.logs.some((l) => l.includes("runbooks reloaded")));
});

test("a server that stops ends its running scripts as interrupted, and an open output stream still gets that end", async (t) => {
  const s = await serverWith(t, { waits: "description: waits\nrun: |\n  echo started\n  sleep 600\n" });
  const ops = await s.token(["ops"]);
  const r = await run(s, "waits", ops);
  const res = await fetch(`${s.url}/v1/executions/${r.json.id}/output`, { headers: { authorization: `Bearer ${ops}`, accept: "text/event-stream" } });
  const reader = res.body!.getReader();
  let text = "";
  while (!text.includes("started")) {
    const { value, done } = await reader.read();
    assert.equal(done, false, "the stream ended before the script printed");
    text += Buffer.from(value).toString("utf8");
  }
  const closing = s.server.close();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString("utf8");
  }
  await closing;
  const end = text.split("\n\n").find((e) => e.startsWith("event: end"));
  assert.ok(end !== undefined, `no end event in:\n${text}`);
  assert.equal(JSON.parse(end.split("data: ")[1]!).execution.status, "interrupted");
});
