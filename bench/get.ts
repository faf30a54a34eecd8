/**
 * `store.get(name)` through the library, on a store of 10k and of 1M secrets, against a bare
 * baseline measured in the same run: a node:sqlite prepared-statement lookup by primary key
 * on a table with as many rows, plus one AES-256-GCM decrypt of a value of the same size.
 *
 * The library is imported from ../src (Node strips the types at load; the JIT then runs the
 * same JavaScript tsc would emit), so the benchmark always measures the working tree and never
 * a stale dist/.
 *
 * Run alone: `node bench/get.ts [--quick]` (`--quick` or BENCH_QUICK=1 skips the 1M store).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { initCoffer, openStore } from "../src/index.ts";
import type { Store } from "../src/index.ts";
import { benchOptions, count, markdownTable, median, prng, progress, ratioCell } from "./lib.ts";
import type { BenchOptions, Row } from "./lib.ts";

/** Gets per timed round, rounds per size (after warm-up rounds), secrets per setMany call. */
const GETS_PER_ROUND = 20_000;
const ROUNDS = 11;
const WARMUP_ROUNDS = 2;
const BATCH = 10_000;
/** Value size: a typical password or API token. */
const VALUE_BYTES = 32;
/** The most coffer's get may cost against the baseline, and its growth from 10k to 1M. */
export const GET_RATIO_TARGET = 1.5;
export const FLAT_TARGET = 1.25;

/** The i-th secret's name: path-like, 20–30 characters, spread over 97 prefixes. */
function nameOf(i: number): string {
  return `app${i % 97}/db/secret-${i}`;
}

/** What one store size measured. */
export interface GetSizeResult {
  secrets: number;
  /** wall time to fill the store, ms: coffer's setMany and the baseline's bare inserts */
  populateMs: { coffer: number; baseline: number };
  /** store file sizes, bytes */
  fileBytes: { coffer: number; baseline: number };
  /** median per-get cost over the timed rounds, µs */
  getUs: { coffer: number; baseline: number };
  /** every timed round, µs per get */
  roundsUs: { coffer: number[]; baseline: number[] };
}

