/**
 * The Vault KV v2-compatible API (docs/design.md §13) with raw requests: Vault's shapes, CAS,
 * merge patch, lists by LIST (on a kept-alive socket, over TLS too) and by ?list=true, the 403
 * shape, namespaces refused, lookup-self, health, and the same policies and audit as /v1/secrets.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startTestServer, TEST_ROLES, type TestServer } from "./harness.ts";
import { makeCa, makeCert } from "./certs.ts";
import { tempDir } from "../helpers.ts";
import { initServer, startServer } from "../../src/server/server.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { mapToValue, valueToMap } from "../../src/core/kv-map.ts";

const VAULT = `${TEST_ROLES}\nvault: { mount: secret }\n`;

/** A Vault-style call: the token in X-Vault-Token. */
function vault(s: TestServer, method: string, path: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) {
  return s.call(method, path, { headers: { ...(token !== undefined && { "x-vault-token": token }), ...headers }, ...(body !== undefined && { body }) });
}

test("the map ↔ bytes rule round-trips every map, and plain values stay plain", () => {
  for (const m of [{ a: "1", b: "2" }, { value: "x" }, { value: "{\"a\":\"b\"}" }, { value: 5 }, { n: { deep: [1, null, "z"] } }, { value_base64: "aGk=" }, { value_base64: Buffer.from([0xff, 0xfe]).toString("base64") }, {}]) {
    const { bytes } = mapToValue(m);
    assert.deepEqual(valueToMap(bytes), m);
  }
  assert.deepEqual(mapToValue({ value: "plain text" }), { bytes: Buffer.from("plain text"), plain: true });
  assert.deepEqual(mapToValue({ value_base64: "//4=" }).bytes, Buffer.from([0xff, 0xfe]));
  assert.deepEqual(valueToMap(Buffer.from("hello")), { value: "hello" });
  assert.deepEqual(valueToMap(Buffer.from("{ \"a\": \"b\" }")), { value: "{ \"a\": \"b\" }" }); // not canonical: plain text
});

test("config: the mount may not shadow coffer's own routes", () => {
  assert.throws(() => parseServerConfig("vault: { mount: secrets }\n", "v.yml", {}), /must not shadow coffer's own routes/);
  assert.throws(() => parseServerConfig("", undefined, { COFFER_VAULT_MOUNT: "sys" }), /COFFER_VAULT_MOUNT: .*must not shadow/);
  assert.throws(() => parseServerConfig("vault: { mount: \"a/b\" }\n", "v.yml", {}), /one path segment/);
  assert.equal(parseServerConfig("vault: { mount: kv }\n", "v.yml", {}).vault?.mount, "kv");
  assert.equal(parseServerConfig("", undefined, {}).vault, undefined);
});

test("off by default: no Vault routes", async (t) => {
  const s = await startTestServer(t);
  const r = await vault(s, "GET", "/v1/secret/data/app/x", s.rootToken);
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, "E_NOT_FOUND");
});

