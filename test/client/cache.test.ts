import { test } from "node:test";
import assert from "node:assert/strict";
import { CofferError } from "../../src/errors.ts";
import { ServerError } from "../../src/client/server-error.ts";
import { cacheEntryKey, cacheSettings, SecretCache, servesStale, type CacheBacking, type CachedValue, type FetchedValue, type StaleEvent } from "../../src/client/cache.ts";

const S = 1000;

/** A cache over a fake clock and a fetch whose answer each test sets. */
function setup(ttl: string, staleIfError: string, backing?: CacheBacking) {
  let now = 1_000_000;
  const stale: StaleEvent[] = [];
  let answer: () => Promise<FetchedValue> = async () => ({ name: "app/db", version: 1, updatedAt: "2026-01-01T00:00:00.000Z", value: Buffer.from("v1") });
  let calls = 0;
  const cache = new SecretCache(cacheSettings({ ttl, staleIfError }), { now: () => now, onStale: (e) => stale.push(e), ...(backing !== undefined && { backing }) });
  const fetch = () => {
    calls++;
    return answer();
  };
  return {
    cache,
    stale,
    get: (offline = false) => cache.get("app/db", fetch, offline),
    advance: (ms: number) => void (now += ms),
    answer: (f: () => Promise<FetchedValue>) => void (answer = f),
    calls: () => calls,
  };
}

const unreachable = () => Promise.reject(new CofferError("E_PROVIDER", "server http://127.0.0.1:1: cannot reach it: ECONNREFUSED"));
const status = (code: "E_NOT_FOUND" | "E_DENIED" | "E_UNAUTHENTICATED" | "E_UNAVAILABLE" | "E_PROVIDER" | "E_RATE_LIMITED", s: number) => () =>
  Promise.reject(new ServerError(code, `server x: answered ${s}`, s));

test("cache: within ttl no request is made; after it the server is asked again", async () => {
  const c = setup("5m", "1h");
  assert.equal((await c.get()).reveal(), "v1");
  c.advance(5 * 60 * S - 1);
  const again = await c.get();
  assert.equal(again.reveal(), "v1");
  assert.equal(again.meta.stale, false);
  assert.equal(c.calls(), 1);
  c.advance(1);
  await c.get();
  assert.equal(c.calls(), 2);
});

test("cache: a failed refresh (network, 5xx, 429) serves the cached value until staleIfError, marked stale, then the error surfaces", async () => {
  for (const [fail, code] of [[unreachable, "E_PROVIDER"], [status("E_UNAVAILABLE", 503), "E_UNAVAILABLE"], [status("E_PROVIDER", 502), "E_PROVIDER"], [status("E_RATE_LIMITED", 429), "E_RATE_LIMITED"]] as const) {
    const c = setup("1s", "1m");
    await c.get();
    c.advance(S);
    c.answer(fail);
    const s = await c.get();
    assert.equal(s.reveal(), "v1");
    assert.equal(s.meta.stale, true);
    assert.equal(c.stale.length, 1);
    assert.equal(c.stale[0]!.since.getTime(), 1_000_000 + S);
    assert.equal(c.stale[0]!.name, "app/db");
    c.advance(60 * S); // exactly at the limit: still served
    assert.equal((await c.get()).meta.stale, true);
    c.advance(1);
    await assert.rejects(c.get(), { code });
  }
});

test("cache: 401, 403 and 404 are never answered from the cache, and drop the cached value", async () => {
  for (const [code, s] of [["E_UNAUTHENTICATED", 401], ["E_DENIED", 403], ["E_NOT_FOUND", 404]] as const) {
    const c = setup("1s", "1h");
    await c.get();
    c.advance(S);
    c.answer(status(code, s));
    await assert.rejects(c.get(), { code });
    c.answer(unreachable);
    await assert.rejects(c.get(), { code: "E_PROVIDER" }, "the dropped value must not come back in an outage");
    assert.equal(c.stale.length, 0);
  }
});

test("cache: offline makes no request: the cached value within its limits, else E_PROVIDER saying why", async () => {
  const c = setup("0s", "1h");
  await assert.rejects(c.get(true), { code: "E_PROVIDER", message: /offline, and no cached value of app\/db/ });
  assert.equal(c.calls(), 0);
  await c.get();
  c.advance(30 * 60 * S);
  const s = await c.get(true);
  assert.equal(s.meta.stale, true);
  assert.equal(c.calls(), 1);
  // the stale warning of a value served within its limits says offline, not that it is past them
  assert.match(c.stale.at(-1)!.error.message, /^offline: no request was made$/);
  c.advance(30 * 60 * S + 1);
  await assert.rejects(c.get(true), { code: "E_PROVIDER", message: /past its staleIfError/ });
});

test("cache: each Secret handed out is a copy: disposing one leaves the cache whole; clear() zeroes the cache", async () => {
  const c = setup("1h", "0s");
  const first = await c.get();
  first.dispose();
  assert.equal((await c.get()).reveal(), "v1");
  c.cache.clear();
  assert.equal((await c.get()).reveal(), "v1");
  assert.equal(c.calls(), 2);
});

test("cache: invalidate() makes the next read ask the server whatever the ttl (a pushed change)", async () => {
  const c = setup("1h", "1h");
  await c.get();
  c.cache.invalidate("app/db");
  c.answer(async () => ({ name: "app/db", version: 2, updatedAt: "2026-01-02T00:00:00.000Z", value: Buffer.from("v2") }));
  assert.equal((await c.get()).reveal(), "v2");
  assert.equal(c.calls(), 2);
});

test("cache: a value on the backing is used when memory has none (a new process), and every read is written to it", async () => {
  const saved = new Map<string, CachedValue>();
  const backing: CacheBacking = {
    read: async (k) => saved.get(k),
    write: async (k, e) => void saved.set(k, { ...e, value: Buffer.from(e.value) }),
    remove: async (k) => void saved.delete(k),
  };
  const a = setup("0s", "1h", backing);
  await a.get();
  assert.ok(saved.has("app/db"));
  const b = setup("0s", "1h", backing);
  b.answer(unreachable);
  const s = await b.get();
  assert.equal(s.reveal(), "v1");
  assert.equal(s.meta.stale, true);
});

test("cache: durations use coffer's grammar; keys keep pinned versions apart", () => {
  assert.deepEqual(cacheSettings({ ttl: "5m", staleIfError: "24h" }), { ttlMs: 300_000, staleIfErrorMs: 86_400_000 });
  assert.throws(() => cacheSettings({ ttl: "5 minutes" }), { code: "E_INVALID_VALUE" });
  assert.throws(() => cacheSettings({ staleIfError: "31d" }), { code: "E_INVALID_VALUE" });
  assert.notEqual(cacheEntryKey("a/b"), cacheEntryKey("a/b", 2));
  assert.equal(servesStale(new CofferError("E_PROVIDER", "server x: answered 200 with a body that is not JSON")), false);
  assert.equal(servesStale(new ServerError("E_USAGE", "x", 400)), false);
});
