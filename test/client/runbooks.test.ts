import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { CofferClient } from "../../src/client/client.ts";
import { ServerError } from "../../src/client/server-error.ts";
import { RunbookClient, OUTPUT_EVENT_MAX } from "../../src/client/runbooks.ts";
import { isCofferError } from "../../src/errors.ts";
import { startRunbookStub, type RunbookStub } from "./runbook-stub.ts";

async function setup(t: TestContext): Promise<{ stub: RunbookStub; rb: RunbookClient }> {
  const stub = await startRunbookStub();
  t.after(() => stub.close());
  return { stub, rb: new RunbookClient(new CofferClient({ url: stub.url, token: stub.token })) };
}

test("runbooks: list and show give every field of the contract, an invalid runbook with its problems", async (t) => {
  const { stub, rb } = await setup(t);
  const list = await rb.listRunbooks();
  assert.deepEqual(list.map((r) => [r.name, r.valid]), [["broken", false], ["cancel-me", true], ["fail3", true], ["flush-cdn", true], ["needs-ok", true], ["slow", true]]);
  assert.deepEqual(list[0], { name: "broken", valid: false, problems: ["broken.yml:3: unknown key \"rn\"", "broken.yml: no \"run\""] });
  const flush = await rb.getRunbook("flush-cdn");
  assert.ok(flush.valid);
  assert.equal(flush.concurrency, 1);
  assert.deepEqual(flush.secrets, ["CDN_TOKEN"]);
  assert.deepEqual(flush.params.map((p) => [p.name, p.required, p.pattern, p.default]), [["REGION", true, "^[a-z0-9-]{1,32}$", null], ["NOTE", false, null, ""]]);
  assert.equal(stub.requests.at(-1)!.url, "/v1/runbooks/flush-cdn");
  assert.equal(stub.requests.at(-1)!.headers.authorization, `Bearer ${stub.token}`);
});

test("runbooks: validate gives the params with defaults, or every problem; the values travel only in the body", async (t) => {
  const { stub, rb } = await setup(t);
  const ok = await rb.validate("flush-cdn", { REGION: "eu-west-unique-value" });
  assert.deepEqual(ok, { valid: true, params: { REGION: "eu-west-unique-value", NOTE: "" } });
  const bad = await rb.validate("flush-cdn", { REGION: "NOT VALID value", EXTRA: "x" });
  assert.deepEqual(bad, { valid: false, problems: ["EXTRA: not a param of flush-cdn", "REGION: does not match ^[a-z0-9-]{1,32}$"] });
  assert.equal(stub.requests.length, 2);
  for (const r of stub.requests) {
    assert.equal(r.method, "POST");
    assert.equal(r.url, "/v1/runbooks/flush-cdn/validate");
    assert.equal(r.headers["content-type"], "application/json");
  }
  assert.deepEqual(JSON.parse(stub.requests[0]!.body), { params: { REGION: "eu-west-unique-value" } });
});

test("runbooks: a server message or problem that repeats a param value has it replaced, and the value is in no URL", async (t) => {
  const { stub, rb } = await setup(t);
  const value = "s3cr3t-looking-param";
  stub.fault = { prefix: "/v1/runbooks/flush-cdn/run", status: 400, code: "E_INVALID_VALUE", message: `REGION ${value} is bad`, problems: [`REGION: ${value} does not match`, "\u001b[2Jclear"] };
  const err = await rb.run("flush-cdn", { REGION: value }).catch((e: unknown) => e);
  assert.ok(err instanceof ServerError);
  assert.equal(err.code, "E_INVALID_VALUE");
  assert.equal(err.status, 400);
  assert.ok(!err.message.includes(value), err.message);
  assert.match(err.message, /REGION \[redacted\] is bad/);
  assert.deepEqual(err.problems, ["REGION: [redacted] does not match", "[2Jclear"]);
  for (const r of stub.requests) assert.ok(!decodeURIComponent(r.url).includes(value));
  assert.ok(stub.requests.at(-1)!.body.includes(value));
});

