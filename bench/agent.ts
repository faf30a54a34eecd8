/**
 * `coffer agent --watch` with the folder backend: time from a source change (atomic replace)
 * to the new value in DIR, over 100 changes, against a bare `fs.watch` + copy process in the
 * same run (the floor for any inotify-based side-car).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureBuilt } from "./cli.ts";
import { markdownTable, median, progress, quantile } from "./lib.ts";
import type { Row } from "./lib.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = join(ROOT, "dist", "bundle", "bin.js");
const CHANGES = 100;
const TARGET_P99_MS = 100;

// The watch goes in before "ready" is printed: a change made at once must not be missed.
const BARE_WATCHER = `
const fs = require("fs"), path = require("path");
const [src, out] = process.argv.slice(1);
const copy = () => { try { const v = fs.readFileSync(path.join(src, "token")); const tmp = path.join(out, ".t"); fs.writeFileSync(tmp, v); fs.renameSync(tmp, path.join(out, "token")); } catch {} };
fs.watch(src, copy);
copy(); console.log("ready");
`;

async function waitForLine(child: ChildProcess, stream: "stdout" | "stderr", re: RegExp): Promise<void> {
  let buf = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${re} from the watcher: ${buf.slice(0, 300)}`)), 20_000);
    child[stream]!.on("data", (d: Buffer) => {
      buf += d.toString();
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function latencies(src: string, target: string, which: string): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const value = `value-${i}-${Math.random().toString(36).slice(2)}`;
    const t0 = performance.now();
    writeFileSync(join(src, ".token.new"), value);
    renameSync(join(src, ".token.new"), join(src, "token"));
    for (;;) {
      let now = "";
      try {
        now = readFileSync(target, "utf8");
      } catch {
        // between renames
      }
      if (now === value) break;
      if (performance.now() - t0 > 5000) throw new Error(`${which}: change ${i} did not reach ${target} within 5 s`);
      await new Promise((r) => setTimeout(r, 1));
    }
    ms.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 30));
  }
  return ms;
}

/** The agent benchmark rows. */
export async function benchAgent(): Promise<Row[]> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), "coffer-bench-agent-"));
  const children: ChildProcess[] = [];
  try {
    const results: Record<string, number[]> = {};
    for (const which of ["coffer", "bare"] as const) {
      const src = join(dir, `${which}-src`);
      const out = join(dir, `${which}-out`);
      mkdirSync(src, { mode: 0o700 });
      mkdirSync(out, { mode: 0o700 });
      writeFileSync(join(src, "token"), "initial", { mode: 0o600 });
      const child =
        which === "coffer"
          ? spawn(process.execPath, [MAIN, "agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "token", "--watch", "--on-change", "none"], {
              env: { ...process.env, HOME: dir },
            })
          : spawn(process.execPath, ["-e", BARE_WATCHER, src, out]);
      children.push(child);
      await waitForLine(child, which === "coffer" ? "stderr" : "stdout", which === "coffer" ? /wrote 1 secrets/ : /ready/);
      progress(`agent: ${CHANGES} changes through ${which === "coffer" ? "coffer agent" : "a bare fs.watch + copy"}…`);
      results[which] = await latencies(src, join(out, "token"), which);
      child.kill("SIGTERM");
    }
    const c = results.coffer!;
    const b = results.bare!;
    const cell = (ms: number[]) => `p50 ${median(ms).toFixed(1)} ms, p99 ${quantile(ms, 0.99).toFixed(1)} ms`;
    progress(`agent: coffer ${cell(c)}; bare ${cell(b)}`);
    const p99 = quantile(c, 0.99);
    return [
      {
        benchmark: `\`coffer agent --watch\` (folder): source change → new file in DIR, ${CHANGES} changes, vs bare fs.watch + copy`,
        coffer: cell(c),
        baseline: cell(b),
        ratio: `${(median(c) / median(b)).toFixed(2)}× (p50)`,
        target: `p99 < ${TARGET_P99_MS} ms ${p99 < TARGET_P99_MS ? "✓" : "✗"}`,
      },
    ];
  } finally {
    for (const ch of children) ch.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  process.stdout.write(markdownTable(await benchAgent()));
}
