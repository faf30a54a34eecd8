/**
 * Fault test: a real team server on PostgreSQL keeps its promises while PostgreSQL restarts
 * under it. A stream of PUTs runs for ~6 s; 1.5 s in, PostgreSQL is restarted (`pg_ctl restart`
 * on the tests' throw-away cluster, never the machine's or one named in COFFER_TEST_POSTGRES_URL:
 * see restartablePostgres). Afterwards every write the server acknowledged (2xx) is readable with
 * the acknowledged version and value; every write that failed failed cleanly (503
 * E_UNAVAILABLE/E_BUSY, or a dropped connection); and the same server process answers 200 again
 * without being restarted.
 *
 * Other tests on the same cluster would see their connections cut, so it is named *.fault.ts:
 * `npm test` runs it alone, after every *.test.ts has finished. It leaves the cluster running.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parseServerConfig } from "../../src/server/config.ts";
import { initServer, startServer } from "../../src/server/server.ts";
import { tempDir } from "../helpers.ts";
import { adminQuery, freshDatabase, restartablePostgres } from "../services.ts";
import { ensurePostgresRunning, restartPostgres } from "../throwaway.ts";
import { fetchReply, TEST_ROLES } from "./harness.ts";

const DURATION_MS = 6_000;
const RESTART_AT_MS = 1_500;
const WRITERS = 4;

interface Ack { name: string; version: number; value: string }
interface Failure { status: number | "network"; code: string | undefined; during: number }

test("postgres fault: PostgreSQL restarts under a running server; acknowledged writes survive, failures are clean, the server recovers", { timeout: 120_000 }, async (t) => {
  const cluster = await restartablePostgres();
  const admin = { url: cluster.url };
  // Waits until PostgreSQL answers a query (after a restart); starts the cluster if it is down.
  const ensurePostgresUp = async (): Promise<void> => {
    try {
      await adminQuery("SELECT 1", { ...admin, tries: 20 });
    } catch {
      await ensurePostgresRunning(cluster.dataDir);
      await adminQuery("SELECT 1", { ...admin, tries: 40 });
    }
  };
  // Whatever happens, leave PostgreSQL running for whoever comes next.
  t.after(ensurePostgresUp);
  const url = await freshDatabase(t, cluster.url);
  const dataDir = `${tempDir(t, "coffer-server-")}/data`;
  const yaml = `${TEST_ROLES}\ndatabase: "${url}"\nrateLimit: { requests: 1000000, window: 1m, ipRequests: 10000000 }\n`;
  const config = parseServerConfig(yaml, "fault.yml", {}, { listen: "127.0.0.1:0" });
  const { rootToken } = await initServer(dataDir, config);
  const server = await startServer({ dataDir, config, logger: false });
  try {
    const startedBefore = (await adminQuery("SELECT pg_postmaster_start_time()::text AS t", admin)).rows[0].t as string;
    const put = (name: string, value: string): Promise<{ status: number; json: any }> =>
      fetchReply(`${server.url}/v1/secrets/${name}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" },
        body: JSON.stringify({ value }),
        signal: AbortSignal.timeout(30_000),
      });

    const acks: Ack[] = [];
    const failures: Failure[] = [];
    const t0 = performance.now();
    let restartDone = -1;
    const restart = (async () => {
      await new Promise((r) => setTimeout(r, RESTART_AT_MS));
      await restartPostgres(cluster.dataDir);
      restartDone = performance.now() - t0;
    })();

    // WRITERS loops, each writing its own name again and again (so versions count up), plus a
    // fresh name each time (so first writes are exercised too).
    const writer = async (k: number): Promise<void> => {
      for (let i = 0; performance.now() - t0 < DURATION_MS; i++) {
        const name = i % 2 === 0 ? `app/fault/w${k}` : `app/fault/w${k}-${i}`;
        const value = `v-${k}-${i}-${randomBytes(6).toString("hex")}`;
        const during = performance.now() - t0;
        try {
          const r = await put(name, value);
          if (r.status >= 200 && r.status < 300) {
            assert.equal(r.json?.name, name);
            assert.ok(Number.isSafeInteger(r.json?.version) && r.json.version >= 1);
            acks.push({ name, version: r.json.version as number, value });
          } else {
            failures.push({ status: r.status, code: r.json?.error?.code as string | undefined, during });
            await new Promise((res) => setTimeout(res, 20));
          }
        } catch (err) {
          // the server itself dropped the connection: also a clean failure (nothing acknowledged)
          failures.push({ status: "network", code: (err as Error).name, during });
          await new Promise((res) => setTimeout(res, 20));
        }
      }
    };
    await Promise.all([restart, ...Array.from({ length: WRITERS }, (_, k) => writer(k))]);
    await ensurePostgresUp();

    const startedAfter = (await adminQuery("SELECT pg_postmaster_start_time()::text AS t", admin)).rows[0].t as string;
    assert.notEqual(startedAfter, startedBefore, "PostgreSQL was restarted during the test");

    // Failures were clean: the server said "unavailable" (or busy), never anything else.
    for (const f of failures) {
      assert.ok(
        f.status === "network" || (f.status === 503 && (f.code === "E_UNAVAILABLE" || f.code === "E_BUSY")),
        `a write failed uncleanly: ${JSON.stringify(f)}`,
      );
    }

    // The same server answers again (the pool made new connections), within a few seconds.
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i++) {
      const r = await put("app/fault/after", `after-${i}`).catch(() => ({ status: 0, json: undefined }));
      if (r.status === 200) {
        recovered = true;
        acks.push({ name: "app/fault/after", version: r.json.version as number, value: `after-${i}` });
      } else {
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    assert.ok(recovered, "the server answers writes with 200 again after PostgreSQL is back");
    const health = await fetch(`${server.url}/v1/sys/health`);
    assert.equal(health.status, 200);

    // Every acknowledged write is there, with the acknowledged version and value.
    const seen = new Set<string>();
    for (const a of acks) {
      const key = `${a.name}@${a.version}`;
      assert.ok(!seen.has(key), `version ${key} was acknowledged twice`);
      seen.add(key);
      const res = await fetch(`${server.url}/v1/secrets/${a.name}?version=${a.version}`, { headers: { authorization: `Bearer ${rootToken}` } });
      const body = (await res.json()) as { version?: number; value?: string };
      assert.equal(res.status, 200, `${key} should be readable`);
      assert.equal(body.version, a.version);
      assert.equal(body.value, a.value, `${key} holds the acknowledged value`);
    }

    // The audit chain survived too.
    const verify = await fetch(`${server.url}/v1/audit/verify`, { headers: { authorization: `Bearer ${rootToken}` } });
    assert.equal(verify.status, 200);
    const v = (await verify.json()) as { ok?: boolean; records?: number };
    assert.equal(v.ok, true, "the audit chain verifies after the restart");
    assert.ok((v.records ?? 0) >= acks.length, "every acknowledged write has its audit record");

    const duringOutage = failures.filter((f) => f.during >= RESTART_AT_MS - 100);
    t.diagnostic(`acknowledged writes: ${acks.length}; failed: ${failures.length} (${failures.filter((f) => f.status === "network").length} dropped connections); restart done at ${Math.round(restartDone)} ms`);
    t.diagnostic(`failures from ${Math.round(Math.min(...duringOutage.map((f) => f.during)))} ms to ${Math.round(Math.max(...duringOutage.map((f) => f.during)))} ms`);
    assert.ok(acks.length > WRITERS, "writes were acknowledged");
  } finally {
    await server.close();
  }
});
