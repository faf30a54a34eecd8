/**
 * `connect()` (src/app/connect.ts), in the same run as its baselines (issue 18):
 * - a cached `get()` (within ttl: no request) against a `Map.get` plus building a `Secret` from
 *   the bytes (what any in-process cache of Secrets must do at least), target ≤ 2×; and, to
 *   show what the await of an async API costs by itself, against that baseline in an async function;
 * - an uncached `get()` (one `GET /v1/secrets/NAME`, answer checked, value into a Secret) against
 *   a bare `fetch` of the same endpoint with its JSON read, one request at a time, interleaved,
 *   target ≤ 1.5×.
 *
 * The server is the real one (startServer, SQLite, in this process, logger off), its request
 * limit per credential raised.
 *
 * Usage: `node bench/client.ts` prints its rows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseServerConfig } from "../src/server/config.ts";
import { initServer, startServer } from "../src/server/server.ts";
import { connect } from "../src/app/connect.ts";
import { Secret } from "../src/core/secret.ts";
import { markdownTable, median, progress, quantile, ratioCell } from "./lib.ts";
import type { Row } from "./lib.ts";

const RUNS = 300;
const WARMUP = 30;
/** cached reads per timed batch, and batches */
const BATCH = 20_000;
const BATCHES = 15;

export async function benchClient(): Promise<Row[]> {
  const base = mkdtempSync(join(tmpdir(), "coffer-bench-client-"));
  try {
    const config = parseServerConfig("rateLimit: { requests: 1000000, ipRequests: 10000000 }\n", "bench.yml", {}, { listen: "127.0.0.1:0" });
    const data = join(base, "data");
    const { rootToken } = await initServer(data, config);
    const server = await startServer({ dataDir: data, config, logger: false });
    const value = "p".repeat(32);
    try {
      const put = await fetch(`${server.url}/v1/secrets/app/db`, { method: "PUT", headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ value }) });
      if (!put.ok) throw new Error(`write: ${put.status}`);

      // Cached get() against Map.get + new Secret, in alternating batches.
      const cached = connect({ url: server.url, token: rootToken, env: {}, cache: { ttl: "1h", staleIfError: "1h", dir: false } });
      await cached.get("app/db");
      const map = new Map([["app/db", { meta: { name: "app/db", version: 1, updatedAt: "2026-01-01T00:00:00.000Z" }, bytes: Buffer.from(value) }]]);
      let sink = 0;
      const mapBatch = (): number => {
        const t0 = performance.now();
        for (let i = 0; i < BATCH; i++) {
          const e = map.get("app/db")!;
          const s = new Secret(e.meta, Buffer.from(e.bytes));
          sink += s.version;
        }
        return ((performance.now() - t0) * 1e6) / BATCH;
      };
      // The same behind the smallest async function (what the await of an async API costs by itself).
      const asyncMapGet = async (name: string): Promise<Secret> => {
        const e = map.get(name)!;
        return new Secret(e.meta, Buffer.from(e.bytes));
      };
      const awaitedMapBatch = async (): Promise<number> => {
        const t0 = performance.now();
        for (let i = 0; i < BATCH; i++) sink += (await asyncMapGet("app/db")).version;
        return ((performance.now() - t0) * 1e6) / BATCH;
      };
      const getBatch = async (): Promise<number> => {
        const t0 = performance.now();
        for (let i = 0; i < BATCH; i++) sink += (await cached.get("app/db")).version;
        return ((performance.now() - t0) * 1e6) / BATCH;
      };
      mapBatch();
      await getBatch();
      const mapNs: number[] = [];
      const awaitedNs: number[] = [];
      const getNs: number[] = [];
      for (let b = 0; b < BATCHES; b++) {
        mapNs.push(mapBatch());
        getNs.push(await getBatch());
        awaitedNs.push(await awaitedMapBatch());
      }
      cached.close();
      if (sink === 0) throw new Error("unreachable");

      // Uncached get() against a bare fetch, one at a time, interleaved.
      const plain = connect({ url: server.url, token: rootToken, env: {} });
      const endpoint = `${server.url}/v1/secrets/app/db`;
      const headers = { authorization: `Bearer ${rootToken}`, accept: "application/json" };
      const gets: number[] = [];
      const fetches: number[] = [];
      const timedGet = async (into: number[]): Promise<void> => {
        const t0 = performance.now();
        const s = await plain.get("app/db");
        into.push(performance.now() - t0);
        s.dispose();
      };
      const timedFetch = async (into: number[]): Promise<void> => {
        const t0 = performance.now();
        const res = await fetch(endpoint, { headers });
        const body = (await res.json()) as { value?: string };
        into.push(performance.now() - t0);
        if (body.value !== value) throw new Error("bare fetch: wrong answer");
      };
      for (let i = 0; i < WARMUP; i++) {
        await timedGet([]);
        await timedFetch([]);
      }
      for (let i = 0; i < RUNS; i++) {
        await timedGet(gets);
        await timedFetch(fetches);
        if (i % 100 === 99) progress(`client: ${i + 1}/${RUNS}`);
      }
      plain.close();

      const cachedRatio = median(getNs) / median(mapNs);
      const uncachedRatio = median(gets) / median(fetches);
      return [
        {
          benchmark: `connect().get() of a cached secret (ttl), median of ${BATCHES} batches of ${BATCH / 1000}k`,
          coffer: `${median(getNs).toFixed(0)} ns`,
          baseline: `Map.get + new Secret: ${median(mapNs).toFixed(0)} ns`,
          ratio: ratioCell(cachedRatio, 2),
          target: "≤ 2×",
        },
        {
          benchmark: "connect().get() of a cached secret, against the same baseline in an async function",
          coffer: `${median(getNs).toFixed(0)} ns`,
          baseline: `async (Map.get + new Secret): ${median(awaitedNs).toFixed(0)} ns`,
          ratio: ratioCell(median(getNs) / median(awaitedNs)),
          target: "—",
        },
        {
          benchmark: `connect().get() uncached (one GET), one at a time, p50 (p90) over ${RUNS}`,
          coffer: `${median(gets).toFixed(2)} ms (${quantile(gets, 0.9).toFixed(2)})`,
          baseline: `bare fetch + JSON: ${median(fetches).toFixed(2)} ms (${quantile(fetches, 0.9).toFixed(2)})`,
          ratio: ratioCell(uncachedRatio, 1.5),
          target: "≤ 1.5×",
        },
      ];
    } finally {
      await server.close();
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  process.stdout.write(`${markdownTable(await benchClient())}\n`);
}
