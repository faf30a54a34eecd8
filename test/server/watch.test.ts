import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { startTestServer, startTwoInstances, type TestServer } from "./harness.ts";
import { redisUrl } from "../services.ts";

/** An open watch stream: the raw text so far, and a wait for text matching a pattern. */
export interface Watcher {
  status: number;
  headers: Headers;
  raw: () => string;
  /** resolves with the raw text once `re` matches it; rejects after `ms` */
  until: (re: RegExp, ms?: number) => Promise<string>;
  /** resolves when the server ends the stream */
  ended: Promise<void>;
  close: () => void;
}

export async function openWatch(t: TestContext, url: string, token: string | undefined, prefix?: string): Promise<Watcher> {
  const controller = new AbortController();
  t.after(() => controller.abort());
  const query = prefix === undefined ? "" : `?${new URLSearchParams({ prefix })}`;
  const res = await fetch(`${url}/v1/watch${query}`, {
    headers: { accept: "text/event-stream", ...(token !== undefined && { authorization: `Bearer ${token}` }) },
    signal: controller.signal,
  });
  let text = "";
  const waiters = new Set<() => void>();
  const ended = (async () => {
    if (res.body === null) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        for (const w of [...waiters]) w();
      }
    } catch {
      // aborted
    }
  })();
  const until = (re: RegExp, ms = 3000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (re.test(text)) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(text);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${re} within ${ms} ms; got ${JSON.stringify(text)}`));
      }, ms);
      waiters.add(check);
      check();
    });
  return { status: res.status, headers: res.headers, raw: () => text, until, ended, close: () => controller.abort() };
}

async function put(s: TestServer, token: string, name: string, value: string) {
  const r = await s.call("PUT", `/v1/secrets/${name}`, { token, body: { value } });
  assert.equal(r.status, 200, r.text);
  return r.json as { version: number };
}

describe("GET /v1/watch", () => {
  test("a reader watching app/ sees a write to app/x within a second, never other/y, never a value", async (t) => {
    const s = await startTestServer(t);
    const reader = await s.token(["reader"]);
    const w = await openWatch(t, s.url, reader, "app/");
    assert.equal(w.status, 200);
    assert.equal(w.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(w.headers.get("cache-control"), "no-store");
    assert.equal(w.headers.get("x-accel-buffering"), "no");
    await w.until(/event: ready\ndata: \{"prefix":"app\/","transport":"memory","healthy":true\}\n\n/);

    await put(s, s.rootToken, "other/y", "other-value-SECRET");
    const { version } = await put(s, s.rootToken, "app/x", "app-value-SECRET");
    const text = await w.until(/event: change\nid: [^\n]+\ndata: \{"name":"app\/x"/, 15_000);
    const data = /event: change\nid: ([^\n]+)\ndata: (.+)\n\n/.exec(text)!;
    const event = JSON.parse(data[2]!);
    assert.deepEqual(Object.keys(event).sort(), ["action", "at", "name", "version"]);
    assert.equal(event.version, version);
    assert.equal(event.action, "write");
    assert.equal(data[1], event.at);

    const del = await s.call("DELETE", "/v1/secrets/app/x", { token: s.rootToken });
    assert.equal(del.status, 200);
    await w.until(/"action":"delete"/, 1000);
    assert.ok(!w.raw().includes("other/y"), "a name outside the prefix is not sent");
    assert.ok(!w.raw().includes("SECRET"), "never a value");

    // the opening of the stream is audited, with the prefix
    const audit = await s.call("GET", "/v1/audit", { token: s.rootToken });
    const watched = (audit.json.records as { action: string; detail: { prefix?: string } }[]).filter((r) => r.action === "secret.watch");
    assert.equal(watched.length, 1);
    assert.equal(watched[0]!.detail.prefix, "app/");
  });

  test("a name the token may not list is not sent; no prefix watches everything the token may list", async (t) => {
    const s = await startTestServer(t);
    const reader = await s.token(["reader"]); // app/* only: not app/deep/name
    const w = await openWatch(t, s.url, reader);
    await w.until(/event: ready\ndata: \{"prefix":""/);
    await put(s, s.rootToken, "app/deep/name", "v1");
    await put(s, s.rootToken, "zzz/hidden", "v1");
    await put(s, s.rootToken, "app/visible", "v1");
    await w.until(/app\/visible/, 1000);
    assert.ok(!w.raw().includes("app/deep/name"));
    assert.ok(!w.raw().includes("zzz/hidden"));
  });

  test("401 without a token or with a bad one; 400 for an unknown query or too long a prefix", async (t) => {
    const s = await startTestServer(t);
    const none = await s.call("GET", "/v1/watch");
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, "E_UNAUTHENTICATED");
    const bad = await s.call("GET", "/v1/watch", { token: `cof_${"A".repeat(43)}` });
    assert.equal(bad.status, 401);
    const reader = await s.token(["reader"]);
    assert.equal((await s.call("GET", "/v1/watch?other=1", { token: reader })).status, 400);
    assert.equal((await s.call("GET", `/v1/watch?prefix=${"a".repeat(257)}`, { token: reader })).status, 400);
  });

  test("closing the server ends open streams promptly", async (t) => {
    const s = await startTestServer(t);
    const reader = await s.token(["reader"]);
    const a = await openWatch(t, s.url, reader, "app/");
    const b = await openWatch(t, s.url, s.rootToken);
    await a.until(/event: ready/);
    await b.until(/event: ready/);
    const started = Date.now();
    await s.server.close();
    await Promise.all([a.ended, b.ended]);
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms: close() must not wait for the streams`);
  });

  test("a revoked token's watch stream ends at once, not at its next heartbeat", async (t) => {
    const s = await startTestServer(t);
    const created = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "watcher", roles: ["reader"] } });
    const w = await openWatch(t, s.url, created.json.token, "app/");
    await w.until(/event: ready/);
    assert.equal((await s.call("DELETE", `/v1/tokens/${created.json.id}`, { token: s.rootToken })).status, 200);
    // The heartbeat (which would also end it) comes every 15 s: well past this limit.
    assert.equal(await endsWithin(w, 5000), "ended");
    await put(s, s.rootToken, "app/after-revocation", "v");
    assert.ok(!w.raw().includes("app/after-revocation"));
  });

  test("an expired token's watch stream gets no further events", async (t) => {
    const s = await startTestServer(t);
    const created = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "short", roles: ["reader"], ttl: 2 } });
    assert.equal(created.status, 201, created.text);
    const w = await openWatch(t, s.url, created.json.token, "app/");
    await w.until(/event: ready/);
    await put(s, s.rootToken, "app/before-expiry", "v");
    await w.until(/app\/before-expiry/);
    assert.equal(await endsWithin(w, 10_000), "ended");
    await put(s, s.rootToken, "app/after-expiry", "v");
    assert.ok(!w.raw().includes("app/after-expiry"));
  });

  test("HEAD /v1/watch answers with the stream's headers and no body instead of hanging", async (t) => {
    const s = await startTestServer(t);
    const reader = await s.token(["reader"]);
    const res = await fetch(`${s.url}/v1/watch?prefix=app/`, { method: "HEAD", headers: { authorization: `Bearer ${reader}` }, signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(await res.text(), "");
    const none = await fetch(`${s.url}/v1/watch`, { method: "HEAD", signal: AbortSignal.timeout(5000) });
    assert.equal(none.status, 401);
  });

  test("the OpenAPI docs list the route", async (t) => {
    const s = await startTestServer(t);
    const docs = await s.call("GET", "/docs/json");
    assert.equal(docs.status, 200);
    assert.match(docs.json.paths["/v1/watch"].get.summary, /never values/);
  });
});

