/**
 * `Secret`: a value in memory that does not print itself (docs/design.md §6).
 */
import { timingSafeEqual } from "node:crypto";
import { CofferError } from "../errors.ts";

const REDACTED = "[redacted]";
// The symbol util.inspect looks for; Symbol.for avoids loading node:util on the CLI's hot path.
const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** What is known about a secret's version besides its value. */
export interface SecretMeta {
  /** the secret's name, e.g. `db/prod/password` */
  readonly name: string;
  /** the version this value belongs to (1-based) */
  readonly version: number;
  /** when this version was written (ISO 8601, UTC) */
  readonly updatedAt: string;
  /**
   * true when the value came from a cache because the server could not be reached (a client's
   * `staleIfError`; see src/client/cache.ts); absent or false for a value read now
   */
  readonly stale?: boolean;
}

/**
 * A secret value. `String(secret)`, template literals, `JSON.stringify` and `util.inspect`
 * all give `[redacted]`; {@link Secret.reveal} and {@link Secret.bytes} give the value.
 *
 * @example
 * const password = store.get("db/password");
 * console.log(`${password}`);          // [redacted]
 * openDatabase({ password: password.reveal() });
 * password.dispose();                  // zeroes the buffer
 */
export class Secret implements SecretMeta {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string;
  readonly stale: boolean;
  #value: Buffer;
  #disposed = false;

  /** @param value - taken over by the Secret (not copied); zeroed by {@link Secret.dispose} */
  constructor(meta: SecretMeta, value: Buffer) {
    this.name = meta.name;
    this.version = meta.version;
    this.updatedAt = meta.updatedAt;
    this.stale = meta.stale === true;
    this.#value = value;
  }

  /** What is known about this value besides its bytes (`secret.meta.stale`: served from a cache in an outage). */
  get meta(): Required<SecretMeta> {
    return { name: this.name, version: this.version, updatedAt: this.updatedAt, stale: this.stale };
  }

  /** The value as UTF-8 text. */
  reveal(): string {
    return this.#live().toString("utf8");
  }

  /** A copy of the value's bytes (binary-safe). */
  bytes(): Uint8Array {
    return new Uint8Array(this.#live());
  }

  /** Whether `other` holds the same bytes: compared in place (no copy left to zero), in constant time. */
  equals(other: Secret): boolean {
    const [a, b] = [this.#live(), other.#live()];
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Zeroes the value in memory; later reveal()/bytes() throw E_DISPOSED. */
  dispose(): void {
    this.#value.fill(0);
    this.#disposed = true;
  }

  /** True once {@link Secret.dispose} has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }

  [INSPECT](): string {
    return `Secret(${this.name} v${this.version}) ${REDACTED}`;
  }

  #live(): Buffer {
    if (this.#disposed) throw new CofferError("E_DISPOSED", `secret "${this.name}" was used after dispose()`);
    return this.#value;
  }
}

/**
 * A value as JSON carries it: `{ value }` when the bytes are UTF-8 text (kept exactly, a leading
 * BOM included), else `{ valueBase64 }`. The CLI's `get --json`, the server's API and its client
 * all use this one form.
 */
export function jsonValue(bytes: Uint8Array): { value: string } | { valueBase64: string } {
  try {
    return { value: new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes) };
  } catch {
    return { valueBase64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") };
  }
}

/** A secret's metadata, as listed by the store, the server and its client. Never a value. */
export interface SecretListing {
  name: string;
  /** latest version */
  version: number;
  description: string | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
}

/** One version in a secret's history. Never a value. */
/** One version's deletion state, as a delete, undelete or destroy of versions leaves it (issue 16). */
export interface VersionState {
  version: number;
  /** ISO 8601 UTC when it was deleted (reads of it are refused until undeleted), or null */
  deletedAt: string | null;
  /** true once destroyed: its value is gone for good */
  destroyed: boolean;
}

export interface VersionInfo {
  version: number;
  createdAt: string;
  createdBy: string;
  /**
   * true for the version a plain read returns (false for every version of a deleted secret); a
   * read of it is refused while it is itself deleted or destroyed
   */
  current: boolean;
  /** when this version was deleted on its own (reads of it refused until undeleted), or null */
  deletedAt: string | null;
  /** true once this version was destroyed: its value is gone for good */
  destroyed: boolean;
}

/**
 * The E_NOT_FOUND for a read of a version deleted or destroyed on its own (issue 16), or undefined
 * when `info` is neither: deleted names the command that restores it, destroyed says it never comes back.
 */
export function goneVersionError(name: string, info: VersionState | undefined): CofferError | undefined {
  if (info === undefined) return undefined;
  const v = info.version;
  if (info.destroyed) return new CofferError("E_NOT_FOUND", `version ${v} of ${name} was destroyed; its value is gone for good`);
  if (info.deletedAt !== null) return new CofferError("E_NOT_FOUND", `version ${v} of ${name} was deleted; \`coffer undelete ${name} --version ${v}\` restores it`);
  return undefined;
}