test("runbooks: run, then follow the output split across TCP writes (multi-byte characters too) to the final execution", async (t) => {
  const { stub, rb } = await setup(t);
  const started = await rb.run("flush-cdn", { REGION: "eu-west" });
  assert.equal(started.status, "running");
  assert.match(started.id, /^0193/);
  const pieces: string[] = [];
  const end = await rb.followOutput(started.id, (text) => void pieces.push(text));
  assert.deepEqual(pieces, ["flushing eu-west\n", "café ✓ ", "🚀 done\n", "CDN_TOKEN=***\n"]);
  assert.equal(end.id, started.id);
  assert.equal(end.status, "succeeded");
  assert.equal(end.exitCode, 0);
  assert.deepEqual(end.params, { REGION: "eu-west", NOTE: "" });
  const follow = stub.requests.at(-1)!;
  assert.equal(follow.headers.accept, "text/event-stream");
  assert.equal(follow.url, `/v1/executions/${started.id}/output`);
  assert.equal(await rb.output(started.id), pieces.join(""));
  assert.equal(stub.requests.at(-1)!.headers.accept, "text/plain");
  const e = await rb.execution(started.id);
  assert.deepEqual(e, end);
});

test("runbooks: a pending execution follows until another principal approves it; the requester's own approval is 403", async (t) => {
  const { stub, rb } = await setup(t);
  const other = new RunbookClient(new CofferClient({ url: stub.url, token: stub.otherToken }));
  const { id, status } = await rb.run("needs-ok", {});
  assert.equal(status, "pending-approval");
  const pieces: string[] = [];
  const following = rb.followOutput(id, (text) => void pieces.push(text));
  const own = await rb.approve(id).catch((e: unknown) => e);
  assert.ok(own instanceof ServerError && own.code === "E_DENIED" && own.status === 403, String(own));
  const approved = await other.approve(id);
  assert.deepEqual(approved.approvals, ["token:bob"]);
  const end = await following;
  assert.equal(end.status, "succeeded");
  assert.deepEqual(pieces, ["approved and ran\n"]);
  const again = await other.approve(id).catch((e: unknown) => e);
  assert.ok(again instanceof ServerError && again.code === "E_CONFLICT" && again.status === 409, String(again));
});

test("runbooks: cancel ends a running execution (the follower gets it), a second cancel is 409 E_CONFLICT", async (t) => {
  const { rb } = await setup(t);
  const { id } = await rb.run("cancel-me", {});
  let first!: () => void;
  const sawOutput = new Promise<void>((resolve) => (first = resolve));
  const following = rb.followOutput(id, () => first());
  await sawOutput;
  const cancelled = await rb.cancel(id);
  assert.equal(cancelled.status, "cancelled");
  assert.equal((await following).status, "cancelled");
  const again = await rb.cancel(id).catch((e: unknown) => e);
  assert.ok(again instanceof ServerError && again.code === "E_CONFLICT", String(again));
});

test("runbooks: 403, 409 and 429 keep their codes; 429 carries Retry-After", async (t) => {
  const { stub, rb } = await setup(t);
  const cases = [
    { status: 403, code: "E_DENIED" },
    { status: 409, code: "E_CONFLICT" },
    { status: 429, code: "E_RATE_LIMITED", retryAfter: "7" },
  ] as const;
  for (const c of cases) {
    stub.fault = { prefix: "/v1/runbooks/flush-cdn/run", status: c.status, code: c.code, message: `refused with ${c.status}`, ...("retryAfter" in c && { retryAfter: c.retryAfter }) };
    const err = await rb.run("flush-cdn", { REGION: "eu" }).catch((e: unknown) => e);
    assert.ok(err instanceof ServerError, String(err));
    assert.equal(err.code, c.code);
    assert.equal(err.status, c.status);
    assert.match(err.message, new RegExp(`^server ${stub.url}: refused with ${c.status}`));
    if (c.status === 429) {
      assert.equal(err.retryAfterSeconds, 7);
      assert.match(err.message, /retry after 7 s/);
    }
  }
});

