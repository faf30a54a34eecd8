import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { SignJWT, generateKeyPair } from "jose";
import { startTestServer, TEST_ROLES, type TestServer } from "./harness.ts";

const JWT_SECRET = "k6V3q9xWm2Zt8Rb1Ny4Lc7Pd0Hs5Jf3Ga9Ue2Ow6Ti";
const JWT_CONFIG = `${TEST_ROLES}
jwt: { secret: "${JWT_SECRET}", issuer: "https://idp.test", audience: coffer, rolesClaim: groups }
`;

async function jwt(claims: Record<string, unknown>, options: { secret?: string; iss?: string; aud?: string; exp?: number | string } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("alice@example.com")
    .setIssuer(options.iss ?? "https://idp.test")
    .setAudience(options.aud ?? "coffer")
    .setIssuedAt()
    .setExpirationTime(options.exp ?? "5m")
    .sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

function unsignedJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
}

/** A request whose path is sent exactly as written (no URL normalisation). */
function rawRequest(base: string, method: string, path: string, token: string, body: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, method, path, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function put(s: TestServer, token: string, name: string, value: string, extra: Record<string, unknown> = {}) {
  return s.call("PUT", `/v1/secrets/${name}`, { token, body: { value, ...extra } });
}

describe("team server API", () => {
  test("health needs no credentials; the API needs them (401 for none, garbage, unknown)", async (t) => {
    const s = await startTestServer(t);
    const health = await s.call("GET", "/v1/sys/health");
    assert.equal(health.status, 200);
    assert.equal(health.json.status, "ok");
    assert.equal(health.json.storage, "sqlite");
    for (const token of [undefined, "garbage", "cof_short", `cof_${"A".repeat(43)}`]) {
      const r = await s.call("GET", "/v1/secrets/app/x", token === undefined ? {} : { token });
      assert.equal(r.status, 401, `token ${token}`);
      assert.equal(r.json.error.code, "E_UNAUTHENTICATED");
      assert.ok(r.json.requestId);
    }
    const basic = await s.call("GET", "/v1/secrets", { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    assert.equal(basic.status, 401);
  });

  test("reader / writer / denied matrix, and a 403 never says whether the secret exists", async (t) => {
    const s = await startTestServer(t);
    const deployer = await s.token(["deployer"]);
    const reader = await s.token(["reader"]);
    const janitor = await s.token(["janitor"]);

    assert.equal((await put(s, deployer, "app/api-key", "value-one")).status, 200);
    assert.equal((await put(s, deployer, "app/db/password", "value-two")).status, 200);
    assert.equal((await put(s, s.rootToken, "other/secret", "value-three")).status, 200);

    // reader: app/* read and list only
    const read = await s.call("GET", "/v1/secrets/app/api-key", { token: reader });
    assert.equal(read.status, 200);
    assert.equal(read.json.value, "value-one");
    assert.equal(read.headers.get("cache-control"), "no-store", "no cache keeps a secret");
    assert.equal(read.json.version, 1);
    assert.equal((await put(s, reader, "app/api-key", "nope")).status, 403);
    assert.equal((await s.call("DELETE", "/v1/secrets/app/api-key", { token: reader })).status, 403);
    const nested = await s.call("GET", "/v1/secrets/app/db/password", { token: reader });
    assert.equal(nested.status, 403, "app/* is one segment: app/db/password is not covered");

    // deployer: app/** read, list, write; no delete
    assert.equal((await s.call("GET", "/v1/secrets/app/db/password", { token: deployer })).json.value, "value-two");
    assert.equal((await s.call("DELETE", "/v1/secrets/app/api-key", { token: deployer })).status, 403);
    assert.equal((await s.call("GET", "/v1/secrets/other/secret", { token: deployer })).status, 403);

    // the same 403 for a secret that exists and one that does not
    const exists = await s.call("GET", "/v1/secrets/other/secret", { token: reader });
    const missing = await s.call("GET", "/v1/secrets/other/nothing-here", { token: reader });
    assert.equal(exists.status, 403);
    assert.equal(missing.status, 403);
    assert.equal(exists.json.error.code, "E_DENIED");
    assert.equal(exists.json.error.message.replace("secret", ""), exists.json.error.message.replace("secret", ""));
    assert.deepEqual(
      [exists.json.error.code, exists.json.error.message.replace("other/secret", "X")],
      [missing.json.error.code, missing.json.error.message.replace("other/nothing-here", "X")],
    );
    // a 404 only for those who may read
    assert.equal((await s.call("GET", "/v1/secrets/app/nothing", { token: reader })).status, 404);

    // list: only the names the caller may list
    const listed = await s.call("GET", "/v1/secrets", { token: reader });
    assert.deepEqual(listed.json.secrets.map((x: { name: string }) => x.name), ["app/api-key"]);
    const all = await s.call("GET", "/v1/secrets?prefix=app/", { token: deployer });
    assert.deepEqual(all.json.secrets.map((x: { name: string }) => x.name), ["app/api-key", "app/db/password"]);
    assert.ok(!all.text.includes("value-"), "a list never holds values");

    // delete, then it is gone for readers
    const del = await s.call("DELETE", "/v1/secrets/app/api-key", { token: janitor });
    assert.equal(del.status, 200);
    assert.equal((await s.call("GET", "/v1/secrets/app/api-key", { token: reader })).status, 404);
  });

  test("versions, ?version=N, check-and-set (409), binary values", async (t) => {
    const s = await startTestServer(t);
    const root = s.rootToken;
    assert.equal((await put(s, root, "app/key", "v1", { description: "the key" })).json.version, 1);
    assert.equal((await put(s, root, "app/key", "v2", { ifVersion: 1 })).json.version, 2);
    const conflict = await put(s, root, "app/key", "v3", { ifVersion: 1 });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.error.code, "E_CONFLICT");
    assert.equal((await put(s, root, "app/new", "x", { ifVersion: 0 })).status, 200);
    assert.equal((await s.call("GET", "/v1/secrets/app/key?version=1", { token: root })).json.value, "v1");
    assert.equal((await s.call("GET", "/v1/secrets/app/key", { token: root })).json.value, "v2");
    assert.equal((await s.call("GET", "/v1/secrets/app/key?version=9", { token: root })).status, 404);
    const versions = await s.call("GET", "/v1/secrets/app/key/versions", { token: root });
    assert.deepEqual(versions.json.versions.map((v: { version: number; current: boolean }) => [v.version, v.current]), [[1, false], [2, true]]);
    const bytes = Buffer.from([0, 255, 254, 1, 2]);
    assert.equal((await s.call("PUT", "/v1/secrets/app/bin", { token: root, body: { valueBase64: bytes.toString("base64") } })).status, 200);
    const bin = await s.call("GET", "/v1/secrets/app/bin", { token: root });
    assert.equal(bin.json.value, undefined);
    assert.deepEqual(Buffer.from(bin.json.valueBase64, "base64"), bytes);
    // a leading byte-order mark is part of the value, both ways
    const bom = Buffer.from("\ufeffBOM first", "utf8");
    await s.call("PUT", "/v1/secrets/app/bom", { token: root, body: { valueBase64: bom.toString("base64") } });
    assert.deepEqual(Buffer.from((await s.call("GET", "/v1/secrets/app/bom", { token: root })).json.value, "utf8"), bom);
    const text = "line 1\nline 2\n  ünïcödé ✓\n";
    await put(s, root, "app/text", text);
    assert.equal((await s.call("GET", "/v1/secrets/app/text", { token: root })).json.value, text);
  });

  test("an empty value is stored and read back as the empty value, as text and as base64", async (t) => {
    const s = await startTestServer(t);
    const root = s.rootToken;
    const text = await s.call("PUT", "/v1/secrets/app/flag", { token: root, body: { value: "" } });
    assert.equal(text.status, 200, text.text);
    assert.equal((await s.call("GET", "/v1/secrets/app/flag", { token: root })).json.value, "");
    const b64 = await s.call("PUT", "/v1/secrets/app/flag2", { token: root, body: { valueBase64: "" } });
    assert.equal(b64.status, 200, b64.text);
    assert.equal((await s.call("GET", "/v1/secrets/app/flag2", { token: root })).json.value, "");
  });

  test("a 1 MiB binary value fits the default limits as valueBase64; one byte more is refused", async (t) => {
    const s = await startTestServer(t);
    const big = Buffer.alloc(1024 * 1024, 0xfe);
    const ok = await s.call("PUT", "/v1/secrets/app/big", { token: s.rootToken, body: { valueBase64: big.toString("base64") } });
    assert.equal(ok.status, 200, ok.text);
    const back = await s.call("GET", "/v1/secrets/app/big", { token: s.rootToken });
    assert.ok(Buffer.from(back.json.valueBase64, "base64").equals(big));
    const over = await s.call("PUT", "/v1/secrets/app/big", { token: s.rootToken, body: { valueBase64: Buffer.alloc(1024 * 1024 + 1).toString("base64") } });
    assert.equal(over.status, 400);
    assert.match(over.json.error.message, /over the limit/);
  });

  test("tokens: shown once, cof_ prefixed, stored as a hash, listed without the token, revoked at once", async (t) => {
    const s = await startTestServer(t);
    const created = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "ci", roles: ["reader"], ttl: "1h" } });
    assert.equal(created.status, 201);
    assert.match(created.json.token, /^cof_[A-Za-z0-9_-]{43}$/);
    assert.match(created.json.id, /^[0-9a-f]{16}$/);
    assert.ok(Date.parse(created.json.expiresAt) > Date.now() + 3500_000);
    const token: string = created.json.token;
    assert.equal((await s.call("GET", "/v1/auth/self", { token })).json.subject, `token:${created.json.id}`);

    const list = await s.call("GET", "/v1/tokens", { token: s.rootToken });
    assert.equal(list.status, 200);
    assert.ok(list.json.tokens.some((x: { id: string }) => x.id === created.json.id));
    assert.ok(!list.text.includes(token) && !list.text.includes(token.slice(4)), "a list never holds a token");

    // only roles you hold, only with write on sys:tokens
    const minter = await s.token(["minter"]);
    assert.equal((await s.call("POST", "/v1/tokens", { token: minter, body: { name: "x", roles: ["deployer"] } })).status, 403);
    assert.equal((await s.call("POST", "/v1/tokens", { token: minter, body: { name: "x", roles: ["root"] } })).status, 403);
    assert.equal((await s.call("POST", "/v1/tokens", { token: minter, body: { name: "x", roles: ["minter"] } })).status, 201);
    assert.equal((await s.call("POST", "/v1/tokens", { token, body: { name: "x", roles: ["reader"] } })).status, 403);
    assert.equal((await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "x", roles: ["nosuchrole"] } })).status, 400);

    const revoke = await s.call("DELETE", `/v1/tokens/${created.json.id}`, { token: s.rootToken });
    assert.equal(revoke.status, 200);
    const after = await s.call("GET", "/v1/auth/self", { token });
    assert.equal(after.status, 401);
    assert.match(after.json.error.message, /revoked/);
    assert.equal((await s.call("DELETE", `/v1/tokens/${created.json.id}`, { token: s.rootToken })).status, 404);
  });

  test("JWT: a valid one is accepted with its roles; none, expired, wrong aud/iss/key are 401", async (t) => {
    const s = await startTestServer(t, JWT_CONFIG);
    await put(s, s.rootToken, "app/k", "jwt-visible");
    const good = await jwt({ groups: ["reader"] });
    const self = await s.call("GET", "/v1/auth/self", { token: good });
    assert.equal(self.status, 200);
    assert.deepEqual(self.json, { subject: "jwt:alice@example.com", kind: "jwt", roles: ["reader"], expiresAt: self.json.expiresAt });
    assert.equal((await s.call("GET", "/v1/secrets/app/k", { token: good })).json.value, "jwt-visible");

    const now = Math.floor(Date.now() / 1000);
    const bad: Record<string, string> = {
      "alg none": unsignedJwt({ sub: "alice", iss: "https://idp.test", aud: "coffer", exp: now + 300, groups: ["reader"] }),
      expired: await jwt({ groups: ["reader"] }, { exp: now - 120 }),
      "wrong aud": await jwt({ groups: ["reader"] }, { aud: "someone-else" }),
      "wrong iss": await jwt({ groups: ["reader"] }, { iss: "https://evil.test" }),
      "wrong key": await jwt({ groups: ["reader"] }, { secret: "another-secret-that-is-long-enough-000" }),
    };
    const { privateKey } = await generateKeyPair("ES256");
    bad["another algorithm"] = await new SignJWT({ groups: ["reader"] }).setProtectedHeader({ alg: "ES256" }).setSubject("a")
      .setIssuer("https://idp.test").setAudience("coffer").setExpirationTime("5m").sign(privateKey);
    for (const [why, token] of Object.entries(bad)) {
      const r = await s.call("GET", "/v1/secrets/app/k", { token });
      assert.equal(r.status, 401, why);
      assert.equal(r.json.error.code, "E_UNAUTHENTICATED", why);
      assert.ok(!r.text.includes(token), why);
    }
  });

  test("a token ttl of 2w is accepted like --rotate-every 2w (the one duration grammar)", async (t) => {
    const s = await startTestServer(t);
    const twoWeeks = 14 * 86_400_000;
    const before = Date.now();
    const created = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "fortnight", roles: ["reader"], ttl: "2w" } });
    assert.equal(created.status, 201, created.text);
    const expires = Date.parse(created.json.expiresAt);
    assert.ok(expires >= before + twoWeeks - 1000 && expires <= Date.now() + twoWeeks, created.json.expiresAt);
    const tooShort = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "blink", roles: ["reader"], ttl: "500ms" } });
    assert.equal(tooShort.status, 400);
    assert.equal(tooShort.json.error.message, `invalid ttl "500ms": must be at least 1s`);
    const unknownUnit = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "y", roles: ["reader"], ttl: "1y" } });
    assert.equal(unknownUnit.status, 400);
    assert.match(unknownUnit.json.error.message, /^invalid ttl "1y": must be a number of seconds or a duration: a whole number with a unit ms, s, m, h, d or w/);
  });

  test("a huge token ttl or a JWT with exp 1e300 gets 400/401, never a 500", async (t) => {
    const s = await startTestServer(t, JWT_CONFIG);
    for (const ttl of [1e300, 9007199254740991, "99999999d", "999999999999s"]) {
      const r = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: `{"name":"big","roles":["reader"],"ttl":${JSON.stringify(ttl)}}` });
      assert.equal(r.status, 400, `ttl ${ttl}: ${r.text}`);
      assert.match(r.json.error.message, /invalid ttl/);
    }
    const forever = await jwt({ groups: ["reader"] }, { exp: 1e300 });
    const r = await s.call("GET", "/v1/auth/self", { token: forever });
    assert.equal(r.status, 401, r.text);
    assert.match(r.json.error.message, /jwt\.maxLifetime/);
    const twoDays = await jwt({ groups: ["reader"] }, { exp: "48h" });
    assert.equal((await s.call("GET", "/v1/auth/self", { token: twoDays })).status, 401, "longer than the default 24 h");
    assert.ok(!s.logs.some((l) => /"level":50/.test(l)), "nothing was logged as a server failure");
  });

  test("dev-login is 404 unless devLogin is on", async (t) => {
    const s = await startTestServer(t);
    assert.equal((await s.call("POST", "/dev-login", { body: { roles: ["reader"] } })).status, 404);
    const dev = await startTestServer(t, `${TEST_ROLES}\ndevLogin: true\n`);
    const r = await dev.call("POST", "/dev-login", { body: { subject: "me", roles: ["reader"] } });
    assert.equal(r.status, 201);
    assert.equal((await dev.call("GET", "/v1/auth/self", { token: r.json.token })).json.roles[0], "reader");
    assert.equal((await dev.call("POST", "/dev-login", { body: { roles: ["root"] } })).status, 400);
  });

  test("the docs past the rate limit answer 429, not a 500 with a stack in the log", async (t) => {
    const s = await startTestServer(t, `${TEST_ROLES}\nrateLimit: { requests: 100, window: 1m, ipRequests: 3 }\n`);
    const codes: number[] = [];
    for (const path of ["/docs", "/docs/json", "/docs/static/index.html", "/docs", "/docs/json"]) {
      const r = await s.call("GET", path);
      codes.push(r.status);
      if (r.status === 429) {
        assert.equal(r.json.error.code, "E_RATE_LIMITED", path);
        assert.ok(Number(r.headers.get("retry-after")) >= 1, path);
      }
    }
    assert.deepEqual(codes.slice(3), [429, 429]);
    assert.ok(codes.every((c) => c < 500), codes.join(" "));
    assert.ok(!s.logs.some((l) => /"level":50|"stack"/.test(l)), "no failure was logged");
  });

  test("request lines are not logged at the default level", async (t) => {
    const s = await startTestServer(t);
    assert.equal(s.config.log.level, "info");
    const reader = await s.token(["reader"]);
    await s.call("GET", "/v1/secrets?prefix=app/", { token: reader });
    await s.call("GET", "/v1/secrets/app/missing", { token: reader });
    await s.call("GET", "/no/such/route");
    assert.deepEqual(s.logs.filter((l) => /"req"|"res"|"url"|incoming request|request completed/.test(l)), []);
  });

  test("log.level: debug logs each request, with its query string redacted", async (t) => {
    const s = await startTestServer(t, `${TEST_ROLES}\nlog: { level: debug }\n`);
    const reader = await s.token(["reader"]);
    const before = s.logs.length;
    await s.call("GET", "/v1/secrets?prefix=app/", { token: reader });
    await s.call("GET", "/v1/secrets/app/missing", { token: reader });
    const lines = s.logs.slice(before).map((l) => JSON.parse(l) as { msg: string; req?: { url?: string }; res?: { statusCode?: number } });
    const incoming = lines.filter((l) => l.msg === "incoming request").map((l) => l.req?.url);
    assert.deepEqual(incoming, ["/v1/secrets?[redacted]", "/v1/secrets/app/missing"]);
    const completed = lines.filter((l) => l.msg === "request completed").map((l) => l.res?.statusCode);
    assert.deepEqual(completed, [200, 404]);
    assert.ok(!s.logs.some((l) => l.includes("prefix=app")), "no query string in the log");
  });

  test("a token in a query string never reaches the log", async (t) => {
    const s = await startTestServer(t, `${TEST_ROLES}\nlog: { level: debug }\n`);
    const reader = await s.token(["reader"]);
    await s.call("GET", `/v1/secrets?token=${reader}&prefix=app/`, { token: reader });
    await s.call("GET", `/v1/secrets/app/missing?token=${reader}`, { token: reader });
    await s.call("GET", `/no/such/route?access_token=${reader}`);
    const logged = s.logs.filter((l) => l.includes('"url"'));
    assert.ok(logged.length >= 3, `the requests were logged: ${s.logs.length} lines`);
    for (const line of s.logs) assert.ok(!line.includes(reader.slice(4)), `the log carries the token: ${line}`);
    assert.ok(logged.some((l) => l.includes('"url":"/v1/secrets?[redacted]"')), logged.join("\n"));
  });

  test("rate limits: 429 with Retry-After past the subject's limit, and per IP before authentication", async (t) => {
    const s = await startTestServer(t, `${TEST_ROLES}\nrateLimit: { requests: 5, window: 1m, ipRequests: 1000 }\n`);
    const reader = await s.token(["reader"]);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await s.call("GET", "/v1/secrets", { token: reader })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    const limited = await s.call("GET", "/v1/secrets", { token: reader });
    assert.equal(limited.json.error.code, "E_RATE_LIMITED");
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    // another subject still gets through
    assert.equal((await s.call("GET", "/v1/secrets", { token: s.rootToken })).status, 200);

    const ip = await startTestServer(t, `${TEST_ROLES}\nrateLimit: { requests: 100, window: 1m, ipRequests: 4 }\n`);
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await ip.call("GET", "/v1/secrets", { token: "cof_guess" })).status);
    assert.deepEqual(codes, [401, 401, 401, 401, 429, 429]);
  });

  test("bad input: 400 naming the rule, traversal refused, 413 past the body limit, and the server stays up", async (t) => {
    const s = await startTestServer(t, `${TEST_ROLES}\nlimits: { bodyBytes: 4096, valueBytes: 1024 }\n`);
    const root = s.rootToken;
    const cases: [string, string, unknown, number, RegExp][] = [
      ["PUT", "/v1/secrets/app/bad name", { value: "x" }, 400, /invalid secret name/],
      ["PUT", "/v1/secrets/app%2F..%2Fx", { value: "x" }, 400, /percent-encoded/],
      ["GET", "/v1/secrets//etc/passwd", undefined, 400, /invalid secret name/],
      ["PUT", "/v1/secrets/app/x", { valu: "typo" }, 400, /invalid request/],
      ["PUT", "/v1/secrets/app/x", { value: "x", extra: 1 }, 400, /invalid request/],
      ["PUT", "/v1/secrets/app/x", { value: 42 }, 400, /invalid request/],
      ["PUT", "/v1/secrets/app/x", { value: "x".repeat(2000) }, 400, /over the limit of 1024 bytes/],
      ["PUT", "/v1/secrets/app/x", "{not json", 400, /not valid JSON/],
      ["PUT", "/v1/secrets/app/x", { value: "x".repeat(5000) }, 413, /larger than the server's limit/],
      ["PUT", "/v1/secrets/app/versions", { value: "x" }, 400, /reserved/],
      ["GET", "/v1/secrets/app/x?version=0", undefined, 400, /invalid request/],
      ["GET", "/v1/secrets/app/x?version=abc", undefined, 400, /invalid request/],
      ["POST", "/v1/tokens", { name: "../x", roles: ["reader"] }, 400, /invalid token name/],
      ["POST", "/v1/tokens", { name: "x", roles: ["reader"], ttl: "forever" }, 400, /invalid ttl/],
      ["GET", "/v1/audit?since=yesterday", undefined, 400, /invalid request/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const r = await s.call(method, path, { token: root, ...(body !== undefined && { body }) });
      assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
      assert.match(r.json.error.message, message, `${method} ${path}`);
    }
    // fetch() resolves dot segments before sending; a raw request sends them as written.
    for (const raw of ["/v1/secrets/app/../etc/passwd", "/v1/secrets/./app/x", "/v1/secrets/app/x/..", "/v1/secrets/../secrets/app/x", "/v1/secrets/app/%2e%2e/x", "/v1/secrets/app/%2E%2E%2Fx"]) {
      const r = await rawRequest(s.url, "PUT", raw, root, JSON.stringify({ value: "x" }));
      assert.ok(r.status === 400 || r.status === 404, `${raw}: ${r.status} ${r.body}`);
      assert.match(r.body, /invalid secret name|no endpoint/, raw);
      assert.ok(!r.body.includes('"version"'), `${raw} wrote nothing`);
    }
    const wrongType = await fetch(`${s.url}/v1/secrets/app/x`, { method: "PUT", headers: { authorization: `Bearer ${root}`, "content-type": "text/plain" }, body: "x" });
    assert.equal(wrongType.status, 415, await wrongType.text());
    assert.equal((await s.call("GET", "/v1/sys/health")).status, 200);
    assert.equal((await s.call("GET", "/v1/secrets?prefix=app/", { token: root })).json.secrets.length, 0, "nothing was written");
  });

  test("the audit shows reads, writes and denials with subject, request id and source, never values or tokens", async (t) => {
    const s = await startTestServer(t);
    const reader = await s.token(["reader"]);
    const auditor = await s.token(["auditor"]);
    await put(s, s.rootToken, "app/audited", "value-that-must-not-leak");
    await s.call("GET", "/v1/secrets/app/audited", { token: reader });
    await s.call("GET", "/v1/secrets/other/x", { token: reader });
    await s.call("GET", "/v1/secrets/app/audited", { token: "cof_nope" });
    assert.equal((await s.call("GET", "/v1/audit", { token: reader })).status, 403);
    const log = await s.call("GET", "/v1/audit?limit=1000", { token: auditor });
    assert.equal(log.status, 200);
    const records = log.json.records as { actor: string; action: string; name: string | null; detail: Record<string, unknown> }[];
    const read = records.find((r) => r.action === "secret.read" && r.detail.result === "ok");
    assert.ok(read);
    assert.equal(read.name, "app/audited");
    assert.match(read.actor, /^token:[0-9a-f]{16}$/);
    assert.match(String(read.detail.requestId), /^[0-9a-f-]{36}$/);
    assert.equal(read.detail.source, "127.0.0.1");
    assert.ok(records.some((r) => r.action === "secret.read" && r.detail.result === "denied" && r.name === "other/x"));
    assert.ok(records.some((r) => r.action === "auth.failed" && r.actor === "anonymous"));
    assert.ok(records.some((r) => r.action === "secret.write" && r.name === "app/audited"));
    assert.ok(records.some((r) => r.action === "token.create"));
    assert.ok(!log.text.includes("value-that-must-not-leak"));
    assert.ok(!log.text.includes(reader) && !log.text.includes(s.rootToken));
    const verify = await s.call("GET", "/v1/audit/verify", { token: auditor });
    assert.equal(verify.json.ok, true);
    const logs = s.logs.join("\n");
    assert.ok(!logs.includes("value-that-must-not-leak") && !logs.includes(reader) && !logs.includes(s.rootToken), "the log holds no value or token");
  });

  test("metrics: Prometheus text behind sys:metrics; OpenAPI at /docs/json and the UI at /docs", async (t) => {
    const s = await startTestServer(t, `${TEST_ROLES}\nrateLimit: { requests: 2, window: 1m }\n`);
    const reader = await s.token(["reader"]);
    const monitor = await s.token(["monitor"]);
    await s.call("GET", "/v1/secrets/app/x", { token: "cof_bad" });
    await s.call("GET", "/v1/secrets/other/x", { token: reader });
    for (let i = 0; i < 3; i++) await s.call("GET", "/v1/secrets", { token: reader });
    assert.equal((await s.call("GET", "/metrics")).status, 401);
    assert.equal((await s.call("GET", "/metrics", { token: reader })).status, 403);
    const m = await s.call("GET", "/metrics", { token: monitor });
    assert.equal(m.status, 200);
    assert.match(m.headers.get("content-type") ?? "", /text\/plain/);
    assert.match(m.text, /coffer_http_requests_total\{method="GET",route="\/v1\/secrets\/\*",status="403"\} 1/);
    assert.match(m.text, /coffer_http_request_duration_seconds_bucket/);
    assert.match(m.text, /coffer_auth_failures_total\{reason="malformed"\} 1/);
    assert.match(m.text, /coffer_denials_total\{action="secret.read"\} 1/);
    assert.match(m.text, /coffer_rate_limited_total\{scope="subject"\} \d/);
    assert.ok(!m.text.includes("other/x"), "metrics never carry secret names");

    const spec = await s.call("GET", "/docs/json");
    assert.equal(spec.status, 200);
    assert.match(spec.json.openapi, /^3\./);
    for (const path of ["/v1/secrets", "/v1/tokens", "/v1/audit", "/v1/sys/health"]) assert.ok(spec.json.paths[path], path);
    const ui = await fetch(`${s.url}/docs`, { redirect: "follow" });
    assert.equal(ui.status, 200);
    assert.match(await ui.text(), /swagger/i);
  });
});
