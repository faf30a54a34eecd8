import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createServerProvider, SseParser, watchPrefix, type ServerProviderOptions, type SseEvent } from "../../src/providers/server.ts";
import { createProvider } from "../../src/providers/index.ts";
import type { Provider } from "../../src/providers/provider.ts";
import { CofferClient } from "../../src/client/client.ts";
import { saveToken } from "../../src/client/token-file.ts";
import { tempDir } from "../helpers.ts";
import { startFakeCofferServer, type FakeCofferServer } from "./fake-coffer-server.ts";

const VALUE = "sk_live_TOPSECRET_value";

async function setup(
  t: TestContext,
  options: ServerProviderOptions = {},
  env?: NodeJS.ProcessEnv,
  fake: { watch?: boolean } = {},
): Promise<{ server: FakeCofferServer; provider: Provider }> {
  const server = await startFakeCofferServer(fake);
  t.after(() => server.close());
  const provider = createServerProvider("team", { type: "server", url: server.url }, { env: env ?? { COFFER_TOKEN: server.token } }, { timeoutMs: 2000, ...options });
  t.after(() => provider.close());
  return { server, provider };
}

/** Asserts the error's code and message, and that neither the token nor the value is in it. */
async function rejects(p: Promise<unknown>, code: string, message: RegExp, server: FakeCofferServer): Promise<void> {
  await assert.rejects(p, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.ok(!err.message.includes(server.token), "token in message");
    assert.ok(!err.message.includes(VALUE), "value in message");
    assert.ok(!String(err.stack).includes(server.token), "token in stack");
    return true;
  });
}

test("server: resolves a text value and sends the bearer token", async (t) => {
  const { server, provider } = await setup(t);
  server.put("payments/stripe", `${VALUE}\n`);
  const s = await provider.resolve({ provider: "team", path: "payments/stripe" });
  assert.equal(s.reveal(), `${VALUE}\n`);
  assert.equal(s.name, "payments/stripe");
  assert.equal(s.version, 1);
  assert.ok(!Number.isNaN(Date.parse(s.updatedAt)));
  const req = server.requests.at(-1)!;
  assert.equal(req.method, "GET");
  assert.equal(req.url, "/v1/secrets/payments/stripe");
  assert.equal(req.headers.authorization, `Bearer ${server.token}`);
  assert.equal(String(s), "[redacted]");
});

test("server: a binary value (valueBase64) comes back byte for byte", async (t) => {
  const { server, provider } = await setup(t);
  const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x41]);
  server.put("tls/key.der", bytes);
  const s = await provider.resolve({ provider: "team", path: "tls/key.der" });
  assert.deepEqual(Buffer.from(s.bytes()), bytes);
});