test("write, read, versions, CAS, patch, metadata, list, purge through the Vault routes", async (t) => {
  const s = await startTestServer(t, VAULT);
  const root = s.rootToken;
  const w1 = await vault(s, "POST", "/v1/secret/data/app/db", root, { data: { user: "u", password: "p1" } });
  assert.equal(w1.status, 200, w1.text);
  assert.equal(w1.json.data.version, 1);
  assert.equal(w1.json.data.destroyed, false);
  const w2 = await vault(s, "PUT", "/v1/secret/data/app/db", root, { options: { cas: 1 }, data: { user: "u", password: "p2" } });
  assert.equal(w2.json.data.version, 2);
  const cas = await vault(s, "POST", "/v1/secret/data/app/db", root, { options: { cas: 1 }, data: { user: "x" } });
  assert.equal(cas.status, 400);
  assert.deepEqual(cas.json, { errors: ["check-and-set parameter did not match the current version"] });
  const cas0 = await vault(s, "POST", "/v1/secret/data/app/db", root, { options: { cas: 0 }, data: { user: "x" } });
  assert.equal(cas0.status, 400);

  const r = await vault(s, "GET", "/v1/secret/data/app/db", root);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.data.data, { user: "u", password: "p2" });
  assert.equal(r.json.data.metadata.version, 2);
  assert.equal(r.json.data.metadata.deletion_time, "");
  const old = await vault(s, "GET", "/v1/secret/data/app/db?version=1", root);
  assert.deepEqual(old.json.data.data, { user: "u", password: "p1" });
  const none = await vault(s, "GET", "/v1/secret/data/app/nothing", root);
  assert.equal(none.status, 404);
  assert.deepEqual(none.json, { errors: [] });

  // PATCH: a JSON merge patch on the current map (null removes a key)
  const wrongType = await vault(s, "PATCH", "/v1/secret/data/app/db", root, { data: { password: "p3" } });
  assert.equal(wrongType.status, 415);
  const p = await vault(s, "PATCH", "/v1/secret/data/app/db", root, { data: { password: "p3", user: null, host: "h" } }, { "content-type": "application/merge-patch+json" });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.data.version, 3);
  assert.deepEqual((await vault(s, "GET", "/v1/secret/data/app/db", root)).json.data.data, { password: "p3", host: "h" });
  const pMissing = await vault(s, "PATCH", "/v1/secret/data/app/none", root, { data: { a: "b" } }, { "content-type": "application/merge-patch+json" });
  assert.equal(pMissing.status, 404);

  // coffer's own API sees the same secret: canonical JSON of the map, version for version
  const own = await s.call("GET", "/v1/secrets/app/db", { token: root });
  assert.equal(own.json.value, '{"host":"h","password":"p3"}');
  assert.equal(own.json.version, 3);
  // a plain coffer secret reads as {value}, and stays plain when written back that way
  await s.call("PUT", "/v1/secrets/app/plain", { token: root, body: { value: "hunter2" } });
  assert.deepEqual((await vault(s, "GET", "/v1/secret/data/app/plain", root)).json.data.data, { value: "hunter2" });
  await vault(s, "POST", "/v1/secret/data/app/plain", root, { data: { value: "hunter3" } });
  assert.equal((await s.call("GET", "/v1/secrets/app/plain", { token: root })).json.value, "hunter3");
  await s.call("PUT", "/v1/secrets/app/bytes", { token: root, body: { valueBase64: "//79" } });
  assert.deepEqual((await vault(s, "GET", "/v1/secret/data/app/bytes", root)).json.data.data, { value_base64: "//79" });

  const m = await vault(s, "GET", "/v1/secret/metadata/app/db", root);
  assert.equal(m.status, 200);
  assert.equal(m.json.data.current_version, 3);
  assert.equal(m.json.data.oldest_version, 1);
  assert.equal(m.json.data.max_versions, 0);
  assert.equal(m.json.data.cas_required, false);
  assert.deepEqual(Object.keys(m.json.data.versions), ["1", "2", "3"]);
  assert.equal(m.json.data.versions["1"].destroyed, false);

  await vault(s, "POST", "/v1/secret/data/app/sub/deep", root, { data: { a: "b" } });
  const l1 = await vault(s, "GET", "/v1/secret/metadata/app?list=true", root);
  assert.deepEqual(l1.json.data.keys, ["bytes", "db", "plain", "sub/"]);
  const l2 = await vault(s, "GET", "/v1/secret/metadata/?list=1", root);
  assert.deepEqual(l2.json.data.keys, ["app/"]);
  assert.equal((await vault(s, "GET", "/v1/secret/metadata/nothing/?list=true", root)).status, 404);

  // a secret deleted with coffer's own API: Vault's 404 for a soft-deleted latest version, with its metadata
  await s.call("DELETE", "/v1/secrets/app/plain", { token: root });
  const gone = await vault(s, "GET", "/v1/secret/data/app/plain", root);
  assert.equal(gone.status, 404);
  assert.equal(gone.json.data.data, null);
  assert.equal(gone.json.data.metadata.version, 2);
  assert.notEqual(gone.json.data.metadata.deletion_time, "");
  assert.deepEqual((await vault(s, "GET", "/v1/secret/data/app/plain?version=1", root)).json.data.data, { value: "hunter2" });

  // Per-version operations, through coffer's own (capability delete, their own audit actions).
  const latest = (await vault(s, "GET", "/v1/secret/metadata/app/db", root)).json.data.current_version as number;
  assert.equal((await vault(s, "DELETE", "/v1/secret/data/app/db", root)).status, 204);
  const soft = await vault(s, "GET", "/v1/secret/data/app/db", root);
  assert.equal(soft.status, 404);
  assert.equal(soft.json.data.metadata.version, latest);
  assert.notEqual(soft.json.data.metadata.deletion_time, "");
  assert.equal(soft.json.data.metadata.destroyed, false);
  assert.equal((await vault(s, "POST", "/v1/secret/undelete/app/db", root, { versions: [latest] })).status, 204);
  assert.equal((await vault(s, "GET", "/v1/secret/data/app/db", root)).status, 200);
  assert.equal((await vault(s, "POST", "/v1/secret/delete/app/db", root, { versions: [1] })).status, 204);
  assert.equal((await vault(s, "GET", "/v1/secret/data/app/db?version=1", root)).status, 404);
  assert.equal((await vault(s, "PUT", "/v1/secret/destroy/app/db", root, { versions: [1] })).status, 204);
  const destroyed = (await vault(s, "GET", "/v1/secret/metadata/app/db", root)).json.data.versions["1"];
  assert.equal(destroyed.destroyed, true);
  assert.equal((await vault(s, "POST", "/v1/secret/undelete/app/db", root, { versions: [1] })).status, 204, "undelete of a destroyed version: Vault's no-op");
  assert.equal((await vault(s, "GET", "/v1/secret/data/app/db?version=1", root)).json.data.metadata.destroyed, true);
  assert.equal((await vault(s, "POST", "/v1/secret/delete/app/db", root, {})).status, 400);
  assert.equal((await vault(s, "POST", "/v1/secret/delete/app/db", root, { versions: [99] })).status, 400);
  assert.equal((await vault(s, "POST", "/v1/secret/delete/app/none", root, { versions: [1] })).status, 404);
  const audit = await s.call("GET", "/v1/audit?prefix=app/db", { token: root });
  const actions = (audit.json.records as { action: string }[]).map((r) => r.action);
  for (const a of ["secret.delete-version", "secret.undelete", "secret.destroy"]) assert.ok(actions.includes(a), a);

  // DELETE metadata: every version gone (coffer's purge)
  const del = await vault(s, "DELETE", "/v1/secret/metadata/app/sub/deep", root);
  assert.equal(del.status, 204);
  assert.equal((await s.call("GET", "/v1/secrets/app/sub/deep/versions", { token: root })).status, 404);
});

