/** The root token: only root revokes it, and `replaceRootToken` (coffer server root-token) is the way back. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { isCofferError } from "../../src/errors.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { initServer, replaceRootToken, SQLITE_FILE, startServer } from "../../src/server/server.ts";
import { openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import { tempDir } from "../helpers.ts";
import { fetchReply, startTestServer, TEST_ROLES } from "./harness.ts";

const ADMIN = `${TEST_ROLES}  tokenadmin: [ { path: "sys:tokens", capabilities: [read, write, delete] } ]\n`;

test("only root can revoke the root token", async (t) => {
  const s = await startTestServer(t, ADMIN);
  const admin = await s.token(["tokenadmin"]);
  const tokens = await s.call("GET", "/v1/tokens", { token: s.rootToken });
  const root = (tokens.json.tokens as { id: string; roles: string[] }[]).find((x) => x.roles.includes("root"))!;
  const refused = await s.call("DELETE", `/v1/tokens/${root.id}`, { token: admin });
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error.message, "only root may revoke a root token");
  assert.equal((await s.call("GET", "/v1/auth/self", { token: s.rootToken })).status, 200, "the root token still works");
  const log = await s.call("GET", "/v1/audit?limit=1000", { token: s.rootToken });
  assert.ok((log.json.records as { action: string; detail: { result?: string; id?: string } }[]).some((r) => r.action === "token.revoke" && r.detail.result === "denied" && r.detail.id === root.id));
  // the admin still revokes other tokens, and root may revoke a root token
  const other = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "other", roles: ["reader"] } });
  assert.equal((await s.call("DELETE", `/v1/tokens/${other.json.id}`, { token: admin })).status, 200);
  const second = await s.call("POST", "/v1/tokens", { token: s.rootToken, body: { name: "root2", roles: ["root"] } });
  assert.equal((await s.call("DELETE", `/v1/tokens/${second.json.id}`, { token: admin })).status, 403);
  assert.equal((await s.call("DELETE", `/v1/tokens/${second.json.id}`, { token: s.rootToken })).status, 200);
});

test("a lost root token is replaced offline: the old ones are revoked, the new one works, the audit has both", async (t) => {
  const dataDir = join(tempDir(t), "data");
  const config = parseServerConfig("", "none.yml", {}, { listen: "127.0.0.1:0" });
  const init = await initServer(dataDir, config);
  const result = await replaceRootToken(dataDir, config);
  assert.match(result.rootToken, /^cof_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(result.revoked, [init.rootTokenId]);
  const server = await startServer({ dataDir, config, logger: false });
  t.after(() => server.close());
  const self = (token: string) => fetchReply(`${server.url}/v1/auth/self`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await self(init.rootToken)).status, 401, "the old root token is revoked");
  const now = await self(result.rootToken);
  assert.equal(now.status, 200);
  assert.deepEqual(now.json.roles, ["root"]);
  const log = await fetchReply(`${server.url}/v1/audit?limit=1000`, { headers: { authorization: `Bearer ${result.rootToken}` } });
  const byTool = (log.json.records as { actor: string; action: string }[]).filter((r) => r.actor === "server-root-token").map((r) => r.action);
  assert.deepEqual(byTool, ["token.create", "token.revoke"]);
  const verify = await fetchReply(`${server.url}/v1/audit/verify`, { headers: { authorization: `Bearer ${result.rootToken}` } });
  assert.equal(verify.json.ok, true);
});

test("root-token with another data dir's master key changes nothing", async (t) => {
  const base = tempDir(t);
  const config = parseServerConfig("", "none.yml", {}, { listen: "127.0.0.1:0" });
  await initServer(join(base, "a"), config);
  await initServer(join(base, "b"), config);
  const { copyFileSync } = await import("node:fs");
  copyFileSync(join(base, "b", "master.key"), join(base, "a", "master.key"));
  await assert.rejects(replaceRootToken(join(base, "a"), config), (err: unknown) => isCofferError(err, "E_DECRYPT"));
  const storage = await openSqliteStorage(join(base, "a", SQLITE_FILE));
  t.after(() => storage.close());
  assert.equal((await storage.listTokens()).length, 1, "no token was made");
  await assert.rejects(replaceRootToken(join(base, "missing"), config), (err: unknown) => isCofferError(err, "E_NOT_INITIALIZED"));
});
