/**
 * Group commit for the server's audit records. Every audited request waits for its record to
 * be committed before it answers (fail closed), so the records of the requests that arrive
 * together are written in one transaction: one commit for many reads, in arrival order.
 */
import { CofferError } from "../errors.ts";
import type { AuditRecord } from "../core/audit.ts";
import type { AuditInput, ServerStorage } from "../storage/types.ts";

/** The most records one transaction takes. */
const MAX_BATCH = 256;

interface Pending {
  entry: AuditInput;
  resolve: (record: AuditRecord) => void;
  reject: (err: CofferError) => void;
}

/** Appends audit records in batches; each `append` resolves once its record is committed. */
export class AuditWriter {
  readonly #storage: ServerStorage;
  readonly #onBatch: (records: number, failed: boolean) => void;
  #queue: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> | undefined;

  /**
   * @param onBatch - told after each batch (for metrics): how many records, and whether it failed
   */
  constructor(storage: ServerStorage, onBatch: (records: number, failed: boolean) => void = () => {}) {
    this.#storage = storage;
    this.#onBatch = onBatch;
  }

  /**
   * Queues a record and waits for its commit.
   * @throws CofferError E_UNAVAILABLE when the batch could not be written: the caller must fail
   *   its request and return nothing it read
   */
  append(entry: AuditInput): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry: { ...entry, at: entry.at ?? new Date().toISOString() }, resolve, reject });
      if (!this.#scheduled && this.#flushing === undefined) {
        this.#scheduled = true;
        // After this turn's I/O callbacks: the requests parsed together share one commit.
        setImmediate(() => {
          this.#scheduled = false;
          this.#flushing = this.#flush().finally(() => {
            this.#flushing = undefined;
          });
        });
      }
    });
  }

  /** Resolves when everything queued so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.#flushing !== undefined || this.#scheduled || this.#queue.length > 0) {
      await (this.#flushing ?? new Promise((r) => setImmediate(r)));
    }
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      try {
        const records = await this.#storage.appendAudit(batch.map((p) => p.entry));
        this.#onBatch(batch.length, false);
        batch.forEach((p, i) => p.resolve(records[i]!));
      } catch (err) {
        this.#onBatch(batch.length, true);
        const failure = new CofferError(
          "E_UNAVAILABLE",
          "the audit log could not be written, so the request was refused (fail closed); check the server's database and its log",
          { cause: err },
        );
        for (const p of batch) p.reject(failure);
      }
    }
  }
}