test("a token that may read app/* gets Vault's 403 for ops/x, and its reads and denials are on the audit chain", async (t) => {
  const s = await startTestServer(t, VAULT);
  await vault(s, "POST", "/v1/secret/data/app/x", s.rootToken, { data: { k: "v" } });
  await vault(s, "POST", "/v1/secret/data/ops/x", s.rootToken, { data: { k: "v" } });
  const reader = await s.token(["reader"]);
  assert.equal((await vault(s, "GET", "/v1/secret/data/app/x", reader)).status, 200);
  const denied = await vault(s, "GET", "/v1/secret/data/ops/x", reader);
  assert.equal(denied.status, 403);
  assert.deepEqual(denied.json, { errors: ["permission denied"] });
  assert.deepEqual((await vault(s, "POST", "/v1/secret/data/app/x", reader, { data: { k: "w" } })).json, { errors: ["permission denied"] });
  assert.equal((await vault(s, "DELETE", "/v1/secret/metadata/app/x", reader)).status, 403);
  // Authorization: Bearer works as well; no token or a bad one: the same 403
  assert.equal((await s.call("GET", "/v1/secret/data/app/x", { token: reader })).status, 200);
  assert.deepEqual((await vault(s, "GET", "/v1/secret/data/app/x", undefined)).json, { errors: ["permission denied"] });
  assert.equal((await vault(s, "GET", "/v1/secret/data/app/x", "cof_bad")).status, 403);
  // the list shows only what the token may list
  assert.deepEqual((await vault(s, "GET", "/v1/secret/metadata/app?list=true", reader)).json.data.keys, ["x"]);
  assert.equal((await vault(s, "GET", "/v1/secret/metadata/ops?list=true", reader)).status, 403);

  const audit = await s.call("GET", "/v1/audit?limit=100", { token: s.rootToken });
  const records = audit.json.records as { action: string; name: string | null; detail: { result: string; via?: string } }[];
  assert.ok(records.some((r) => r.action === "secret.read" && r.name === "app/x" && r.detail.result === "ok" && r.detail.via === "vault"));
  assert.ok(records.some((r) => r.action === "secret.read" && r.name === "ops/x" && r.detail.result === "denied"));
  assert.ok(records.some((r) => r.action === "auth.failed" && r.detail.via === "vault"));
  assert.equal((await s.call("GET", "/v1/audit/verify", { token: s.rootToken })).json.ok, true);
});