test("server: version pinning sends ?version=N; latest without it", async (t) => {
  const { server, provider } = await setup(t);
  server.put("db/pw", "one");
  server.put("db/pw", "two");
  const v1 = await provider.resolve({ provider: "team", path: "db/pw", version: 1 });
  assert.equal(v1.reveal(), "one");
  assert.equal(v1.version, 1);
  assert.equal(server.requests.at(-1)!.url, "/v1/secrets/db/pw?version=1");
  const latest = await provider.resolve({ provider: "team", path: "db/pw" });
  assert.equal(latest.reveal(), "two");
  assert.equal(latest.version, 2);
  await rejects(provider.resolve({ provider: "team", path: "db/pw", version: 3 }), "E_NOT_FOUND", /^team:db\/pw@3: server http:\/\/127\.0\.0\.1:\d+: no version 3 of db\/pw \(request /, server);
  await rejects(provider.resolve({ provider: "team", path: "db/pw", version: 0 }), "E_INVALID_VALUE", /whole number from 1/, server);
});

test("server: error statuses keep the server's code and name the ref and the server", async (t) => {
  const { server, provider } = await setup(t);
  const ref = { provider: "team", path: "x" };
  await rejects(provider.resolve(ref), "E_NOT_FOUND", /^team:x: server http:\/\/127\.0\.0\.1:\d+: no secret x \(request [0-9a-f-]+\)$/, server);
  server.put("locked", VALUE);
  server.denied.add("locked");
  await rejects(provider.resolve({ provider: "team", path: "locked" }), "E_DENIED", /the policy does not allow token:\S+ to read locked/, server);
  server.fault = { kind: "error", status: 429, code: "E_RATE_LIMITED", message: "slow down", retryAfter: "7" };
  await assert.rejects(provider.resolve(ref), (err: Error & { code?: string; retryAfterSeconds?: number; status?: number }) => {
    assert.equal(err.code, "E_RATE_LIMITED");
    assert.match(err.message, /slow down \(retry after 7 s; request /);
    assert.equal(err.retryAfterSeconds, 7);
    assert.equal(err.status, 429);
    return true;
  });
  server.fault = { kind: "error", status: 503, code: "E_UNAVAILABLE", message: "the audit log cannot be written" };
  await rejects(provider.resolve(ref), "E_UNAVAILABLE", /the audit log cannot be written/, server);
  // a server-side bug is the provider's failure here, not a client bug (exit 1)
  server.fault = { kind: "error", status: 500, code: "E_INTERNAL", message: "boom" };
  await rejects(provider.resolve(ref), "E_PROVIDER", /boom \(server code E_INTERNAL; request /, server);
  // an unknown code falls back to the status
  server.fault = { kind: "error", status: 403, code: "E_SOMETHING_NEW", message: "nope" };
  await rejects(provider.resolve(ref), "E_DENIED", /nope \(server code E_SOMETHING_NEW/, server);
});

test("server: a wrong token is E_UNAUTHENTICATED saying to log in, without the token", async (t) => {
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  const wrong = `cof_${"x".repeat(43)}`;
  const provider = createServerProvider("team", { type: "server", url: server.url }, { env: { COFFER_TOKEN: wrong } });
  t.after(() => provider.close());
  await assert.rejects(provider.resolve({ provider: "team", path: "x" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_UNAUTHENTICATED");
    assert.match(err.message, /^team:x: server http:\/\/127\.0\.0\.1:\d+: the token is missing, invalid, expired or revoked \(request [0-9a-f-]+\); run `coffer login http:\/\/127\.0\.0\.1:\d+` again or check COFFER_TOKEN$/);
    assert.ok(!err.message.includes(wrong));
    return true;
  });
});

test("server: a server message that quotes the token does not repeat it", async (t) => {
  const { server, provider } = await setup(t);
  server.fault = { kind: "error", status: 401, code: "E_UNAUTHENTICATED", message: `bad token ${server.token}` };
  await rejects(provider.resolve({ provider: "team", path: "x" }), "E_UNAUTHENTICATED", /bad token \[redacted\]/, server);
});

test("server: no token is E_CONFIG naming `coffer login` and the variable, before any request", async (t) => {
  const home = tempDir(t);
  const { server, provider } = await setup(t, {}, { COFFER_HOME: home });
  await rejects(
    provider.resolve({ provider: "team", path: "x" }),
    "E_CONFIG",
    new RegExp(`^provider "team" needs a token: run \`coffer login ${server.url}\` or set COFFER_TOKEN$`),
    server,
  );
  const custom = createServerProvider("t2", { type: "server", url: server.url, tokenEnv: "TEAM_TOKEN" }, { env: { COFFER_HOME: home, TEAM_TOKEN: "" } });
  await rejects(custom.resolve({ provider: "t2", path: "x" }), "E_CONFIG", /or set TEAM_TOKEN$/, server);
  assert.equal(server.requests.length, 0);
});

test("server: the token saved by `coffer login` is used when the variable is not set", async (t) => {
  const home = tempDir(t);
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  saveToken(`${server.url}/`, server.token, { COFFER_HOME: join(home, "cfg") });
  server.put("a", VALUE);
  const provider = createServerProvider("team", { type: "server", url: server.url }, { env: { COFFER_HOME: join(home, "cfg") } });
  t.after(() => provider.close());
  assert.equal((await provider.resolve({ provider: "team", path: "a" })).reveal(), VALUE);
  // the variable wins over the file
  const viaEnv = createServerProvider("team", { type: "server", url: server.url }, { env: { COFFER_HOME: join(home, "cfg"), COFFER_TOKEN: "cof_other" } });
  t.after(() => viaEnv.close());
  await rejects(viaEnv.resolve({ provider: "team", path: "a" }), "E_UNAUTHENTICATED", /token/, server);
});

test("server: #key picks a key of a JSON-object value (a Vault client's map); a missing key names the keys, never a value", async (t) => {
  const { server, provider } = await setup(t);
  server.put("db", '{"password":"pw-9","user":"app"}');
  const s = await provider.resolve({ provider: "team", path: "db", key: "password" });
  assert.equal(s.reveal(), "pw-9");
  assert.equal(s.name, "db#password");
  await assert.rejects(provider.resolve({ provider: "team", path: "db", key: "nope" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_NOT_FOUND");
    assert.match(err.message, /^team:db#nope: the secret has no key "nope"; it has the keys password, user$/);
    return true;
  });
  server.put("plain", "just-text");
  assert.equal((await provider.resolve({ provider: "team", path: "plain", key: "value" })).reveal(), "just-text");
});

test("server: bad names are refused before a request", async (t) => {
  const { server, provider } = await setup(t);
  for (const path of ["", "/a", "a//b", "a/../b", "../sys/health", "a b"]) {
    await assert.rejects(provider.resolve({ provider: "team", path }), { code: "E_INVALID_NAME" }, path);
  }
  assert.equal(server.requests.length, 0);
});

test("server: non-JSON, malformed and oversized answers are E_PROVIDER", async (t) => {
  const { server, provider } = await setup(t);
  const ref = { provider: "team", path: "x" };
  server.fault = { kind: "raw", status: 200, body: "<html>proxy login</html>", contentType: "text/html" };
  await rejects(provider.resolve(ref), "E_PROVIDER", /not JSON \(text\/html\); is the URL a coffer server\?/, server);
  server.fault = { kind: "raw", status: 502, body: "<html>bad gateway</html>", contentType: "text/html" };
  await rejects(provider.resolve(ref), "E_PROVIDER", /answered 502 with a body that is not JSON/, server);
  server.fault = { kind: "raw", status: 200, body: JSON.stringify({ name: "x", version: 1, createdAt: "t", createdBy: "u", updatedAt: "t" }) };
  await rejects(provider.resolve(ref), "E_PROVIDER", /without exactly one of value and valueBase64/, server);
  server.fault = { kind: "raw", status: 200, body: JSON.stringify({ name: "y", version: 1, value: VALUE, createdAt: "t", createdBy: "u", updatedAt: "t" }) };
  await rejects(provider.resolve(ref), "E_PROVIDER", /another secret or version/, server);
  server.fault = { kind: "oversized", bytes: 8 * 1024 * 1024 };
  await rejects(provider.resolve(ref), "E_PROVIDER", /the limit of 2097152 bytes/, server);
});

test("server: a server that hangs times out; nobody listening is E_PROVIDER; redirects are refused", async (t) => {
  const { server, provider } = await setup(t, { timeoutMs: 200 });
  server.fault = { kind: "hang" };
  const started = Date.now();
  await rejects(provider.resolve({ provider: "team", path: "x" }), "E_PROVIDER", /did not answer within 200 ms/, server);
  assert.ok(Date.now() - started < 15_000, "the timeout ends the wait");

  const srv = createServer((_req, res) => res.writeHead(307, { Location: "http://127.0.0.1:1/elsewhere" }).end());
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  const redirected = createServerProvider("r", { type: "server", url: `http://127.0.0.1:${port}` }, { env: { COFFER_TOKEN: server.token } });
  await rejects(redirected.resolve({ provider: "r", path: "x" }), "E_PROVIDER", /cannot reach it/, server);
  await new Promise<void>((r) => srv.close(() => r()));
  const refused = createServerProvider("r", { type: "server", url: `http://127.0.0.1:${port}` }, { env: { COFFER_TOKEN: server.token } });
  await rejects(refused.resolve({ provider: "r", path: "x" }), "E_PROVIDER", new RegExp(`^r:x: server http://127.0.0.1:${port}: cannot reach it: ECONNREFUSED$`), server);
});

test("server: bad URLs are E_CONFIG, credentials never echoed; a token fetch could not send is refused", async (t) => {
  const env = { COFFER_TOKEN: "cof_t" };
  for (const url of ["ftp://x", "not a url", "https://x/?q=1", "https://x/#f"]) {
    assert.throws(() => createServerProvider("s", { type: "server", url }, { env }), { code: "E_CONFIG" }, url);
  }
  assert.throws(
    () => createServerProvider("s", { type: "server", url: "https://user:hunter2@coffer.example.com" }, { env }),
    (err: Error & { code?: string }) => err.code === "E_CONFIG" && !err.message.includes("hunter2") && /credentials/.test(err.message),
  );
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  const p = createServerProvider("s", { type: "server", url: server.url }, { env: { COFFER_TOKEN: "cof_abc\r\nX-Evil: 1" } });
  await assert.rejects(p.resolve({ provider: "s", path: "x" }), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_INVALID_VALUE");
    assert.ok(!err.message.includes("cof_abc"));
    return true;
  });
  assert.equal(server.requests.length, 0);
});

test("server: createProvider knows the type", async (t) => {
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  server.put("a", VALUE);
  const p = createProvider("team", { type: "server", url: server.url }, { env: { COFFER_TOKEN: server.token } });
  t.after(() => p.close());
  assert.equal((await p.resolve({ provider: "team", path: "a" })).reveal(), VALUE);
  assert.throws(() => createProvider("z", { type: "zzz" } as never, { env: {} }), { message: /known types: store, folder, env, vault, server$/ });
});

test("server: watch polls versions, reports a new version and a removal, ignores pinned refs; stop ends it", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 40 });
  server.put("w", "1");
  const seen: string[] = [];
  const refs = [
    { provider: "team", path: "w" },
    { provider: "team", path: "w", version: 1 }, // pinned: cannot change
  ];
  let notify: () => void = () => {};
  const stop = provider.watch!(refs, (ref) => {
    seen.push(`${ref.path}@${ref.version ?? "latest"}`);
    notify();
  });
  t.after(stop);
  const next = (): Promise<void> => new Promise((r) => (notify = r));
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(seen, []);
  assert.ok(server.requests.some((r) => r.url === "/v1/secrets/w/versions"));
  let changed = next();
  server.put("w", "2");
  await changed;
  assert.deepEqual(seen, ["w@latest"]);
  changed = next();
  server.remove("w");
  await changed;
  assert.deepEqual(seen, ["w@latest", "w@latest"]);
  stop();
  const count = server.requests.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(server.requests.length, count);
});

test("server: watch skips failed polls and keeps going", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 30 });
  server.put("w", "1");
  let notify: () => void = () => {};
  const seen: string[] = [];
  const stop = provider.watch!([{ provider: "team", path: "w" }], (ref) => {
    seen.push(ref.path);
    notify();
  });
  t.after(stop);
  await new Promise((r) => setTimeout(r, 80));
  server.fault = { kind: "error", status: 503, code: "E_UNAVAILABLE", message: "down" };
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(seen, []);
  const changed = new Promise<void>((r) => (notify = r));
  server.put("w", "2");
  server.fault = undefined;
  await changed;
  assert.deepEqual(seen, ["w"]);
});

