/**
 * coffer's start-up as a user meets it, against `node -e 0` in the same rounds (issue 17's
 * goals: `get` ≤ 1.5×, `run -- true` with 10 variables ≤ 2.5×), for the two ways to install it:
 * - the npm-installed bin: the packed tarball installed with `npm install -g` into a temp
 *   prefix (npm's cache, --prefer-offline), and its `coffer` run by name from PATH, as a shell
 *   runs it (through its `#!/usr/bin/env node` line, this same Node 24 first on PATH);
 * - the single executable (dist/binary/coffer, built here when missing or older than src/).
 * `coffer --help` is timed alongside for context. Every case runs the same way (spawnSync, the
 * same environment), interleaved, the order rotated each round.
 *
 * The npm bin turns on Node's compile cache ($XDG_CACHE_HOME/coffer/compile-cache); the binary
 * carries its code cache. Warm-up runs fill the cache before anything is timed.
 *
 * Run alone: `node bench/cli.ts`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { initCoffer, openStore } from "../src/index.ts";
import { markdownTable, median, progress, quantile, ratioCell } from "./lib.ts";
import type { Row } from "./lib.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = join(ROOT, "dist", "bundle", "bin.js");
const BINARY = join(ROOT, "dist", "binary", "coffer");
const RUNS = 30;
const WARMUP_RUNS = 3;
/** issue 17's goals, for the npm bin and the single executable: `get` ≤ 1.5×, `run -- true` (10 variables) ≤ 2.5× `node -e 0` */
const GET_TARGET = 1.5;
const RUN_TARGET = 2.5;
const RUN_VARIABLES = 10;
const SECRET_NAME = "db/prod/password";
const SECRET_VALUE = "correct horse battery staple";

/** Builds dist/ (as `npm run build` does) when it is missing or older than any file in src/. */
export function ensureBuilt(): void {
  const built = mtime(MAIN);
  const newest = newestMtime(join(ROOT, "src"));
  if (built !== undefined && built >= newest) return;
  progress(built === undefined ? "dist/ is missing: building (npm run build)…" : "dist/ is older than src/: rebuilding (npm run build)…");
  const r = spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`the build failed (npm run build exit ${r.status ?? r.signal})`);
}

/** Builds dist/binary/coffer (as `npm run build:binary` does) when it is missing or older than src/. */
function ensureBinary(): void {
  const built = mtime(BINARY);
  if (built !== undefined && built >= newestMtime(join(ROOT, "src"))) return;
  progress("dist/binary/coffer is missing or older than src/: building it (npm run build:binary)…");
  const r = spawnSync("npm", ["run", "build:binary", "--silent"], { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`the binary build failed (npm run build:binary exit ${r.status ?? r.signal})`);
}

/**
 * The packed tarball installed with `npm install -g` into a prefix under `dir`, as the README's
 * Install says; gives the installed `coffer` (a link in PREFIX/bin).
 */
function installPacked(dir: string): string {
  const npmEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
  progress("CLI: npm pack, then npm install -g of the tarball into a temp prefix…");
  const pack = spawnSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: ROOT, env: npmEnv, encoding: "utf8" });
  if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
  const [packed] = JSON.parse(pack.stdout) as { filename: string }[];
  const prefix = join(dir, "prefix");
  const install = spawnSync("npm", ["install", "-g", "--prefer-offline", "--prefix", prefix, join(dir, packed!.filename)], { cwd: dir, env: npmEnv, encoding: "utf8" });
  if (install.status !== 0) throw new Error(`npm install -g failed: ${install.stderr}`);
  return join(prefix, "bin", "coffer");
}

interface Timed {
  label: string;
  /** the program (default: this node) */
  file?: string;
  args: string[];
  /** the stdout a run must print */
  expect: (stdout: string) => boolean;
  ms: number[];
}

