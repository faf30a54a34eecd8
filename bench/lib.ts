/**
 * Helpers shared by the benchmarks: statistics, formatting, the results table, options.
 * No node:sqlite here, so bench/run.ts can silence its warning before anything loads it.
 */

/** One line of the results table. */
export interface Row {
  benchmark: string;
  coffer: string;
  baseline: string;
  ratio: string;
  target: string;
}

/** Options common to the benchmarks. */
export interface BenchOptions {
  /** skip the slow cases (the 1M-secret store) */
  quick: boolean;
}

/** `--quick` on the command line or `BENCH_QUICK=1` in the environment. */
export function benchOptions(argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): BenchOptions {
  return { quick: argv.includes("--quick") || env.BENCH_QUICK === "1" };
}

/** The q-quantile (0…1) of `xs`, nearest-rank on a sorted copy. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) throw new Error("quantile of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i]!;
}

/** The median of `xs` (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A small seeded PRNG (mulberry32), so every run draws the same names. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `1.23×`, with a ✓ or ✗ when a limit is given. */
export function ratioCell(ratio: number, limit?: number): string {
  const r = `${ratio.toFixed(2)}×`;
  return limit === undefined ? r : `${r} ${ratio <= limit ? "✓" : "✗"}`;
}

/** A count with a k/M suffix: 10k, 1M, 28.4k. */
export function count(n: number): string {
  if (n >= 1e6) return `${trim(n / 1e6)}M`;
  if (n >= 1e3) return `${trim(n / 1e3)}k`;
  return String(Math.round(n));
}

function trim(x: number): string {
  return x >= 100 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(1);
}

/** Renders rows as a markdown table. */
export function markdownTable(rows: readonly Row[]): string {
  const header: Row = { benchmark: "benchmark", coffer: "coffer", baseline: "baseline", ratio: "ratio", target: "target" };
  const keys = ["benchmark", "coffer", "baseline", "ratio", "target"] as const;
  const all = [header, ...rows];
  const widths = keys.map((k) => Math.max(3, ...all.map((r) => [...r[k]].length)));
  const line = (r: Row) => `| ${keys.map((k, i) => r[k] + " ".repeat(widths[i]! - [...r[k]].length)).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n") + "\n";
}

/** Progress on stderr, so stdout stays the table. */
export function progress(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

export { quietSqliteWarning } from "../src/cli/warnings.ts";