test("runbooks: names like ../x, %2e%2e%2fx and a/b, and bad execution ids, are refused before any request", async (t) => {
  const { stub, rb } = await setup(t);
  for (const name of ["../x", "%2e%2e%2fx", "a/b", "", ".x", "a b"]) {
    await assert.rejects(rb.getRunbook(name), (e) => isCofferError(e, "E_INVALID_NAME"), name);
    await assert.rejects(rb.run(name, {}), (e) => isCofferError(e, "E_INVALID_NAME"), name);
  }
  for (const id of ["../x", "a/b", "%2e", "", "x?y"]) {
    await assert.rejects(rb.execution(id), (e) => isCofferError(e, "E_INVALID_VALUE"), id);
    await assert.rejects(rb.followOutput(id, () => {}), (e) => isCofferError(e, "E_INVALID_VALUE"), id);
  }
  await assert.rejects(rb.run("flush-cdn", { "BAD NAME": "v" }), (e) => isCofferError(e, "E_INVALID_NAME"));
  await assert.rejects(rb.history({ limit: 101 }), (e) => isCofferError(e, "E_INVALID_VALUE"));
  assert.equal(stub.requests.length, 0);
});

test("runbooks: history pages newest first with runbook, limit and before in the query", async (t) => {
  const { stub, rb } = await setup(t);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await rb.run("fail3", {})).id);
  await rb.run("slow", {});
  const page = await rb.history({ runbook: "fail3", limit: 2 });
  assert.deepEqual(page.map((e) => e.id), [ids[2], ids[1]]);
  assert.equal(stub.requests.at(-1)!.url, "/v1/executions?runbook=fail3&limit=2");
  const next = await rb.history({ runbook: "fail3", limit: 2, before: page[1]!.id });
  assert.deepEqual(next.map((e) => e.id), [ids[0]]);
  assert.equal((await rb.history()).length, 4);
  assert.equal(stub.requests.at(-1)!.url, "/v1/executions");
});

test("runbooks: a follow stream that is not an event stream, ends early, sends an event over the cap, or goes silent is E_PROVIDER", async (t) => {
  const { stub, rb } = await setup(t);
  const { id } = await rb.run("cancel-me", {});
  const cases = [
    { raw: { contentType: "text/html", body: "<html>", close: true }, message: /not an event stream/ },
    { raw: { contentType: "text/event-stream", body: "event: output\ndata: {\"text\":\"a\"}\n\n", close: true }, message: /ended before the execution did/ },
    { raw: { contentType: "text/event-stream", body: `event: output\ndata: ${"x".repeat(OUTPUT_EVENT_MAX)}`, close: false }, message: /longer than/ },
    { raw: { contentType: "text/event-stream", body: "event: output\ndata: not json\n\n", close: true }, message: /not JSON/ },
    { raw: { contentType: "text/event-stream", body: ": keepalive\n\n", close: false }, message: /sent nothing for 300ms/, idleMs: 300 },
  ];
  for (const c of cases) {
    stub.rawStream = { id, ...c.raw };
    await assert.rejects(rb.followOutput(id, () => {}, c.idleMs !== undefined ? { idleMs: c.idleMs } : {}), (e) => isCofferError(e, "E_PROVIDER") && c.message.test(e.message), String(c.message));
  }
});

test("runbooks: a follow stream keeps reading past a large body (no total cap): 3 MiB of output in 64 KiB events", async (t) => {
  const piece = "y".repeat(64 * 1024);
  const execution = {
    id: "e1", runbook: "big", status: "succeeded", exitCode: 0, signal: null, by: "token:a", params: {}, createdAt: "2026-01-01T00:00:00Z",
    startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:00:01Z", outputBytes: 48 * piece.length, truncated: false,
    approvalsRequired: 0, approvals: [], expiresAt: null, cancelRequested: false,
  };
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    for (let i = 0; i < 48; i++) res.write(`event: output\r\ndata: ${JSON.stringify({ text: piece })}\r\n\r\n`);
    res.end(`event: end\r\ndata: ${JSON.stringify({ execution })}\r\n\r\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const rb = new RunbookClient(new CofferClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: "cof_x" }));
  let total = 0;
  const end = await rb.followOutput("e1", (text) => void (total += text.length));
  assert.equal(total, 48 * piece.length);
  assert.equal(end.status, "succeeded");
});
