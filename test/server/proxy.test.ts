/**
 * Client addresses behind reverse proxies: X-Forwarded-For is believed for exactly the
 * configured hops or proxies, the client is the first untrusted address from the right, and
 * anything that is not an IP address gives way to the socket's peer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { clientAddress, trustProxyOption } from "../../src/server/proxy.ts";
import { startTestServer, TEST_ROLES, type TestServer } from "./harness.ts";

/** Reads a secret that does not exist (an audited 404) with X-Forwarded-For, and returns the source the audit recorded. */
async function auditedSource(s: TestServer, xff: string): Promise<unknown> {
  const r = await s.call("GET", "/v1/secrets/app/nothing", { token: s.rootToken, headers: { "x-forwarded-for": xff } });
  assert.equal(r.status, 404);
  const log = await s.call("GET", "/v1/audit?limit=1000", { token: s.rootToken });
  const records = (log.json.records as { action: string; detail: { source?: unknown } }[]).filter((x) => x.action === "secret.read");
  return records.at(-1)?.detail.source;
}

test("a client cannot choose its own address with X-Forwarded-For", async (t) => {
  const s = await startTestServer(t, `${TEST_ROLES}\nbehindProxy: true\nrateLimit: { requests: 1000, window: 1m, ipRequests: 5 }\n`);
  // Through the proxy, the client's own header comes first and the proxy appends the real address.
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await s.call("GET", "/v1/sys/health", { headers: { "x-forwarded-for": `198.51.100.${i}, 203.0.113.7` } });
    statuses.push(r.status);
  }
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429], "every request counts against 203.0.113.7");
  // Another real client still gets through.
  assert.equal((await s.call("GET", "/v1/sys/health", { headers: { "x-forwarded-for": "203.0.113.8" } })).status, 200);
});

test("two IPv6 addresses in one /64 share a per-IP limit; another /64 does not", async (t) => {
  const s = await startTestServer(t, `${TEST_ROLES}\nbehindProxy: true\nrateLimit: { requests: 1000, window: 1m, ipRequests: 3 }\n`);
  const health = async (xff: string): Promise<number> => (await s.call("GET", "/v1/sys/health", { headers: { "x-forwarded-for": xff } })).status;
  // One host hands itself a fresh address of its /64 for each request, in any spelling.
  const sameNet = ["2001:db8:1:2::a", "2001:db8:1:2:ffff:ffff:ffff:1", "2001:0DB8:0001:0002:0000:0000:0000:0b", "2001:db8:1:2::c"];
  const statuses: number[] = [];
  for (const address of sameNet) statuses.push(await health(address));
  assert.deepEqual(statuses, [200, 200, 200, 429], "the four addresses of 2001:db8:1:2::/64 count as one client");
  assert.equal(await health("2001:db8:1:3::a"), 200, "the next /64 is another client");
  assert.equal(await health("203.0.113.20"), 200, "IPv4 stays per address");
  // The audit keeps the whole address, not its /64.
  assert.equal(await auditedSource(s, "2001:db8:1:4::abcd"), "2001:db8:1:4::abcd");
});

test("a client cannot put a forged address in the audit log through the proxy", async (t) => {
  const s = await startTestServer(t, `${TEST_ROLES}\nbehindProxy: true\n`);
  assert.equal(await auditedSource(s, "10.66.66.66, 203.0.113.9"), "203.0.113.9");
  assert.equal(await auditedSource(s, "2001:db8::1"), "2001:db8::1");
});

test("an X-Forwarded-For entry that is not an IP address (3,000 characters) never becomes the source", async (t) => {
  const s = await startTestServer(t, `${TEST_ROLES}\nbehindProxy: true\n`);
  for (const junk of ["x".repeat(3000), "not-an-ip", "203.0.113.9; DROP", "999.1.1.1"]) {
    assert.equal(await auditedSource(s, junk), "127.0.0.1", junk.slice(0, 20));
  }
});

test("behindProxy: 2 trusts two hops and no more", async (t) => {
  const s = await startTestServer(t, `${TEST_ROLES}\nbehindProxy: 2\n`);
  // forged by the client, the client as the outer proxy saw it, the outer proxy as the inner one saw it
  assert.equal(await auditedSource(s, "10.66.66.66, 198.51.100.2, 10.0.0.1"), "198.51.100.2");
});

test("trustedProxies: only the listed proxies' X-Forwarded-For is believed", async (t) => {
  const trusted = await startTestServer(t, `${TEST_ROLES}\ntrustedProxies: [127.0.0.0/8, 10.0.0.0/8]\n`);
  assert.equal(await auditedSource(trusted, "10.66.66.66, 198.51.100.3, 10.0.0.1"), "198.51.100.3", "10.0.0.1 is a listed proxy, 198.51.100.3 is not");
  const other = await startTestServer(t, `${TEST_ROLES}\ntrustedProxies: [10.0.0.1]\n`);
  assert.equal(await auditedSource(other, "198.51.100.3"), "127.0.0.1", "the socket's peer is not a listed proxy: its header is ignored");
});

test("without behindProxy, X-Forwarded-For is ignored", async (t) => {
  const s = await startTestServer(t);
  assert.equal(await auditedSource(s, "198.51.100.4"), "127.0.0.1");
});

test("trustProxyOption and clientAddress", () => {
  assert.equal(trustProxyOption({ behindProxy: 0 }), false);
  const two = trustProxyOption({ behindProxy: 2 });
  assert.equal(typeof two, "function");
  if (typeof two === "function") assert.deepEqual([0, 1, 2, 3].map((hop) => two("1.2.3.4", hop)), [true, true, false, false]);
  assert.deepEqual(trustProxyOption({ behindProxy: 0, trustedProxies: ["10.0.0.0/8"] }), ["10.0.0.0/8"]);
  const socket = { remoteAddress: "192.0.2.1" };
  assert.equal(clientAddress({ ip: "203.0.113.1", raw: { socket } }), "203.0.113.1");
  assert.equal(clientAddress({ ip: "::ffff:203.0.113.1", raw: { socket } }), "::ffff:203.0.113.1");
  assert.equal(clientAddress({ ip: "a".repeat(3000), raw: { socket } }), "192.0.2.1");
  assert.equal(clientAddress({ ip: "", raw: { socket } }), "192.0.2.1");
});
