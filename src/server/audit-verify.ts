/**
 * `GET /v1/audit/verify` without holding up the server: the chain is checked a page at a time
 * (the storage yields to the event loop between pages), from a checkpoint — the record count
 * and head hash last verified, kept in the meta table and MAC'd with a key derived from the
 * master key — so a routine check recomputes only what was appended since. `full` re-checks
 * everything from the first record. One verification runs at a time: a request that comes while
 * one runs shares it (a full run answers an incremental request too) or waits for it.
 *
 * The checkpoint also catches what recomputing alone cannot: the chain's hashes carry no key, so
 * someone with write access to the database could cut records from the end or rewrite them
 * and every hash after; the record at the checkpoint must still carry the verified hash.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { AuditVerification } from "../core/audit.ts";
import { auditCheckpointKey } from "./keys.ts";
import type { AuditVerifyOptions, ServerStorage } from "../storage/types.ts";

/** The meta key of the checkpoint: `COUNT:HEADHASH:MAC`, all hex but the count. */
export const AUDIT_CHECKPOINT_META = "audit_checkpoint";

/** What a verification gives: the chain's outcome, and what happened to the checkpoint. */
export interface AuditVerifyResult extends AuditVerification {
  /** the records taken as verified from the checkpoint (0 on a full run) */
  fromCheckpoint: number;
}

/** Options of {@link AuditVerifier}: page size and a hook, for tests. */
export type AuditVerifierOptions = Pick<AuditVerifyOptions, "pageSize" | "onPage">;

/** Verifies the server's audit chain from a MAC'd checkpoint, one run at a time. */
export class AuditVerifier {
  readonly #storage: ServerStorage;
  readonly #key: Buffer;
  readonly #options: AuditVerifierOptions;
  #running: { full: boolean; result: Promise<AuditVerifyResult> } | undefined;

  /** @param masterKey - copied from: the caller may wipe it afterwards */
  constructor(storage: ServerStorage, masterKey: Uint8Array, options: AuditVerifierOptions = {}) {
    this.#storage = storage;
    this.#key = auditCheckpointKey(masterKey);
    this.#options = options;
  }

  /** Verifies the chain: after the checkpoint, or all of it with `full`. */
  verify(full: boolean): Promise<AuditVerifyResult> {
    const running = this.#running;
    if (running !== undefined && (running.full || !full)) return running.result;
    const before = running?.result.catch(() => undefined) ?? Promise.resolve(undefined);
    const entry = { full, result: before.then(() => this.#verify(full)) };
    this.#running = entry;
    const clear = (): void => {
      if (this.#running === entry) this.#running = undefined;
    };
    entry.result.then(clear, clear);
    return entry.result;
  }

  async #verify(full: boolean): Promise<AuditVerifyResult> {
    const checkpoint = await this.#readCheckpoint();
    if (checkpoint === "invalid" && !full) {
      return {
        ok: false, records: 0, fromCheckpoint: 0,
        reason: "the stored audit checkpoint does not verify (changed outside the server); GET /v1/audit/verify?full=true re-checks the whole chain",
      };
    }
    const from = full || checkpoint === "invalid" ? undefined : checkpoint;
    const result = await this.#storage.verifyAudit({
      ...this.#options,
      ...(from !== undefined && { from }),
    });
    if (!result.ok) return { ...result, fromCheckpoint: from?.records ?? 0 };
    if (full && checkpoint !== undefined && checkpoint !== "invalid") {
      // Recomputed from the first record; the record at the old checkpoint must still be the one verified then.
      const [at] = await this.#storage.auditLog({ afterSeq: checkpoint.records - 1, limit: 1 });
      if (at === undefined || at.seq !== checkpoint.records || at.hash !== checkpoint.hash) {
        return {
          ok: false, records: result.records, brokenAt: checkpoint.records, fromCheckpoint: 0,
          reason: `record ${checkpoint.records} is ${at === undefined ? "missing" : "not the one verified before"}: the chain was ${at === undefined ? "cut" : "rewritten"}`,
        };
      }
    }
    if (result.records > 0) {
      const [head] = await this.#storage.auditLog({ afterSeq: result.records - 1, limit: 1 });
      if (head !== undefined && head.seq === result.records) await this.#writeCheckpoint(result.records, head.hash);
    }
    return { ...result, fromCheckpoint: from?.records ?? 0 };
  }

  #mac(records: number, hash: string): Buffer {
    return createHmac("sha256", this.#key).update(`${this.#storage.storeId.toString("hex")}\n${records}\n${hash}`, "utf8").digest();
  }

  async #readCheckpoint(): Promise<{ records: number; hash: string } | "invalid" | undefined> {
    const text = await this.#storage.getMeta(AUDIT_CHECKPOINT_META);
    if (text === undefined) return undefined;
    const m = /^([1-9][0-9]{0,15}):([0-9a-f]{64}):([0-9a-f]{64})$/.exec(text);
    if (m === null) return "invalid";
    const records = Number(m[1]);
    const hash = m[2]!;
    const mac = Buffer.from(m[3]!, "hex");
    if (!Number.isSafeInteger(records) || !timingSafeEqual(mac, this.#mac(records, hash))) return "invalid";
    return { records, hash };
  }

  async #writeCheckpoint(records: number, hash: string): Promise<void> {
    await this.#storage.setMeta(AUDIT_CHECKPOINT_META, `${records}:${hash}:${this.#mac(records, hash).toString("hex")}`);
  }
}
