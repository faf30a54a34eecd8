/**
 * Rotation: what `POST /v1/rotation/NAME` (apply: none; generate, seal the candidate, store it,
 * write the version, release, audit, publish) costs against a client writing a value of the same
 * length itself (`PUT /v1/secrets/NAME`), in the same run; and how soon a watcher hears of the
 * new version (the `change` event on `/v1/watch`, which agents and `run --watch` follow; the
 * issue's bound for the agent's file is 2 s).
 *
 * The server is the real one (startServer, SQLite, in this process, logger off) with the default
 * configuration, except the request limit per credential, raised for the benchmark.
 *
 * Usage: `node bench/rotation.ts` prints its rows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SseParser } from "../src/client/sse.ts";
import { parseServerConfig } from "../src/server/config.ts";
import { initServer, startServer } from "../src/server/server.ts";
import { markdownTable, median, progress, quantile } from "./lib.ts";
import type { Row } from "./lib.ts";

const RUNS = 100;
const WARMUP = 10;
const NAME = "app/session-key";
const LENGTH = 32;

/** Follows `/v1/watch`; `next(name)` resolves at the next change of `name`. */
async function watcher(url: string, token: string): Promise<{ next: (name: string) => Promise<void>; close: () => void }> {
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/watch?prefix=app/`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, signal: abort.signal });
  if (!res.ok || res.body === null) throw new Error(`watch: ${res.status}`);
  const waiting = new Map<string, () => void>();
  let ready: () => void = () => {};
  const opened = new Promise<void>((r) => (ready = r));
  const parser = new SseParser((e) => {
    if (e.event === "ready") ready();
    if (e.event !== "change") return;
    const name = (JSON.parse(e.data) as { name: string }).name;
    waiting.get(name)?.();
    waiting.delete(name);
  });
  void (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const chunk = await reader.read().catch(() => undefined);
      if (chunk === undefined || chunk.done) return;
      parser.push(chunk.value);
    }
  })();
  await opened;
  return { next: (name) => new Promise<void>((r) => waiting.set(name, r)), close: () => abort.abort() };
}

export async function benchRotation(): Promise<Row[]> {
  const base = mkdtempSync(join(tmpdir(), "coffer-bench-rotation-"));
  try {
    const config = parseServerConfig("rateLimit: { requests: 1000000, ipRequests: 10000000 }\n", "bench.yml", {}, { listen: "127.0.0.1:0" });
    const data = join(base, "data");
    const { rootToken } = await initServer(data, config);
    const server = await startServer({ dataDir: data, config, logger: false });
    const call = async (method: string, path: string, body?: unknown): Promise<void> => {
      const headers = { authorization: `Bearer ${rootToken}`, ...(body !== undefined && { "content-type": "application/json" }) };
      const r = await fetch(`${server.url}${path}`, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    };
    const rotate = (): Promise<void> => call("POST", `/v1/rotation/${NAME}`);
    const put = (): Promise<void> => call("PUT", `/v1/secrets/${NAME}`, { value: randomBytes(LENGTH / 2).toString("hex") });
    const rotations: number[] = [];
    const puts: number[] = [];
    const heard: number[] = [];
    const w = await watcher(server.url, rootToken);
    try {
      await put();
      await call("PUT", `/v1/rotation/${NAME}`, { generate: { charset: "hex", length: LENGTH } });
      for (let i = 0; i < WARMUP; i++) {
        await rotate();
        await put();
      }
      // Interleaved, so a noisy moment costs both sides alike.
      for (let i = 0; i < RUNS; i++) {
        const event = w.next(NAME);
        let t0 = performance.now();
        await rotate();
        rotations.push(performance.now() - t0);
        await event;
        heard.push(performance.now() - t0);
        t0 = performance.now();
        await put();
        puts.push(performance.now() - t0);
        if (i % 25 === 24) progress(`rotation: ${i + 1}/${RUNS}`);
      }
    } finally {
      w.close();
      await server.close();
    }
    const p50 = median(rotations);
    const putP50 = median(puts);
    return [
      {
        benchmark: `rotate now (apply: none, ${LENGTH} hex): POST /v1/rotation/NAME, p50 (p90) over ${RUNS}`,
        coffer: `${p50.toFixed(1)} ms (${quantile(rotations, 0.9).toFixed(1)})`,
        baseline: `PUT the same length: ${putP50.toFixed(1)} ms (${quantile(puts, 0.9).toFixed(1)})`,
        ratio: `${(p50 / putP50).toFixed(2)}×`,
        target: "—",
      },
      {
        benchmark: "rotation → its change event on /v1/watch (what agents follow), p50 (p99)",
        coffer: `${median(heard).toFixed(1)} ms (${quantile(heard, 0.99).toFixed(1)})`,
        baseline: "bound for the agent's file: 2000 ms",
        ratio: `${(quantile(heard, 0.99) / 2000).toFixed(3)} of it at p99`,
        target: `< 2 s ${quantile(heard, 0.99) < 2000 ? "✓" : "✗"}`,
      },
    ];
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

if (import.meta.main) process.stdout.write(markdownTable(await benchRotation()));
