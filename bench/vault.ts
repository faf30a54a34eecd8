/**
 * The Vault-compatible API: what a read through it (`GET /v1/secret/data/NAME`: the map rule,
 * Vault's envelope) costs against the same read through coffer's own route
 * (`GET /v1/secrets/NAME`), one request at a time, interleaved, in the same run; and a `LIST`
 * (re-dispatched from the HTTP parser's error path) against `GET …?list=true` on the same
 * kept-alive socket.
 *
 * The server is the real one (startServer, SQLite, in this process, logger off) with the default
 * configuration plus `vault: { mount: secret }`, and the request limit per credential raised.
 *
 * Usage: `node bench/vault.ts` prints its rows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { request, Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseServerConfig } from "../src/server/config.ts";
import { initServer, startServer } from "../src/server/server.ts";
import { markdownTable, median, progress, quantile } from "./lib.ts";
import type { Row } from "./lib.ts";

const RUNS = 300;
const WARMUP = 30;

/** One request on `agent`'s kept-alive socket; resolves when the whole answer is read. */
function send(url: string, method: string, path: string, token: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, agent, headers: { "x-vault-token": token, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode ?? 0));
    });
    req.once("error", reject);
    req.end();
  });
}

export async function benchVault(): Promise<Row[]> {
  const base = mkdtempSync(join(tmpdir(), "coffer-bench-vault-"));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const config = parseServerConfig("rateLimit: { requests: 1000000, ipRequests: 10000000 }\nvault: { mount: secret }\n", "bench.yml", {}, { listen: "127.0.0.1:0" });
    const data = join(base, "data");
    const { rootToken } = await initServer(data, config);
    const server = await startServer({ dataDir: data, config, logger: false });
    const t = rootToken;
    const timed = async (samples: number[], method: string, path: string): Promise<void> => {
      const t0 = performance.now();
      const status = await send(server.url, method, path, t, agent);
      if (status !== 200) throw new Error(`${method} ${path}: ${status}`);
      samples.push(performance.now() - t0);
    };
    const vaultReads: number[] = [];
    const ownReads: number[] = [];
    const lists: number[] = [];
    const getLists: number[] = [];
    try {
      const put = await fetch(`${server.url}/v1/secret/data/app/db`, { method: "POST", headers: { "x-vault-token": t, "content-type": "application/json" }, body: JSON.stringify({ data: { user: "app", password: "p".repeat(32) } }) });
      if (!put.ok) throw new Error(`write: ${put.status}`);
      for (let i = 0; i < WARMUP; i++) {
        await timed([], "GET", "/v1/secret/data/app/db");
        await timed([], "GET", "/v1/secrets/app/db");
        await timed([], "LIST", "/v1/secret/metadata/app");
      }
      for (let i = 0; i < RUNS; i++) {
        await timed(vaultReads, "GET", "/v1/secret/data/app/db");
        await timed(ownReads, "GET", "/v1/secrets/app/db");
        await timed(lists, "LIST", "/v1/secret/metadata/app");
        await timed(getLists, "GET", "/v1/secret/metadata/app?list=true");
        if (i % 100 === 99) progress(`vault: ${i + 1}/${RUNS}`);
      }
    } finally {
      await server.close();
    }
    return [
      {
        benchmark: `Vault KV v2 read (GET /v1/secret/data/NAME), one at a time, p50 (p90) over ${RUNS}`,
        coffer: `${median(vaultReads).toFixed(2)} ms (${quantile(vaultReads, 0.9).toFixed(2)})`,
        baseline: `GET /v1/secrets/NAME: ${median(ownReads).toFixed(2)} ms (${quantile(ownReads, 0.9).toFixed(2)})`,
        ratio: `${(median(vaultReads) / median(ownReads)).toFixed(2)}×`,
        target: "—",
      },
      {
        benchmark: "Vault `LIST …/metadata/P` (re-dispatched from the parser's error path), same socket",
        coffer: `${median(lists).toFixed(2)} ms (${quantile(lists, 0.9).toFixed(2)})`,
        baseline: `GET …?list=true: ${median(getLists).toFixed(2)} ms (${quantile(getLists, 0.9).toFixed(2)})`,
        ratio: `${(median(lists) / median(getLists)).toFixed(2)}×`,
        target: "—",
      },
    ];
  } finally {
    agent.destroy();
    rmSync(base, { recursive: true, force: true });
  }
}

if (import.meta.main) process.stdout.write(markdownTable(await benchVault()));