/** The CLI benchmark rows. */
export async function benchCli(): Promise<Row[]> {
  ensureBuilt();
  ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "coffer-bench-cli-"));
  try {
    const storeEnv = { COFFER_HOME: dir };
    await initCoffer({ env: storeEnv, name: "bench" });
    const store = await openStore({ env: storeEnv });
    try {
      const filler = Array.from({ length: 1000 }, (_, i) => ({ name: `app${i % 7}/secret-${i}`, value: `value-${i}` }));
      const vars = Array.from({ length: RUN_VARIABLES }, (_, i) => ({ name: `app/run/var${i}`, value: `run-value-${i}` }));
      store.setMany([...filler, ...vars, { name: SECRET_NAME, value: SECRET_VALUE }]);
    } finally {
      store.close();
    }
    const installed = installPacked(dir);
    // The same environment for every child; nothing inherited may point coffer elsewhere. Node
    // 24 first on PATH: the installed bin's `#!/usr/bin/env node` finds it there.
    const env: NodeJS.ProcessEnv = { ...process.env, COFFER_HOME: dir, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}` };
    for (const k of ["COFFER_STORE", "COFFER_IDENTITY", "COFFER_PASSPHRASE_FILE", "NODE_COMPILE_CACHE", "NODE_DISABLE_COMPILE_CACHE"]) {
      delete env[k];
    }
    // `run` reads the .coffer.yml of the directory it runs in: every case runs in `dir`.
    const yml = Array.from({ length: RUN_VARIABLES }, (_, i) => `      VAR${i}: app/run/var${i}`);
    writeFileSync(join(dir, ".coffer.yml"), ["environments:", "  dev:", "    env:", ...yml, ""].join("\n"));
    const cases: Timed[] = [
      { label: "get", file: installed, args: ["get", SECRET_NAME], expect: (out) => out === SECRET_VALUE, ms: [] },
      { label: "base", args: ["-e", "0"], expect: (out) => out === "", ms: [] },
      { label: "help", file: installed, args: ["--help"], expect: (out) => out.startsWith("coffer:"), ms: [] },
      { label: "run", file: installed, args: ["run", "--", "true"], expect: (out) => out === "", ms: [] },
      { label: "binary get", file: BINARY, args: ["get", SECRET_NAME], expect: (out) => out === SECRET_VALUE, ms: [] },
      { label: "binary run", file: BINARY, args: ["run", "--", "true"], expect: (out) => out === "", ms: [] },
    ];
    const run = (c: Timed): number => {
      const t0 = performance.now();
      const r = spawnSync(c.file ?? process.execPath, c.args, { cwd: dir, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      const ms = performance.now() - t0;
      if (r.status !== 0 || !c.expect(r.stdout)) {
        throw new Error(`${c.file ?? "node"} ${c.args.join(" ")} failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().slice(0, 500)}`);
      }
      return ms;
    };
    progress(`CLI: ${WARMUP_RUNS} warm-up runs of each (the first fills the compile cache), then ${RUNS} interleaved…`);
    for (let i = 0; i < WARMUP_RUNS; i++) for (const c of cases) run(c);
    for (let i = 0; i < RUNS; i++) {
      // Rotate the order so no case always runs right after another.
      for (let j = 0; j < cases.length; j++) {
        const c = cases[(i + j) % cases.length]!;
        c.ms.push(run(c));
      }
    }
    const [get, base, help, runInstalled, binGet, binRun] = cases as [Timed, Timed, Timed, Timed, Timed, Timed];
    progress(`CLI: get median ${median(get.ms).toFixed(1)} ms, node -e 0 ${median(base.ms).toFixed(1)} ms, --help ${median(help.ms).toFixed(1)} ms`);
    const cell = (ms: number[]) => `${median(ms).toFixed(1)} ms (p90 ${quantile(ms, 0.9).toFixed(1)})`;
    return [
      {
        benchmark: `npm-installed bin \`coffer get NAME\`, wall (median of ${RUNS}, compile cache warm) vs \`node -e 0\``,
        coffer: cell(get.ms),
        baseline: cell(base.ms),
        ratio: ratioCell(median(get.ms) / median(base.ms), GET_TARGET),
        target: `≤ ${GET_TARGET}×`,
      },
      {
        benchmark: `npm-installed bin \`coffer run -- true\` (${RUN_VARIABLES} variables), wall (median of ${RUNS}) vs \`node -e 0\``,
        coffer: cell(runInstalled.ms),
        baseline: cell(base.ms),
        ratio: ratioCell(median(runInstalled.ms) / median(base.ms), RUN_TARGET),
        target: `≤ ${RUN_TARGET}×`,
      },
      {
        benchmark: "npm-installed bin `coffer --help`, wall (context) vs `node -e 0`",
        coffer: cell(help.ms),
        baseline: cell(base.ms),
        ratio: ratioCell(median(help.ms) / median(base.ms)),
        target: "— (context)",
      },
      {
        benchmark: `single executable (dist/binary/coffer) \`coffer get NAME\`, wall (median of ${RUNS}) vs \`node -e 0\``,
        coffer: cell(binGet.ms),
        baseline: cell(base.ms),
        ratio: ratioCell(median(binGet.ms) / median(base.ms), GET_TARGET),
        target: `≤ ${GET_TARGET}×`,
      },
      {
        benchmark: `single executable \`coffer run -- true\` (${RUN_VARIABLES} variables), wall (median of ${RUNS}) vs \`node -e 0\``,
        coffer: cell(binRun.ms),
        baseline: cell(base.ms),
        ratio: ratioCell(median(binRun.ms) / median(base.ms), RUN_TARGET),
        target: `≤ ${RUN_TARGET}×`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function mtime(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".ts")) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

if (import.meta.main) {
  process.stdout.write(markdownTable(await benchCli()));
}