test("server: close() aborts a request in flight and stops watches", async (t) => {
  const { server, provider } = await setup(t, { timeoutMs: 5000, pollIntervalMs: 30 });
  server.put("w", "1");
  const stopped = provider.watch!([{ provider: "team", path: "w" }], () => assert.fail("no change expected"));
  void stopped;
  await new Promise((r) => setTimeout(r, 50));
  server.fault = { kind: "hang" };
  const pending = provider.resolve({ provider: "team", path: "w" });
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  await provider.close();
  await rejects(pending, "E_PROVIDER", /cancelled/, server);
  assert.ok(Date.now() - started < 15_000, "close() cancels, never waits for the hang");
  // A poll already on the wire when close() ran may still land; after that nothing new comes,
  // though the poll interval is 30 ms.
  await new Promise((r) => setTimeout(r, 200));
  const count = server.requests.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(server.requests.length, count);
  await assert.rejects(provider.resolve({ provider: "team", path: "w" }), { code: "E_INTERNAL", message: /after close\(\)/ });
});

test("client: write, list, versions, remove, self and health follow the contract", async (t) => {
  const server = await startFakeCofferServer({ roles: ["reader", "writer"] });
  t.after(() => server.close());
  const client = new CofferClient({ url: `${server.url}/`, token: server.token });
  assert.deepEqual(await client.writeSecret("app/a", Buffer.from(VALUE), { description: "first" }), { name: "app/a", version: 1 });
  assert.deepEqual(JSON.parse(server.requests.at(-1)!.body), { value: VALUE, description: "first" });
  await client.writeSecret("app/a", Buffer.from([0xff, 0x01]), { ifVersion: 1 });
  assert.deepEqual(JSON.parse(server.requests.at(-1)!.body), { valueBase64: "/wE=", ifVersion: 1 });
  await assert.rejects(client.writeSecret("app/a", Buffer.from("x"), { ifVersion: 1 }), { code: "E_CONFLICT" });
  assert.deepEqual(Buffer.from((await client.readSecret("app/a")).value), Buffer.from([0xff, 0x01]));
  await client.writeSecret("other", Buffer.from("o"));
  const list = await client.listSecrets("app/");
  assert.equal(server.requests.at(-1)!.url, "/v1/secrets?prefix=app%2F");
  assert.deepEqual(list.map((r) => [r.name, r.version, r.description]), [["app/a", 2, "first"]]);
  const versions = await client.versions("app/a");
  assert.deepEqual(versions.versions.map((v) => [v.version, v.current]), [[1, false], [2, true]]);
  assert.deepEqual(await client.removeSecret("app/a"), { name: "app/a", version: 2 });
  await assert.rejects(client.readSecret("app/a"), { code: "E_NOT_FOUND" });
  assert.deepEqual(await client.self(), { subject: server.subject, kind: "token", roles: ["reader", "writer"], expiresAt: null });
  const before = server.requests.length;
  assert.equal((await new CofferClient({ url: server.url }).health()).status, "ok");
  assert.equal(server.requests[before]!.headers.authorization, undefined);
});

