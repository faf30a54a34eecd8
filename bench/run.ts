/**
 * `npm run bench`: every benchmark, one markdown table on stdout, and the same table written
 * to bench/results.md (the one the README quotes).
 *
 * `npm run bench -- --quick` (or BENCH_QUICK=1) skips the 1M-secret store; a quick run does
 * not overwrite bench/results.md, which keeps the last full table.
 */
// First: a SIGUSR1 listener, so that SIGUSR1 cannot open Node's inspector in the servers and
// stores this process runs (as src/cli/bin.ts does for coffer itself).
process.on("SIGUSR1", () => {});

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchOptions, markdownTable, quietSqliteWarning } from "./lib.ts";
import type { Row } from "./lib.ts";

quietSqliteWarning();
// Loaded only now, after the warning filter is in place (they load node:sqlite).
const { benchGet } = await import("./get.ts");
const { benchCli, ensureBuilt } = await import("./cli.ts");
const { benchDeliver } = await import("./deliver.ts");
const { benchAgent } = await import("./agent.ts");
const { benchServer } = await import("./server.ts");
const { benchRunbook } = await import("./runbook.ts");
const { benchRotation } = await import("./rotation.ts");
const { benchVault } = await import("./vault.ts");
const { benchClient } = await import("./client.ts");

const options = benchOptions();
const started = performance.now();
const rows: Row[] = [];
ensureBuilt(); // before the long part: a src/ that does not build fails the run now, not minutes later
process.stderr.write(`store.get${options.quick ? " (quick: 10k only)" : ""}\n`);
rows.push(...(await benchGet(options)));
process.stderr.write("CLI\n");
rows.push(...(await benchCli()));
process.stderr.write("run\n");
rows.push(...(await benchDeliver()));
process.stderr.write("agent\n");
rows.push(...(await benchAgent()));
process.stderr.write("server\n");
rows.push(...(await benchServer(options)));
process.stderr.write("runbook\n");
rows.push(...(await benchRunbook()));
process.stderr.write("rotation\n");
rows.push(...(await benchRotation()));
process.stderr.write("vault\n");
rows.push(...(await benchVault()));
process.stderr.write("client\n");
rows.push(...(await benchClient()));
const seconds = (performance.now() - started) / 1000;

const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout?.trim() || String(availableParallelism());
const text = [
  `Date: ${new Date().toISOString()} · node ${process.version} · nproc ${nproc} (${cpus()[0]?.model.trim() ?? "unknown CPU"})` +
    ` · run took ${seconds.toFixed(0)} s${options.quick ? " · quick (1M store skipped)" : ""}`,
  "",
  markdownTable(rows),
].join("\n");
process.stdout.write(`\n${text}`);

if (options.quick) {
  process.stderr.write("quick run: bench/results.md left as it was (it keeps the last full run)\n");
} else {
  const results = join(dirname(fileURLToPath(import.meta.url)), "results.md");
  writeFileSync(
    results,
    [
      "# Benchmark results",
      "",
      "Written by `npm run bench` (bench/run.ts); each ratio is against a baseline measured in the same run.",
      "",
      text,
    ].join("\n"),
  );
  process.stderr.write(`wrote ${results}\n`);
}