/** "ended" when the server ends the stream within `ms`, else "still open". */
function endsWithin(w: Watcher, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    w.ended.then(() => "ended"),
    new Promise<string>((r) => (timer = setTimeout(() => r("still open"), ms))),
  ]).finally(() => clearTimeout(timer));
}

describe("GET /v1/watch across instances", () => {
  for (const transport of ["redis", "postgres"] as const) {
    test(`${transport}: the stream on one instance reports a change written through the other within a second`, async (t) => {
      const { a, b, root } = await startTwoInstances(t, transport === "redis" ? { redis: await redisUrl() } : {});
      const w = await openWatch(t, a.url, root, "app/");
      await w.until(new RegExp(`event: ready\\ndata: \\{"prefix":"app/","transport":"${transport}","healthy":true\\}`));
      const res = await fetch(`${b.url}/v1/secrets/app/shared`, {
        method: "PUT",
        headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
        body: JSON.stringify({ value: "VALUE-never-streamed" }),
      });
      assert.equal(res.status, 200, await res.text());
      // "within a second" is a correctness bound: wait for the event with a generous limit, never time it
      await w.until(/event: change\nid: [^\n]+\ndata: \{"name":"app\/shared","version":1,"action":"write"/, 15_000);
      assert.ok(!w.raw().includes("VALUE-never-streamed"));
    });

    test(`${transport}: a token revoked on one instance has its watch stream on the other ended at once`, async (t) => {
      const { a, b, root } = await startTwoInstances(t, transport === "redis" ? { redis: await redisUrl() } : {});
      const created = await fetch(`${a.url}/v1/tokens`, {
        method: "POST",
        headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "watcher", roles: ["reader"] }),
      });
      const { token, id } = (await created.json()) as { token: string; id: string };
      const w = await openWatch(t, a.url, token, "app/");
      await w.until(/event: ready\ndata: [^\n]*"healthy":true/);
      const revoked = await fetch(`${b.url}/v1/tokens/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${root}` } });
      assert.equal(revoked.status, 200, await revoked.text());
      assert.equal(await endsWithin(w, 5000), "ended");
    });
  }
});

