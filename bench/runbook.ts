/**
 * Runbooks: the time from `POST /v1/runbooks/NAME/run` to the final status of a `true` script
 * (read as the `end` event of the execution's output stream), against spawning the same shell
 * on the same script file directly and waiting for it to exit, in the same run. The overhead is
 * the difference of the medians (target < 30 ms at p50). The same runbook in the sandbox
 * (bubblewrap: namespaces, mounts) is measured beside it, for the record.
 *
 * The server is the real one (startServer, SQLite, in this process, logger off) with the default
 * configuration, except the limits a benchmark would trip: the request limit per credential and
 * the execution limit (10 a minute by default) are raised.
 *
 * Usage: `node bench/runbook.ts` prints its rows.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseServerConfig } from "../src/server/config.ts";
import { initServer, startServer } from "../src/server/server.ts";
import { markdownTable, median, progress, quantile } from "./lib.ts";
import type { Row } from "./lib.ts";

const RUNS = 60;
const WARMUP = 5;
const TARGET_OVERHEAD_MS = 30;

/** Spawns `sh FILE` and waits for it to exit, as the baseline. */
function spawnShell(file: string, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", [file], { cwd, stdio: ["ignore", "pipe", "pipe"], env: { PATH: "/usr/bin:/bin" } });
    child.stdout.resume();
    child.stderr.resume();
    child.once("error", reject);
    child.once("close", () => resolve());
  });
}

/** Runs the runbook and reads its output stream to the `end` event. */
async function runOnce(url: string, token: string, name = "noop"): Promise<void> {
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const r = await fetch(`${url}/v1/runbooks/${name}/run`, { method: "POST", headers, body: '{"params":{}}' });
  if (r.status !== 202) throw new Error(`run: ${r.status} ${await r.text()}`);
  const { id } = (await r.json()) as { id: string };
  const out = await fetch(`${url}/v1/executions/${id}/output`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } });
  const text = await out.text();
  if (!text.includes('"status":"succeeded"')) throw new Error(`the execution did not succeed: ${text.slice(0, 300)}`);
}

export async function benchRunbook(): Promise<Row[]> {
  const base = mkdtempSync(join(tmpdir(), "coffer-bench-runbook-"));
  try {
    const dir = join(base, "runbooks");
    mkdirSync(dir);
    writeFileSync(join(dir, "noop.yml"), 'description: does nothing\nrun: "true"\n');
    writeFileSync(join(dir, "boxed.yml"), 'description: does nothing in the sandbox\nisolation: sandbox\nrun: "true"\n');
    const script = join(base, "noop.sh");
    writeFileSync(script, "true\n");
    const config = parseServerConfig(
      `rateLimit: { requests: 100000 }\nrunbooks:\n  dir: ${dir}\n  rateLimit: { executions: 100000 }\n`,
      "bench.yml",
      {},
      { listen: "127.0.0.1:0" },
    );
    const data = join(base, "data");
    const { rootToken } = await initServer(data, config);
    const server = await startServer({ dataDir: data, config, logger: false });
    const coffer: number[] = [];
    const boxed: number[] = [];
    const bare: number[] = [];
    try {
      for (let i = 0; i < WARMUP; i++) {
        await runOnce(server.url, rootToken);
        await spawnShell(script, base);
      }
      // Interleaved, so a noisy moment costs both sides alike.
      for (let i = 0; i < RUNS; i++) {
        let t0 = performance.now();
        await runOnce(server.url, rootToken);
        coffer.push(performance.now() - t0);
        t0 = performance.now();
        await spawnShell(script, base);
        bare.push(performance.now() - t0);
        t0 = performance.now();
        await runOnce(server.url, rootToken, "boxed");
        boxed.push(performance.now() - t0);
        if (i % 20 === 19) progress(`runbook: ${i + 1}/${RUNS}`);
      }
    } finally {
      await server.close();
    }
    const p50 = median(coffer);
    const baseP50 = median(bare);
    const overhead = p50 - baseP50;
    return [
      {
        benchmark: `runbook \`true\`: POST run → final status, p50 (p90) over ${RUNS}`,
        coffer: `${p50.toFixed(1)} ms (${quantile(coffer, 0.9).toFixed(1)})`,
        baseline: `spawn sh: ${baseP50.toFixed(1)} ms (${quantile(bare, 0.9).toFixed(1)})`,
        ratio: `+${overhead.toFixed(1)} ms ${overhead < TARGET_OVERHEAD_MS ? "✓" : "✗"}`,
        target: `overhead < ${TARGET_OVERHEAD_MS} ms`,
      },
      {
        benchmark: "the same with isolation: sandbox (bubblewrap)",
        coffer: `${median(boxed).toFixed(1)} ms (${quantile(boxed, 0.9).toFixed(1)})`,
        baseline: `spawn sh: ${baseP50.toFixed(1)} ms`,
        ratio: `+${(median(boxed) - baseP50).toFixed(1)} ms`,
        target: "—",
      },
    ];
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

if (import.meta.main) process.stdout.write(markdownTable(await benchRunbook()));