/** The bare baseline: a one-table store and a lookup + decrypt with nothing around them. */
class Baseline {
  readonly #db: DatabaseSync;
  readonly #key = randomBytes(32);
  /** a fixed AAD of the size coffer's is for these names */
  readonly #aad = randomBytes(4 + 16 + 4 + 24 + 4 + 8);
  readonly #insert: StatementSync;
  readonly #lookup: StatementSync;

  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    // The same file mode as a coffer store (WAL, fsync on commit).
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    this.#db.exec("CREATE TABLE kv (name TEXT PRIMARY KEY, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL) STRICT, WITHOUT ROWID");
    this.#insert = this.#db.prepare("INSERT INTO kv (name, nonce, ciphertext) VALUES (?, ?, ?)");
    this.#lookup = this.#db.prepare("SELECT nonce, ciphertext FROM kv WHERE name = ?");
  }

  /** Encrypts and inserts `values` in one transaction. */
  insertMany(entries: readonly { name: string; value: Uint8Array }[]): void {
    this.#db.exec("BEGIN IMMEDIATE");
    for (const e of entries) {
      const nonce = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", this.#key, nonce, { authTagLength: 16 });
      c.setAAD(this.#aad);
      const ct = Buffer.concat([c.update(e.value), c.final(), c.getAuthTag()]);
      this.#insert.run(e.name, nonce, ct);
    }
    this.#db.exec("COMMIT");
  }

  /** One primary-key lookup and one AES-256-GCM open. */
  get(name: string): Buffer {
    const row = this.#lookup.get(name) as { nonce: Uint8Array; ciphertext: Uint8Array } | undefined;
    if (row === undefined) throw new Error(`baseline: no row ${name}`);
    const ct = row.ciphertext;
    const d = createDecipheriv("aes-256-gcm", this.#key, row.nonce, { authTagLength: 16 });
    d.setAAD(this.#aad);
    d.setAuthTag(ct.subarray(ct.length - 16));
    const body = d.update(ct.subarray(0, ct.length - 16));
    d.final();
    return body;
  }

  close(): void {
    this.#db.close();
  }
}

/** Fills both stores with `n` secrets in batches, timing each side separately. */
function populate(store: Store, baseline: Baseline, n: number, value: Buffer): { coffer: number; baseline: number } {
  let cofferMs = 0;
  let baselineMs = 0;
  const step = Math.max(BATCH, Math.floor(n / 10 / BATCH) * BATCH);
  for (let start = 0; start < n; start += BATCH) {
    const batch: { name: string; value: Uint8Array }[] = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) batch.push({ name: nameOf(i), value });
    let t = performance.now();
    store.setMany(batch);
    cofferMs += performance.now() - t;
    t = performance.now();
    baseline.insertMany(batch);
    baselineMs += performance.now() - t;
    const done = Math.min(n, start + BATCH);
    if (n > BATCH && done % step === 0) {
      progress(`populated ${count(done)}/${count(n)} (coffer ${(cofferMs / 1000).toFixed(1)} s, baseline ${(baselineMs / 1000).toFixed(1)} s)`);
    }
  }
  return { coffer: cofferMs, baseline: baselineMs };
}

/** Times `GETS_PER_ROUND` calls of `fn`; returns µs per call. */
function timeRound(fn: (name: string) => number, names: readonly string[]): number {
  let sink = 0;
  const t0 = performance.now();
  for (let i = 0; i < names.length; i++) sink += fn(names[i]!);
  const us = ((performance.now() - t0) * 1000) / names.length;
  if (sink < 0) throw new Error("unreachable");
  return us;
}

/** Builds a store of `secrets` secrets and its baseline, times random gets, deletes both. */
export async function benchGetSize(secrets: number): Promise<GetSizeResult> {
  const dir = mkdtempSync(join(tmpdir(), `coffer-bench-get-${count(secrets)}-`));
  const env = { COFFER_HOME: dir };
  let store: Store | undefined;
  let baseline: Baseline | undefined;
  try {
    await initCoffer({ env, name: "bench" });
    store = await openStore({ env });
    baseline = new Baseline(join(dir, "baseline.db"));
    const value = Buffer.alloc(VALUE_BYTES, "v");
    progress(`${count(secrets)} secrets: populating (setMany, ${count(BATCH)} per transaction)…`);
    const populateMs = populate(store, baseline, secrets, value);
    const fileBytes = { coffer: fileSize(store.path), baseline: fileSize(join(dir, "baseline.db")) };

    const s = store;
    const b = baseline;
    const cofferGet = (name: string): number => s.get(name).version;
    const baselineGet = (name: string): number => b.get(name).length;
    const sample = nameOf(secrets - 1);
    if (s.get(sample).reveal() !== value.toString() || !b.get(sample).equals(value)) {
      throw new Error("a get returned the wrong value");
    }

    // Both sides see the same random names in each round, and rounds alternate so that
    // whatever else the machine is doing falls on both.
    const random = prng(secrets);
    const draw = () => Array.from({ length: GETS_PER_ROUND }, () => nameOf(Math.floor(random() * secrets)));
    for (let r = 0; r < WARMUP_ROUNDS; r++) {
      const names = draw();
      timeRound(cofferGet, names);
      timeRound(baselineGet, names);
    }
    const roundsUs = { coffer: [] as number[], baseline: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      const names = draw();
      if (r % 2 === 0) {
        roundsUs.coffer.push(timeRound(cofferGet, names));
        roundsUs.baseline.push(timeRound(baselineGet, names));
      } else {
        roundsUs.baseline.push(timeRound(baselineGet, names));
        roundsUs.coffer.push(timeRound(cofferGet, names));
      }
    }
    const getUs = { coffer: median(roundsUs.coffer), baseline: median(roundsUs.baseline) };
    // The median of the per-round ratios (each pair ran back to back): a check on the table's
    // ratio of medians when the machine is noisy.
    const paired = median(roundsUs.coffer.map((c, i) => c / roundsUs.baseline[i]!));
    progress(
      `${count(secrets)} secrets: get ${getUs.coffer.toFixed(2)} µs vs baseline ${getUs.baseline.toFixed(2)} µs, ` +
        `paired ratio ${paired.toFixed(2)}× (rounds, µs: coffer ${fmtList(roundsUs.coffer)}; baseline ${fmtList(roundsUs.baseline)})`,
    );
    return { secrets, populateMs, fileBytes, getUs, roundsUs };
  } finally {
    store?.close();
    baseline?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The get benchmark: 10k, then (unless quick) 1M secrets; the table rows. */
export async function benchGet(options: BenchOptions): Promise<Row[]> {
  const sizes = options.quick ? [10_000] : [10_000, 1_000_000];
  const results: GetSizeResult[] = [];
  for (const n of sizes) results.push(await benchGetSize(n));
  const rows: Row[] = [];
  for (const r of results) {
    rows.push({
      benchmark: `store.get, ${count(r.secrets)} secrets (µs/get, median of ${ROUNDS}×${count(GETS_PER_ROUND)} random names)`,
      coffer: perGet(r.getUs.coffer),
      baseline: perGet(r.getUs.baseline),
      ratio: ratioCell(r.getUs.coffer / r.getUs.baseline, GET_RATIO_TARGET),
      target: `≤ ${GET_RATIO_TARGET}×`,
    });
  }
  const small = results[0];
  const large = results[1];
  if (small !== undefined && large !== undefined) {
    const growth = { coffer: large.getUs.coffer / small.getUs.coffer, baseline: large.getUs.baseline / small.getUs.baseline };
    rows.push({
      benchmark: `store.get cost growth, ${count(small.secrets)} → ${count(large.secrets)} secrets`,
      coffer: `${growth.coffer.toFixed(2)}× ${growth.coffer <= FLAT_TARGET ? "✓" : "✗"}`,
      baseline: `${growth.baseline.toFixed(2)}×`,
      ratio: ratioCell(growth.coffer / growth.baseline),
      target: `flat: coffer ≤ ${FLAT_TARGET}×`,
    });
  }
  for (const r of results) {
    if (r.secrets < 100_000) continue;
    rows.push({
      benchmark: `populate ${count(r.secrets)} secrets (setMany, ${count(BATCH)}/transaction; baseline: bare INSERTs)`,
      coffer: populateCell(r.populateMs.coffer, r.secrets, r.fileBytes.coffer),
      baseline: populateCell(r.populateMs.baseline, r.secrets, r.fileBytes.baseline),
      ratio: ratioCell(r.populateMs.coffer / r.populateMs.baseline),
      target: "— (context)",
    });
  }
  return rows;
}

function perGet(us: number): string {
  return `${us.toFixed(2)} µs (${count(1e6 / us)} ops/s)`;
}

function populateCell(ms: number, n: number, bytes: number): string {
  return `${(ms / 1000).toFixed(1)} s (${((ms * 1000) / n).toFixed(0)} µs/secret, ${(bytes / 2 ** 20).toFixed(0)} MiB)`;
}

function fmtList(xs: readonly number[]): string {
  return xs.map((x) => x.toFixed(1)).join(" ");
}

function fileSize(path: string): number {
  let total = 0;
  for (const f of [path, `${path}-wal`]) {
    try {
      total += statSync(f).size;
    } catch {
      // no WAL file
    }
  }
  return total;
}

if (import.meta.main) {
  const rows = await benchGet(benchOptions());
  process.stdout.write(markdownTable(rows));
}