test("SSE parser: any chunking, LF / CRLF / CR, multi-line data, comments, ids, events without data", () => {
  const stream = [
    ": a comment\r\n",
    "event: ready\r\ndata: {\"a\":1}\r\n\r\n",
    "event: change\nid: 2026-01-01T00:00:00Z\ndata: line one\ndata:line two\n\n",
    "data: plain\r\r",
    "event: nodata\n\n",
    "retry: 100\nunknown: x\ndata\n\n",
    ": heartbeat\n\n",
    "data:  two spaces\n\n",
    "event: unterminated\ndata: lost",
  ].join("");
  const expected: SseEvent[] = [
    { event: "ready", data: '{"a":1}', id: "" },
    { event: "change", data: "line one\nline two", id: "2026-01-01T00:00:00Z" },
    { event: "message", data: "plain", id: "2026-01-01T00:00:00Z" },
    { event: "message", data: "", id: "2026-01-01T00:00:00Z" },
    { event: "message", data: " two spaces", id: "2026-01-01T00:00:00Z" },
  ];
  for (const size of [stream.length, 1, 2, 3, 7]) {
    const got: SseEvent[] = [];
    const p = new SseParser((e) => got.push(e));
    for (let i = 0; i < stream.length; i += size) p.push(stream.slice(i, i + size));
    p.end();
    assert.deepEqual(got, expected, `chunks of ${size}`);
  }
  const p = new SseParser(() => {});
  assert.throws(() => p.push("x".repeat(70 * 1024)), /longer than/);
});

