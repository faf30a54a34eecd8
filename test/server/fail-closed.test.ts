import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { buildServer } from "../../src/server/app.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { readMasterKey } from "../../src/server/keys.ts";
import { initServer, MASTER_KEY_FILE, SQLITE_FILE, startServer } from "../../src/server/server.ts";
import { openSqliteStorage } from "../../src/storage/sqlite-async.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import { isCofferError } from "../../src/errors.ts";

test("fail closed: when the audit record cannot be written, a read answers 503 and returns no value", async (t) => {
  const dataDir = join(tempDir(t), "data");
  const config = parseServerConfig("", "none.yml", {}, { listen: "127.0.0.1:0" });
  const { rootToken } = await initServer(dataDir, config);
  const real = await openSqliteStorage(join(dataDir, SQLITE_FILE));
  t.after(() => real.close());
  let auditBroken = false;
  // Every method of the real storage, but appendAudit fails while auditBroken is set.
  const storage = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === "appendAudit") {
        return (entries: Parameters<ServerStorage["appendAudit"]>[0]) =>
          auditBroken ? Promise.reject(new Error("disk full")) : target.appendAudit(entries);
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const app = await buildServer({ config, storage, masterKey: readMasterKey(join(dataDir, MASTER_KEY_FILE)), logger: false, version: "test" });
  t.after(() => app.close());
  const auth = { authorization: `Bearer ${rootToken}` };
  const put = await app.inject({ method: "PUT", url: "/v1/secrets/app/k", headers: auth, payload: { value: "must-stay-inside" } });
  assert.equal(put.statusCode, 200);
  assert.equal(JSON.parse((await app.inject({ method: "GET", url: "/v1/secrets/app/k", headers: auth })).body).value, "must-stay-inside");

  auditBroken = true;
  const read = await app.inject({ method: "GET", url: "/v1/secrets/app/k", headers: auth });
  assert.equal(read.statusCode, 503);
  assert.equal(JSON.parse(read.body).error.code, "E_UNAVAILABLE");
  assert.ok(!read.body.includes("must-stay-inside"));
  const denied = await app.inject({ method: "GET", url: "/v1/secrets", headers: auth });
  assert.equal(denied.statusCode, 503, "a list is audited too");
  const health = await app.inject({ method: "GET", url: "/v1/sys/health" });
  assert.equal(health.statusCode, 200, "the server stays up");

  auditBroken = false;
  assert.equal((await app.inject({ method: "GET", url: "/v1/secrets/app/k", headers: auth })).statusCode, 200, "and recovers");
});

test("a server refuses to start with another data dir's master key", async (t) => {
  const dir = tempDir(t);
  const config = parseServerConfig("", "none.yml", {}, { listen: "127.0.0.1:0" });
  await initServer(join(dir, "a"), config);
  await initServer(join(dir, "b"), config);
  const { copyFileSync } = await import("node:fs");
  copyFileSync(join(dir, "b", MASTER_KEY_FILE), join(dir, "a", MASTER_KEY_FILE));
  await assert.rejects(startServer({ dataDir: join(dir, "a"), config, logger: false }), (err: unknown) => {
    assert.ok(isCofferError(err, "E_DECRYPT"));
    assert.match(err.message, /not the master key of this database/);
    return true;
  });
});

test("production guard: startServer refuses devLogin in production and names the key", async (t) => {
  const dataDir = join(tempDir(t), "data");
  const config = parseServerConfig("devLogin: true\n", "dev.yml", {}, { listen: "127.0.0.1:0", production: true });
  await initServer(dataDir, config);
  await assert.rejects(startServer({ dataDir, config, logger: false }), (err: unknown) => {
    assert.ok(isCofferError(err, "E_CONFIG"));
    assert.match(err.message, /refusing to start in production: [^]*devLogin/);
    return true;
  });
  const strong = parseServerConfig(
    `jwt: { secret: "${"k".repeat(20)}Zq8Xv2Lm9Rt4Wb7Yc1Hd6Jf3", issuer: https://idp.example, audience: coffer }\n`,
    "strong.yml",
    { COFFER_PRODUCTION: "1" },
    { listen: "127.0.0.1:0" },
  );
  const server = await startServer({ dataDir, config: strong, logger: false });
  await server.close();
});

test("a known default JWT secret is refused before the server starts, in production or not", () => {
  for (const env of [{}, { COFFER_PRODUCTION: "1" }]) {
    assert.throws(
      () => parseServerConfig("jwt: { secret: dev-secret-change-me, issuer: https://idp.example, audience: coffer }\n", "weak.yml", env),
      (err: unknown) => isCofferError(err, "E_CONFIG") && /jwt\.secret is a known default/.test(err.message) && /openssl rand -base64 48/.test(err.message),
    );
  }
});
