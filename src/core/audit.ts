/**
 * The hash-chained audit log (docs/design.md §4): each record carries
 * SHA-256(previous record's hash ‖ this record's canonical JSON). No value ever enters a record.
 */
import { hash } from "node:crypto";

/** What an audit record says. `detail` holds names, counts and versions, never values. */
export interface AuditEntry {
  /** what happened: init, set, get, rm, purge, rollback, export, import, deliver, … */
  action: string;
  /** the secret concerned, if any */
  name: string | null;
  /** the version concerned, if any */
  version: number | null;
  /** extra facts (never a value) */
  detail: Record<string, unknown> | null;
}

/** A stored audit record. */
export interface AuditRecord extends AuditEntry {
  seq: number;
  /** ISO 8601 UTC */
  at: string;
  /** who: the identity's name */
  actor: string;
  /** hex SHA-256 chain hash */
  hash: string;
}

/** The hash before the first record. */
export const GENESIS_HASH = Buffer.alloc(32);

/** JSON with object keys sorted at every depth and no whitespace: one encoding per record. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/**
 * The chain hash of a record, given the previous record's hash: SHA-256 of `prev` and the
 * record's canonical JSON, its keys written out in sorted order (every audited request hashes one).
 */
export function chainHash(prev: Uint8Array, r: Omit<AuditRecord, "hash">): Buffer {
  const q = JSON.stringify;
  const body = `{"action":${q(r.action)},"actor":${q(r.actor)},"at":${q(r.at)},"detail":${canonicalJson(r.detail)},"name":${q(r.name)},"seq":${q(r.seq)},"version":${q(r.version)}}`;
  return hash("sha256", Buffer.concat([prev, Buffer.from(body, "utf8")]), "buffer");
}

/** The outcome of verifying a chain. */
export interface AuditVerification {
  ok: boolean;
  /** records checked */
  records: number;
  /** seq of the first record that does not verify */
  brokenAt?: number;
  /** why it does not verify */
  reason?: string;
}

/**
 * Recomputes a chain one record at a time, for records that come in pages (a database cursor).
 * Feed records oldest first; `add` returns the failure at the first record that does not verify.
 */
export class ChainVerifier {
  #prev: Uint8Array = GENESIS_HASH;
  #expectSeq = 1;
  #records = 0;

  /**
   * @param start - resume after a chain head already verified: its record count and the hex
   *   hash of its last record (default: the genesis, no record)
   */
  constructor(start?: { records: number; hash: string }) {
    if (start !== undefined && start.records > 0) {
      this.#prev = Buffer.from(start.hash, "hex");
      this.#expectSeq = start.records + 1;
      this.#records = start.records;
    }
  }

  /** Checks the next record; the failure if it breaks the chain, else undefined. */
  add(r: AuditRecord): AuditVerification | undefined {
    if (r.seq !== this.#expectSeq) return { ok: false, records: this.#records, brokenAt: r.seq, reason: `record ${this.#expectSeq} is missing` };
    const h = chainHash(this.#prev, r);
    if (h.toString("hex") !== r.hash) return { ok: false, records: this.#records, brokenAt: r.seq, reason: "hash does not match its content and predecessor" };
    this.#prev = h;
    this.#expectSeq++;
    this.#records++;
    return undefined;
  }

  /** The outcome when every record added so far verified. */
  get ok(): AuditVerification {
    return { ok: true, records: this.#records };
  }
}

/**
 * Recomputes the chain over records in `seq` order.
 * @param records - every record, oldest first
 */
export function verifyChain(records: Iterable<AuditRecord>): AuditVerification {
  const verifier = new ChainVerifier();
  for (const r of records) {
    const failure = verifier.add(r);
    if (failure !== undefined) return failure;
  }
  return verifier.ok;
}

/** An audit row as stored in SQLite: detail as JSON text, the hash as bytes. */
export interface AuditRow extends Omit<AuditRecord, "detail" | "hash"> {
  detail: string | null;
  hash: Uint8Array;
}

/** Converts a stored row to a record. */
export function recordFromRow(r: AuditRow): AuditRecord {
  return {
    seq: r.seq, at: r.at, actor: r.actor, action: r.action, name: r.name, version: r.version,
    detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>),
    hash: Buffer.from(r.hash).toString("hex"),
  };
}

/** {@link verifyChain} over stored rows, oldest first, converted one at a time. */
export function verifyRows(rows: Iterable<AuditRow>): AuditVerification {
  return verifyChain(
    (function* () {
      for (const r of rows) yield recordFromRow(r);
    })(),
  );
}
