/**
 * `coffer run -- true` as a process, with the same ten variables as `dotenvx run -- true`
 * (@dotenvx/dotenvx, from a plain .env), against `node -e 0`: all on the same node, interleaved.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { initCoffer, openStore } from "../src/index.ts";
import { ensureBuilt } from "./cli.ts";
import { markdownTable, median, progress, quantile, ratioCell } from "./lib.ts";
import type { Row } from "./lib.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = join(ROOT, "dist", "bundle", "bin.js");
const DOTENVX = realpathSync(join(ROOT, "node_modules", ".bin", "dotenvx"));
const VARS = 10;
const RUNS = 30;
const WARMUP_RUNS = 3;

/** The `coffer run` benchmark rows. */
export async function benchDeliver(): Promise<Row[]> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), "coffer-bench-run-"));
  try {
    const home = join(dir, "home");
    const runtime = join(dir, "run");
    mkdirSync(home);
    mkdirSync(runtime, { mode: 0o700 });
    await initCoffer({ env: { COFFER_HOME: home }, name: "bench" });
    const store = await openStore({ env: { COFFER_HOME: home } });
    const names = Array.from({ length: VARS }, (_, i) => `VAR_${i}`);
    try {
      store.setMany(names.map((n, i) => ({ name: `app/${n}`, value: `value-${i}-${"x".repeat(24)}` })));
    } finally {
      store.close();
    }
    writeFileSync(join(dir, ".coffer.yml"), `environments:\n  dev:\n    env:\n${names.map((n) => `      ${n}: app/${n}`).join("\n")}\n`);
    writeFileSync(join(dir, ".env"), names.map((n, i) => `${n}=value-${i}-${"x".repeat(24)}`).join("\n") + "\n");
    const env: NodeJS.ProcessEnv = { ...process.env, COFFER_HOME: home, XDG_RUNTIME_DIR: runtime, DOTENV_KEY: "" };
    const cases = [
      { label: "coffer", args: [MAIN, "run", "--", "true"], ms: [] as number[] },
      { label: "node", args: ["-e", "0"], ms: [] as number[] },
      { label: "dotenvx", args: [DOTENVX, "run", "-q", "-f", ".env", "--", "true"], ms: [] as number[] },
    ];
    const run = (args: string[]): number => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { cwd: dir, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`node ${args.join(" ")} failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().slice(0, 500)}`);
      return ms;
    };
    progress(`run: ${WARMUP_RUNS} warm-up runs of each, then ${RUNS} interleaved…`);
    for (let i = 0; i < WARMUP_RUNS; i++) for (const c of cases) run(c.args);
    for (let i = 0; i < RUNS; i++) {
      for (let j = 0; j < cases.length; j++) {
        const c = cases[(i + j) % cases.length]!;
        c.ms.push(run(c.args));
      }
    }
    const [coffer, node, dotenvx] = cases as [(typeof cases)[0], (typeof cases)[0], (typeof cases)[0]];
    const cell = (ms: number[]) => `${median(ms).toFixed(1)} ms (p90 ${quantile(ms, 0.9).toFixed(1)})`;
    progress(`run: coffer ${median(coffer.ms).toFixed(1)} ms, node -e 0 ${median(node.ms).toFixed(1)} ms, dotenvx ${median(dotenvx.ms).toFixed(1)} ms`);
    return [
      {
        benchmark: `\`coffer run -- true\`, ${VARS} variables from the store (median of ${RUNS}) vs \`node -e 0\``,
        coffer: cell(coffer.ms),
        baseline: cell(node.ms),
        ratio: ratioCell(median(coffer.ms) / median(node.ms)),
        target: "— (context)",
      },
      {
        benchmark: `\`coffer run -- true\` vs \`dotenvx run -- true\`, same ${VARS} variables (plain .env)`,
        coffer: cell(coffer.ms),
        baseline: cell(dotenvx.ms),
        ratio: ratioCell(median(coffer.ms) / median(dotenvx.ms)),
        target: "— (context)",
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  process.stdout.write(markdownTable(await benchDeliver()));
}