describe("registerWatchRoute", () => {
  async function app(t: TestContext, deps: Partial<import("../../src/server/routes/watch.ts").WatchDeps> & { healthy?: () => boolean }) {
    const { default: Fastify } = await import("fastify");
    const { registerWatchRoute } = await import("../../src/server/routes/watch.ts");
    const { createMemoryBus } = await import("../../src/server/changes.ts");
    const memory = createMemoryBus();
    const bus = { ...memory, kind: "redis" as const, healthy: deps.healthy ?? (() => true) };
    const f = Fastify({ forceCloseConnections: "idle" });
    registerWatchRoute(f, {
      bus,
      canSee: deps.canSee ?? (() => true),
      audit: deps.audit ?? (async () => {}),
      heartbeatMs: deps.heartbeatMs ?? 50,
      healthCheckMs: deps.healthCheckMs ?? 20,
      ...(deps.stillValid !== undefined && { stillValid: deps.stillValid }),
    });
    const url = await f.listen({ host: "127.0.0.1", port: 0 });
    t.after(() => f.close());
    return { url, bus, close: () => f.close() };
  }

  test("heartbeat comments, degraded when the transport goes down, resync when it is back", async (t) => {
    let up = true;
    const a = await app(t, { healthy: () => up });
    const w = await openWatch(t, a.url, undefined);
    await w.until(/event: ready\ndata: \{"prefix":"","transport":"redis","healthy":true\}/);
    await w.until(/: heartbeat\n\n/, 1000);
    up = false;
    await w.until(/event: degraded\n/, 1000);
    up = true;
    await w.until(/event: resync\n/, 1000);
    await a.bus.publish({ name: "app/x", version: 2, action: "write", at: new Date().toISOString() });
    await w.until(/"name":"app\/x"/);
  });

  test("a failing audit refuses the stream (fail closed)", async (t) => {
    const a = await app(t, { audit: async () => { throw new Error("audit down"); } });
    const res = await fetch(`${a.url}/v1/watch`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.headers.get("content-type") ?? "", /event-stream/);
  });

  test("a stream ends at the next heartbeat once its credential is revoked or expired", async (t) => {
    let valid = true;
    const a = await app(t, { stillValid: async () => valid });
    const w = await openWatch(t, a.url, undefined);
    await w.until(/event: ready/);
    await w.until(/: heartbeat\n\n/, 1000);
    valid = false;
    const res = await Promise.race([w.ended.then(() => "ended"), new Promise((r) => setTimeout(() => r("still open"), 1000))]);
    assert.equal(res, "ended");
  });

  test("a client that goes away is unsubscribed", async (t) => {
    const a = await app(t, {});
    let subscribed = 0;
    const subscribe = a.bus.subscribe;
    a.bus.subscribe = (l) => {
      subscribed++;
      const stop = subscribe(l);
      return () => {
        subscribed--;
        stop();
      };
    };
    const w = await openWatch(t, a.url, undefined);
    await w.until(/event: ready/);
    assert.equal(subscribed, 1);
    w.close();
    const end = Date.now() + 2000;
    const count = () => subscribed;
    while (count() !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(count(), 0);
  });
});
