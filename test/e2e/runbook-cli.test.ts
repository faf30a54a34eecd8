/**
 * `coffer runbook …` as a user runs it: the built CLI as a subprocess in a temp HOME, logged in
 * (`coffer login`) to a stub of the server's runbook routes (test/client/runbook-stub.ts).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { startRunbookStub, type RunbookStub } from "../client/runbook-stub.ts";
import { CLI, userEnv, type RunResult } from "./run-cli.ts";

/** A running CLI: its output so far, and its end. */
interface Running {
  out: () => string;
  err: () => string;
  done: Promise<RunResult>;
}

// The stub runs in this process, so the CLI must not be run with spawnSync.
function start(home: string, args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [CLI, ...args], { env: userEnv(home, env), stdio: ["ignore", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  child.stderr.on("data", (d: Buffer) => err.push(d));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code: code ?? 128, stdout, out: stdout.toString("utf8"), err: Buffer.concat(err).toString("utf8") });
    });
  });
  return { out: () => Buffer.concat(out).toString("utf8"), err: () => Buffer.concat(err).toString("utf8"), done };
}

const cli = (home: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> => start(home, args, env).done;

/** Waits (up to 20 s) until `check` holds. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), `timed out waiting for ${what}`);
}

async function loggedIn(t: TestContext): Promise<{ home: string; stub: RunbookStub }> {
  const home = tempDir(t);
  const stub = await startRunbookStub();
  t.after(() => stub.close());
  const login = await cli(home, ["login", stub.url], { COFFER_TOKEN: stub.token });
  assert.equal(login.code, 0, login.err);
  return { home, stub };
}

test("runbook run --follow streams the output to stdout and exits 0, the script's 3, or 124 when it timed out", async (t) => {
  const { home, stub } = await loggedIn(t);
  const ok = await cli(home, ["runbook", "run", "flush-cdn", "-p", "REGION=eu-west", "--follow"]);
  assert.equal(ok.code, 0, ok.err);
  assert.equal(ok.out, "flushing eu-west\ncafé ✓ 🚀 done\nCDN_TOKEN=***\n");
  assert.match(ok.err, /^execution 0193\S+ of runbook flush-cdn started\n$/);

  const failed = await cli(home, ["runbook", "run", "fail3", "-f"]);
  assert.equal(failed.code, 3, failed.err);
  assert.equal(failed.out, "about to fail\n");
  assert.match(failed.err, /execution \S+ of runbook fail3 failed: exit status 3\n$/);

  const slow = await cli(home, ["runbook", "run", "slow", "--follow"]);
  assert.equal(slow.code, 124, slow.err);
  assert.equal(slow.out, "sleeping\n");
  assert.match(slow.err, /timed out/);

  // The token of `coffer login` was used, and no param value reached a URL.
  for (const r of stub.requests.slice(1)) {
    assert.equal(r.headers.authorization, `Bearer ${stub.token}`);
    assert.ok(!r.url.includes("eu-west"), r.url);
  }
});

test("runbook run --follow of an execution that is cancelled exits 12 (E_EXECUTION) saying so; --json prints JSON lines with the status", async (t) => {
  const { home, stub } = await loggedIn(t);
  for (const json of [false, true]) {
    const following = start(home, ["runbook", "run", "cancel-me", "--follow", ...(json ? ["--json"] : [])]);
    await until(() => following.out().includes("started"), "the first output");
    const id = [...stub.executions.keys()].at(-1)!;
    const cancel = await cli(home, ["runbook", "cancel", id]);
    assert.equal(cancel.code, 0, cancel.err);
    assert.equal(cancel.err, `execution ${id} of runbook cancel-me: cancelled\n`);
    const r = await following.done;
    assert.equal(r.code, 12, r.err);
    assert.match(r.err, new RegExp(`coffer: execution ${id} of runbook cancel-me was cancelled \\(status cancelled\\)\n$`));
    if (!json) {
      assert.equal(r.out, "started\n");
      continue;
    }
    const lines = r.out.trim().split("\n").map((l) => JSON.parse(l) as { event: string; id?: string; status?: string; text?: string; execution?: { status: string; id: string } });
    assert.deepEqual(lines.slice(0, 2), [{ event: "started", id, status: "running" }, { event: "output", text: "started\n" }]);
    assert.equal(lines.at(-1)!.event, "end");
    assert.equal(lines.at(-1)!.execution!.status, "cancelled");
    assert.equal(lines.at(-1)!.execution!.id, id);
  }
  const again = await cli(home, ["runbook", "cancel", [...stub.executions.keys()].at(-1)!]);
  assert.equal(again.code, 4, again.err);
  assert.match(again.err, /has already ended/);
});

test("runbook run without --follow prints the id (and how to follow on stderr); --json {id, status}; output ID [--json]", async (t) => {
  const { home } = await loggedIn(t);
  const r = await cli(home, ["runbook", "run", "flush-cdn", "--param", "REGION=us"]);
  assert.equal(r.code, 0, r.err);
  const id = r.out.trim();
  assert.match(id, /^0193[0-9a-f-]+$/);
  assert.equal(r.err, `execution ${id} of runbook flush-cdn is running; follow it with \`coffer runbook output ${id} --follow\`\n`);

  const json = await cli(home, ["runbook", "run", "fail3", "--json"]);
  assert.equal(json.code, 0, json.err);
  const started = JSON.parse(json.out) as { id: string; status: string };
  assert.equal(started.status, "running");

  const out = await cli(home, ["runbook", "output", id]);
  assert.equal(out.code, 0, out.err);
  assert.equal(out.out, "flushing us\ncafé ✓ 🚀 done\nCDN_TOKEN=***\n");
  const outJson = await cli(home, ["runbook", "output", started.id, "--json"]);
  const doc = JSON.parse(outJson.out) as { execution: { status: string; exitCode: number }; output: string };
  assert.equal(doc.output, "about to fail\n");
  assert.equal(doc.execution.status, "failed");
  assert.equal(doc.execution.exitCode, 3);
  const followed = await cli(home, ["runbook", "output", started.id, "--follow"]);
  assert.equal(followed.code, 3);
  assert.equal(followed.out, "about to fail\n");
});

test("runbook validate prints every problem one a line and exits 7; --json {valid, problems}; a valid set exits 0", async (t) => {
  const { home, stub } = await loggedIn(t);
  const bad = await cli(home, ["runbook", "validate", "flush-cdn", "-p", "REGION=Bad Region", "-p", "EXTRA=1"]);
  assert.equal(bad.code, 7, bad.err);
  assert.equal(bad.out, "");
  assert.equal(bad.err, "coffer: runbook flush-cdn: 2 problems:\n  EXTRA: not a param of flush-cdn\n  REGION: does not match ^[a-z0-9-]{1,32}$\n");
  const json = await cli(home, ["runbook", "validate", "flush-cdn", "--json"]);
  assert.equal(json.code, 7);
  assert.deepEqual(JSON.parse(json.out), { valid: false, problems: ["REGION: required"] });
  assert.equal(json.err, "coffer: runbook flush-cdn: REGION: required\n");

  const file = join(home, "note.txt");
  writeFileSync(file, "two\nlines\n");
  const ok = await cli(home, ["runbook", "validate", "flush-cdn", "-p", "REGION=eu", "--param-file", `NOTE=${file}`, "--json"]);
  assert.equal(ok.code, 0, ok.err);
  assert.deepEqual(JSON.parse(ok.out), { valid: true, params: { REGION: "eu", NOTE: "two\nlines" } });
  assert.equal(stub.executions.size, 0, "validate runs nothing");

  const run = await cli(home, ["runbook", "run", "flush-cdn", "-p", "REGION=NO"]);
  assert.equal(run.code, 7);
  assert.equal(run.err, "coffer: runbook flush-cdn: REGION: does not match ^[a-z0-9-]{1,32}$\n");

  const usage = await cli(home, ["runbook", "run", "flush-cdn", "-p", "just-a-value-no-name"]);
  assert.equal(usage.code, 2);
  assert.ok(!usage.err.includes("just-a-value-no-name"), usage.err);
  const twice = await cli(home, ["runbook", "run", "flush-cdn", "-p", "REGION=a", "-p", "REGION=b"]);
  assert.equal(twice.code, 2);
  assert.match(twice.err, /the param REGION is given twice/);
});

test("runbook list and show as tables or --json; history as a table, newest first", async (t) => {
  const { home } = await loggedIn(t);
  const list = await cli(home, ["runbook", "list"]);
  assert.equal(list.code, 0, list.err);
  const lines = list.out.split("\n");
  assert.match(lines[0]!, /^NAME\s+VALID\s+ISOLATION\s+APPROVALS\s+DESCRIPTION$/);
  assert.match(list.out, /^broken\s+no\s+2 problems: coffer runbook show broken$/m);
  assert.match(list.out, /^flush-cdn\s+yes\s+sandbox\s+0\s+Flush the CDN cache for one region$/m);
  assert.match(list.out, /^needs-ok\s+yes\s+sandbox\s+1\s+the needs-ok runbook$/m);
  const listJson = JSON.parse((await cli(home, ["runbook", "list", "--json"])).out) as { name: string }[];
  assert.equal(listJson.length, 6);

  const show = await cli(home, ["runbook", "show", "flush-cdn"]);
  assert.equal(show.code, 0, show.err);
  assert.match(show.out, /^secrets:\s+CDN_TOKEN$/m);
  assert.match(show.out, /^files:\s+CLIENT_KEY$/m);
  assert.match(show.out, /^timeout:\s+10m$/m);
  assert.match(show.out, /^output limit:\s+10 MiB$/m);
  assert.match(show.out, /^REGION\s+yes\s+\^\[a-z0-9-\]\{1,32\}\$\s+the region$/m);
  assert.match(show.out, /^NOTE\s+no\s+""\s+the note$/m);
  const broken = await cli(home, ["runbook", "show", "broken"]);
  assert.equal(broken.out, "broken: invalid, it cannot run:\n  broken.yml:3: unknown key \"rn\"\n  broken.yml: no \"run\"\n");
  const missing = await cli(home, ["runbook", "show", "nope"]);
  assert.equal(missing.code, 3);
  const traversal = await cli(home, ["runbook", "show", "../x"]);
  assert.equal(traversal.code, 7);

  const ids: string[] = [];
  for (const name of ["fail3", "slow", "fail3"]) ids.push((await cli(home, ["runbook", "run", name])).out.trim());
  const history = await cli(home, ["runbook", "history", "fail3"]);
  assert.equal(history.code, 0, history.err);
  const rows = history.out.trim().split("\n");
  assert.match(rows[0]!, /^ID\s+STATUS\s+BY\s+STARTED\s+EXIT$/);
  assert.match(rows[1]!, new RegExp(`^${ids[2]}\\s+failed\\s+token:alice\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+3$`));
  assert.match(rows[2]!, new RegExp(`^${ids[0]}\\s+failed`));
  assert.equal(rows.length, 3);
  const page = await cli(home, ["runbook", "history", "--limit", "1", "--json"]);
  const docs = JSON.parse(page.out) as { id: string; runbook: string }[];
  assert.deepEqual(docs.map((d) => d.id), [ids[2]]);
  assert.match(page.err, new RegExp(`older ones: add --before ${ids[2]}`));
  const all = await cli(home, ["runbook", "history", "--before", ids[2]!]);
  assert.match(all.out.split("\n")[0]!, /^ID\s+RUNBOOK\s+STATUS/);
  assert.match(all.out, new RegExp(`^${ids[1]}\\s+slow\\s+timed-out\\s+token:alice\\s+\\S+\\s+SIGTERM$`, "m"));
});

test("runbook run --follow of a runbook that needs approval says it waits, and ends once another person approves", async (t) => {
  const { home, stub } = await loggedIn(t);
  const following = start(home, ["runbook", "run", "needs-ok", "--follow"]);
  await until(() => following.err().includes("waits for approval"), "the waiting message");
  const id = [...stub.executions.keys()].at(-1)!;
  assert.match(following.err(), new RegExp(`execution ${id} of runbook needs-ok waits for approval \\(someone else runs \`coffer runbook approve ${id}\`\\)`));
  const own = await cli(home, ["runbook", "approve", id]);
  assert.equal(own.code, 5, own.err);
  assert.match(own.err, /cannot approve their own/);
  const other = await cli(home, ["runbook", "approve", id, "--server", stub.url], { COFFER_TOKEN: stub.otherToken });
  assert.equal(other.code, 0, other.err);
  assert.equal(other.err, `approved execution ${id} of runbook needs-ok (1 of 1 approvals); it is succeeded\n`);
  const r = await following.done;
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "approved and ran\n");
});

test("runbook commands without a server, with a revoked token, or refused: a clear line and the documented status", async (t) => {
  const home = tempDir(t);
  const none = await cli(home, ["runbook", "list"]);
  assert.equal(none.code, 2);
  assert.equal(none.err, "coffer: no server: run `coffer login URL` first, or give --server URL (or set COFFER_SERVER)\n");
  const stub = await startRunbookStub();
  t.after(() => stub.close());
  const noToken = await cli(home, ["runbook", "list", "--server", stub.url]);
  assert.equal(noToken.code, 5);
  assert.match(noToken.err, /no token for http:\/\/127\.0\.0\.1:\d+: run `coffer login/);
  const revoked = await cli(home, ["runbook", "list", "--server", stub.url], { COFFER_TOKEN: `cof_${"R".repeat(43)}` });
  assert.equal(revoked.code, 5);
  assert.match(revoked.err, /the token is missing, invalid, expired or revoked.*; run `coffer login http:\/\/127\.0\.0\.1:\d+` again/);
  assert.ok(!revoked.err.includes("RRRR"));
  stub.fault = { prefix: "/v1/runbooks/flush-cdn/run", status: 429, code: "E_RATE_LIMITED", message: "too many executions", retryAfter: "30" };
  const limited = await cli(home, ["runbook", "run", "flush-cdn", "-p", "REGION=eu", "--server", stub.url], { COFFER_TOKEN: stub.token });
  assert.equal(limited.code, 9);
  assert.match(limited.err, /too many executions \(retry after 30 s; request req-\d+\)/);
  stub.fault = { prefix: "/v1/runbooks/flush-cdn/run", status: 403, code: "E_DENIED", message: "may not run runbook:flush-cdn" };
  const denied = await cli(home, ["runbook", "run", "flush-cdn", "-p", "REGION=eu", "--server", stub.url], { COFFER_TOKEN: stub.token });
  assert.equal(denied.code, 5);
  assert.match(denied.err, /may not run runbook:flush-cdn/);
});