test("X-Vault-Namespace is refused; lookup-self never returns the token; health has Vault's fields", async (t) => {
  const s = await startTestServer(t, VAULT);
  const ns = await vault(s, "GET", "/v1/secret/data/app/x", s.rootToken, undefined, { "x-vault-namespace": "team-a" });
  assert.equal(ns.status, 400);
  assert.match(ns.json.errors[0], /no Vault namespaces/);
  assert.equal((await vault(s, "GET", "/v1/secret/data/app/x", s.rootToken, undefined, { "x-vault-namespace": "" })).status, 404);

  const reader = await s.token(["reader"], "ci");
  const me = await vault(s, "GET", "/v1/auth/token/lookup-self", reader);
  assert.equal(me.status, 200);
  assert.deepEqual(me.json.data.policies, ["reader"]);
  assert.equal(me.json.data.display_name, "token-ci");
  assert.match(me.json.data.accessor, /^[0-9a-f]{16}$/);
  assert.equal(me.json.data.ttl, 0);
  assert.equal(me.json.data.expire_time, null);
  assert.ok(!me.text.includes(reader));

  const h = await s.call("GET", "/v1/sys/health");
  assert.equal(h.status, 200);
  assert.equal(h.json.status, "ok");
  assert.equal(h.json.initialized, true);
  assert.equal(h.json.sealed, false);
  assert.equal(h.json.standby, false);
  assert.equal(typeof h.json.server_time_utc, "number");
  assert.equal(typeof h.json.version, "string");
});

/** Sends raw HTTP/1.1 requests on one socket, one after another, and returns each answer's status line and body. */
async function onOneSocket(socket: Socket, requests: string[]): Promise<{ status: number; body: string }[]> {
  const out: { status: number; body: string }[] = [];
  let buf = "";
  let waiting: (() => void) | undefined;
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => {
    buf += d;
    waiting?.();
  });
  for (const req of requests) {
    socket.write(req);
    for (;;) {
      const head = buf.indexOf("\r\n\r\n");
      const len = head === -1 ? undefined : /content-length: (\d+)/i.exec(buf.slice(0, head));
      if (head !== -1 && len !== undefined && len !== null && buf.length >= head + 4 + Number(len[1])) {
        const end = head + 4 + Number(len[1]);
        out.push({ status: Number(buf.slice(9, 12)), body: buf.slice(head + 4, end) });
        buf = buf.slice(end);
        break;
      }
      await new Promise<void>((resolve) => (waiting = resolve));
    }
  }
  socket.destroy();
  return out;
}

function rawRequests(token: string): string[] {
  const h = `Host: x\r\nX-Vault-Token: ${token}\r\n`;
  return [
    `GET /v1/secret/data/app/a HTTP/1.1\r\n${h}\r\n`,
    `LIST /v1/secret/metadata/app HTTP/1.1\r\n${h}\r\n`,
    `GET /v1/secret/data/app/b HTTP/1.1\r\n${h}\r\n`,
    `LIST /v1/secret/metadata/ HTTP/1.1\r\n${h}\r\n`,
  ];
}

test("LIST on a kept-alive connection: a GET, then a LIST, then a GET, on one socket", async (t) => {
  const s = await startTestServer(t, VAULT);
  await vault(s, "POST", "/v1/secret/data/app/a", s.rootToken, { data: { a: "1" } });
  await vault(s, "POST", "/v1/secret/data/app/b", s.rootToken, { data: { b: "2" } });
  const { port } = new URL(s.url);
  const socket = netConnect(Number(port), "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  const answers = await onOneSocket(socket, rawRequests(s.rootToken));
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200]);
  assert.deepEqual(JSON.parse(answers[0]!.body).data.data, { a: "1" });
  assert.deepEqual(JSON.parse(answers[1]!.body).data.keys, ["a", "b"]);
  assert.deepEqual(JSON.parse(answers[2]!.body).data.data, { b: "2" });
  assert.deepEqual(JSON.parse(answers[3]!.body).data.keys, ["app/"]);
  // another unknown method is still refused as before
  const bad = netConnect(Number(port), "127.0.0.1");
  await new Promise((resolve) => bad.once("connect", resolve));
  const [refused] = await onOneSocket(bad, ["FROB /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n"]);
  assert.equal(refused!.status, 400);
});