test("watch prefix: the common folder of the paths", () => {
  assert.equal(watchPrefix(["app/db/pw", "app/api"]), "app/");
  assert.equal(watchPrefix(["app/db/pw"]), "app/db/");
  assert.equal(watchPrefix(["app/db/pw", "app/db/user"]), "app/db/");
  assert.equal(watchPrefix(["a", "b/c"]), "");
  assert.equal(watchPrefix(["apple/x", "app/y"]), "");
  assert.equal(watchPrefix([`${"a".repeat(300)}/x`]), "");
  assert.equal(watchPrefix([]), "");
});

/** Calls to onChange, as "path@version", and a wait for the next one. */
function recorder() {
  const seen: string[] = [];
  let notify: () => void = () => {};
  return {
    seen,
    onChange: (ref: { path: string; version?: number }) => {
      seen.push(`${ref.path}@${ref.version ?? "latest"}`);
      notify();
    },
    next: (ms = 2000): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no change within ${ms} ms; seen ${JSON.stringify(seen)}`)), ms);
        notify = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const versionPolls = (server: FakeCofferServer) => server.requests.filter((r) => r.url.endsWith("/versions")).length;

test("server: watch listens to /v1/watch (no polling needed): a write and a removal arrive as events", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 60_000 }, undefined, { watch: true });
  server.put("app/db/pw", "1");
  server.put("app/other", "1");
  const r = recorder();
  const stop = provider.watch!([{ provider: "team", path: "app/db/pw" }, { provider: "team", path: "app/db/pw", version: 1 }, { provider: "team", path: "app/api" }], r.onChange);
  t.after(stop);
  await until(() => server.streams === 1);
  const req = server.requests.find((q) => q.url.startsWith("/v1/watch"))!;
  assert.equal(req.url, "/v1/watch?prefix=app%2F");
  assert.equal(req.headers.authorization, `Bearer ${server.token}`);
  assert.equal(req.headers.accept, "text/event-stream");
  await new Promise((res) => setTimeout(res, 50));
  const polls = versionPolls(server);
  let changed = r.next(500);
  server.put("app/other", "2"); // not watched
  server.put("app/db/pw", "2");
  await changed;
  assert.deepEqual(r.seen, ["app/db/pw@latest"]);
  changed = r.next(500);
  server.remove("app/db/pw");
  await changed;
  assert.deepEqual(r.seen, ["app/db/pw@latest", "app/db/pw@latest"]);
  assert.equal(versionPolls(server), polls, "events, not polls");
  stop();
  await until(() => server.streams === 0);
});

test("server: when the stream drops, watch polls at once (catching the missed change) and reconnects with backoff", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 40, streamRetryMs: 200 }, undefined, { watch: true });
  server.put("w", "1");
  const r = recorder();
  const stop = provider.watch!([{ provider: "team", path: "w" }], r.onChange);
  t.after(stop);
  await until(() => server.streams === 1);
  await new Promise((res) => setTimeout(res, 100));
  // the stream is down and the change is not announced: only polling can see it
  server.announce = false;
  server.watchAvailable = false;
  server.dropStreams();
  const changed = r.next(1000);
  server.put("w", "2");
  await changed;
  assert.deepEqual(r.seen, ["w@latest"]);
  // the stream comes back after the backoff; polling stops
  server.watchAvailable = true;
  server.announce = true;
  await until(() => server.streams === 1, 3000);
  await new Promise((res) => setTimeout(res, 100));
  const polls = versionPolls(server);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(versionPolls(server), polls, "no polling while the stream is up");
  const again = r.next(500);
  server.put("w", "3");
  await again;
  assert.deepEqual(r.seen, ["w@latest", "w@latest"]);
});

test("server: a resync event polls once; degraded polls until resync", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 30 }, undefined, { watch: true });
  server.put("w", "1");
  const r = recorder();
  const stop = provider.watch!([{ provider: "team", path: "w" }], r.onChange);
  t.after(stop);
  await until(() => server.streams === 1);
  await new Promise((res) => setTimeout(res, 80));
  server.announce = false;
  let changed = r.next(1000);
  server.put("w", "2");
  server.sendToStreams("event: resync\ndata: {}\n\n");
  await changed;
  assert.deepEqual(r.seen, ["w@latest"]);

  server.sendToStreams("event: degraded\ndata: {}\n\n");
  await new Promise((res) => setTimeout(res, 50));
  changed = r.next(1000);
  server.put("w", "3");
  await changed;
  assert.deepEqual(r.seen, ["w@latest", "w@latest"]);
  server.sendToStreams("event: resync\ndata: {}\n\n");
  // Polling every 30 ms never stays still for 300 ms; once resync is handled it does. Wait for
  // that (a loaded machine may take a while to handle the event), never on a fixed clock.
  let stable = false;
  for (let i = 0; i < 40 && !stable; i++) {
    const polls = versionPolls(server);
    await new Promise((res) => setTimeout(res, 300));
    stable = versionPolls(server) === polls;
  }
  assert.ok(stable, "polling stopped at resync");
});

test("server: a stream that goes silent past streamIdleMs counts as dropped", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 60_000, streamIdleMs: 150, streamRetryMs: 5000 }, undefined, { watch: true });
  server.put("w", "1");
  const stop = provider.watch!([{ provider: "team", path: "w" }], () => {});
  t.after(stop);
  await until(() => server.streams === 1);
  await until(() => server.streams === 0, 1000);
});

test("server: close() ends the stream and its retries", async (t) => {
  const { server, provider } = await setup(t, { pollIntervalMs: 30, streamRetryMs: 50 }, undefined, { watch: true });
  server.put("w", "1");
  provider.watch!([{ provider: "team", path: "w" }], () => assert.fail("no change expected"));
  await until(() => server.streams === 1);
  await provider.close();
  await until(() => server.streams === 0);
  const count = server.requests.length;
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(server.requests.length, count);
});
