/**
 * Fault test: the server process is killed between apply and write (SIGKILL inside the apply
 * target, once the target holds the new value). After a restart, the candidate sealed in the
 * database before apply is finished: with an idempotent target it is applied again and stored as
 * the new version (the value the target got before the crash); with a runbook-like target that is
 * not idempotent the rotation is marked `unknown` for a person, the version unchanged.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { parseServerConfig } from "../../src/server/config.ts";
import { initServer, startServer } from "../../src/server/server.ts";
import type { ApplyContext } from "../../src/rotation/apply.ts";
import { randomBytes } from "node:crypto";
import { tempDir, waitFor } from "../helpers.ts";
import { adminQuery, freshDatabase, postgresUrl, pgLogin } from "../services.ts";
import { callAt, TEST_ROLES } from "./harness.ts";

const CHILD = join(import.meta.dirname, "rotation-crash-child.ts");
// polls are many: the rate limits are out of the way
const YAML = `${TEST_ROLES}\nrateLimit: { requests: 1000000, window: 1m, ipRequests: 10000000 }\n`;

/**
 * Inits a server, runs the crashing child, rotates through it until it dies; returns what the
 * target got. `setup` writes what the policy needs first; `apply` is the policy's target.
 */
async function crashDuringApply(
  t: TestContext,
  kind: "idempotent" | "not-idempotent" | "postgres",
  options: { yaml?: string; secrets?: Record<string, string>; apply?: unknown } = {},
) {
  const base = tempDir(t, "coffer-rotation-fault-");
  const dataDir = join(base, "data");
  const configFile = join(base, "server.yml");
  const marker = join(base, "applied");
  const yaml = options.yaml ?? YAML;
  writeFileSync(configFile, yaml);
  const config = parseServerConfig(yaml, configFile, {}, { listen: "127.0.0.1:0" });
  const { rootToken } = await initServer(dataDir, config);
  const child = spawn(process.execPath, [CHILD, dataDir, configFile, marker, kind], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => child.exitCode === null && child.kill("SIGKILL"));
  const [line] = (await once(child.stdout, "data")) as [Buffer];
  const url = line.toString("utf8").trim();
  for (const [name, value] of Object.entries({ "app/db": "old-password", ...options.secrets })) {
    assert.equal((await callAt(url, "PUT", `/v1/secrets/${name}`, rootToken, { value })).status, 200);
  }
  const policy = { generate: { charset: "alnum", length: 32 }, apply: options.apply ?? { postgres: { connection: "app/admin", role: "app" } } };
  assert.equal((await callAt(url, "PUT", "/v1/rotation/app/db", rootToken, policy)).status, 200);
  const exited = once(child, "exit");
  await callAt(url, "POST", "/v1/rotation/app/db", rootToken).then(() => assert.fail("the server answered; it should have died"), () => {});
  const [, signal] = (await exited) as [number | null, string | null];
  assert.equal(signal, "SIGKILL");
  return { dataDir, config, rootToken, applied: readFileSync(marker, "utf8") };
}

test("rotation fault: killed between apply and write, an idempotent target's candidate is applied again and stored after restart", { timeout: 90_000 }, async (t) => {
  const { dataDir, config, rootToken, applied } = await crashDuringApply(t, "idempotent");
  assert.match(applied, /^[A-Za-z0-9]{32}$/);
  const again: string[] = [];
  const server = await startServer({
    dataDir, config, logger: false,
    rotation: { pollMs: 300, targets: () => ({ label: "fake:again", idempotent: true, apply: async (ctx: ApplyContext) => void again.push(ctx.newValue.toString("utf8")) }) },
  });
  t.after(() => server.close());
  const now = await waitFor("the candidate stored", 30_000, async () => {
    const r = await callAt(server.url, "GET", "/v1/secrets/app/db", rootToken);
    return r.json?.version === 2 ? r.json : undefined;
  });
  assert.equal(now.value, applied, "the value the target got before the crash is the new version");
  assert.deepEqual(again, [applied]);
  const view = await callAt(server.url, "GET", "/v1/rotation/app/db", rootToken);
  assert.equal(view.json.state, "ok");
});

test("rotation fault: killed between apply and write, a target that is not idempotent leaves the rotation unknown, never guessed", { timeout: 90_000 }, async (t) => {
  const { dataDir, config, rootToken } = await crashDuringApply(t, "not-idempotent");
  let applies = 0;
  const server = await startServer({
    dataDir, config, logger: false,
    rotation: { pollMs: 300, targets: () => ({ label: "runbook:rotate-db", idempotent: false, apply: async () => void applies++ }) },
  });
  t.after(() => server.close());
  const view = await waitFor("the rotation marked unknown", 30_000, async () => {
    const r = await callAt(server.url, "GET", "/v1/rotation/app/db", rootToken);
    return r.json?.state === "unknown" ? r.json : undefined;
  });
  assert.match(view.lastError, /interrupted during runbook:rotate-db apply/);
  assert.equal(applies, 0);
  const secret = await callAt(server.url, "GET", "/v1/secrets/app/db", rootToken);
  assert.equal(secret.json.version, 1);
  assert.equal(secret.json.value, "old-password");
  // the secret is writable again: a person resolves it
  assert.equal((await callAt(server.url, "PUT", "/v1/secrets/app/db", rootToken, { value: "set-by-hand" })).status, 200);
  const audit = await callAt(server.url, "GET", "/v1/audit?action=secret.rotate", rootToken);
  assert.ok(audit.json.records.some((x: { detail: { result: string } }) => x.detail.result === "unknown"), audit.text);
  assert.equal((await callAt(server.url, "GET", "/v1/sys/health", rootToken)).json.rotation, "overdue");
});

test("rotation fault (PostgreSQL storage, the real PostgreSQL target): killed after the role's password changed, the restarted server stores that value", { timeout: 120_000 }, async (t) => {
  const role = `coffer_fault_${randomBytes(4).toString("hex")}`;
  await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD 'old-password'`);
  t.after(() => adminQuery(`DROP ROLE IF EXISTS ${role}`, { tries: 20 }));
  const yaml = `${YAML}database: ${await freshDatabase(t)}\n`;
  const { dataDir, config, rootToken, applied } = await crashDuringApply(t, "postgres", {
    yaml,
    secrets: { "app/admin": await postgresUrl() },
    apply: { postgres: { connection: "app/admin", role } },
  });
  // The target holds the new value; the store still has the old one.
  assert.equal(await pgLogin(role, "old-password"), "28P01");
  assert.equal(await pgLogin(role, applied), "ok");
  const server = await startServer({ dataDir, config, logger: false, rotation: { pollMs: 300 } });
  t.after(() => server.close());
  const now = await waitFor("the applied value stored", 60_000, async () => {
    const r = await callAt(server.url, "GET", "/v1/secrets/app/db", rootToken);
    return r.json?.version === 2 ? r.json : undefined;
  });
  assert.equal(now.value, applied, "the value PostgreSQL holds is the new version");
  assert.equal(await pgLogin(role, now.value as string), "ok", "and it still logs in after the second apply");
  assert.equal((await callAt(server.url, "GET", "/v1/rotation/app/db", rootToken)).json.state, "ok");
});