test("LIST over TLS on a kept-alive connection", async (t) => {
  const dir = tempDir(t);
  const ca = makeCa(dir, "ca");
  const cert = makeCert(dir, ca, { cn: "coffer-server", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  const config = parseServerConfig(`${VAULT}tls: { cert: ${cert.cert}, key: ${cert.key} }\n`, "tls.yml", {}, { listen: "127.0.0.1:0" });
  const dataDir = join(dir, "data");
  const { rootToken } = await initServer(dataDir, config);
  const s = await startServer({ dataDir, config, logger: false });
  t.after(() => s.close());
  const port = Number(new URL(s.url).port);
  const write = (name: string) => new Promise<void>((resolve, reject) => {
    const socket = tlsConnect({ port, host: "127.0.0.1", ca: readFileSync(ca.cert) }, () => {
      const body = '{"data":{"k":"v"}}';
      const head = `POST /v1/secret/data/${name} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: ${rootToken}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
      onOneSocket(socket, [head + body]).then(() => resolve(), reject);
    });
  });
  await write("app/a");
  await write("app/b");
  const socket = tlsConnect({ port, host: "127.0.0.1", ca: readFileSync(ca.cert) });
  await new Promise((resolve) => socket.once("secureConnect", resolve));
  const answers = await onOneSocket(socket, rawRequests(rootToken));
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200]);
  assert.deepEqual(JSON.parse(answers[1]!.body).data.keys, ["a", "b"]);
  assert.deepEqual(JSON.parse(answers[3]!.body).data.keys, ["app/"]);
});

test("a Vault path cannot reach another secret or slip past the name rule (percent-encoding, dot segments)", async (t) => {
  const s = await startTestServer(t, VAULT);
  await vault(s, "POST", "/v1/secret/data/ops/x", s.rootToken, { data: { k: "v" } });
  const reader = await s.token(["reader"]);
  for (const path of ["/v1/secret/data/app/..%2Fops/x", "/v1/secret/data/app%2Fx"]) {
    const r = await vault(s, "GET", path, reader);
    assert.equal(r.status, 400, path);
    assert.match(r.json.errors[0], /percent-encoded characters are refused/);
  }
  // fetch normalises ../ and %2e%2e itself: send them raw, as a hostile client would
  const { port } = new URL(s.url);
  const socket = netConnect(Number(port), "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  const dots = await onOneSocket(socket, ["../", "%2e%2e/"].map((d) => `GET /v1/secret/data/app/${d}ops/x HTTP/1.1\r\nHost: x\r\nX-Vault-Token: ${reader}\r\n\r\n`));
  assert.deepEqual(dots.map((d) => d.status), [400, 400]);
  assert.ok(dots.every((d) => !d.body.includes("\"k\"")));
});

test("a Vault write cannot store more than limits.valueBytes, and a patch needs write (its read never leaves the server)", async (t) => {
  const s = await startTestServer(t, `${VAULT}limits: { valueBytes: 64 }\n`);
  const big = await vault(s, "POST", "/v1/secret/data/app/big", s.rootToken, { data: { v: "x".repeat(100) } });
  assert.equal(big.status, 400);
  assert.equal((await s.call("GET", "/v1/secrets/app/big", { token: s.rootToken })).status, 404);
  await vault(s, "POST", "/v1/secret/data/app/x", s.rootToken, { data: { k: "v" } });
  const reader = await s.token(["reader"]);
  const p = await vault(s, "PATCH", "/v1/secret/data/app/x", reader, { data: { k: "w" } }, { "content-type": "application/merge-patch+json" });
  assert.deepEqual([p.status, p.json], [403, { errors: ["permission denied"] }]);
  const deployer = await s.token(["deployer"]);
  const ok = await vault(s, "PATCH", "/v1/secret/data/app/x", deployer, { data: { k2: "w" } }, { "content-type": "application/merge-patch+json" });
  assert.equal(ok.status, 200);
  assert.ok(!ok.text.includes("\"v\""), "the patch answer is metadata, never the value");
});

test("the per-subject rate limit applies to the Vault routes, answered in Vault's shape with Retry-After", async (t) => {
  const s = await startTestServer(t, `${VAULT}rateLimit: { requests: 2, window: 1m }\n`);
  const statuses: number[] = [];
  let last: Awaited<ReturnType<typeof vault>> | undefined;
  for (let i = 0; i < 3; i++) {
    last = await vault(s, "GET", "/v1/secret/data/app/none", s.rootToken);
    statuses.push(last.status);
  }
  assert.deepEqual(statuses, [404, 404, 429]);
  assert.match(last!.json.errors[0], /too many requests/);
  assert.ok(Number(last!.headers.get("retry-after")) >= 1);
});
