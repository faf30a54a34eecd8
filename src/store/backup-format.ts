/**
 * The backup file format (docs/design.md §4): what is inside the age encryption, how its
 * signature is made and checked, and the age header read without decrypting.
 *
 * A backup is written in format v2, streamed: the plaintext inside age is
 *
 *     {"format":"coffer-backup/v2", "created": ISO 8601, "schema": <PRAGMA user_version>,
 *      "recipient": "age1…" (the identity that made it), "identity": <the identity file's text
 *      exactly as on disk> | null, "head": <the audit chain's signed head, src/store/head.ts>,
 *      "storeBytes": N}                                  one JSON line, then LF
 *     <the SQLite snapshot: exactly N raw bytes>          then LF
 *     {"format":"coffer-backup-signature/v2", "from": <the maker's card>,
 *      "signature": <Ed25519 over "coffer/v2/backup\n" ‖ SHA-256 of every byte above, base64url>}
 *                                                         one JSON line, then LF, then the end
 *
 * so that making and restoring a backup never hold more than a chunk of it: the hash is
 * computed as the bytes stream by, and checked before anything in the backup is trusted.
 * The header line always begins with exactly `{"format":"coffer-backup/v2",`.
 *
 * Format v1 (still read) is one JSON document holding the snapshot as base64 (`"store"`), the
 * other fields as above, then — since backups are signed — a second line
 * `{"format":"coffer-backup-signature/v1", "from", "signature": <Ed25519 over
 * "coffer/v1/backup\n" ‖ the container line's bytes>}`. A backup from before signatures is
 * the container line alone.
 */
import { createHash } from "node:crypto";
import { closeSync } from "node:fs";
import { CofferError } from "../errors.ts";
import { isAgeFile } from "../crypto/age.ts";
import { openStream, type OpenWith } from "../crypto/age-stream.ts";
import { fileChunks, openPrivateNew, readFilePrefix, writeAll } from "../core/fs-secure.ts";
import { verifyEd25519 } from "../crypto/keys.ts";
import { cardFingerprint, parseCard } from "../identity/card.ts";
import type { SignedHead } from "./head.ts";

// A v1 backup's formats (read, no longer written).
const BACKUP_FORMAT = "coffer-backup/v1";
const BACKUP_SIGNATURE_FORMAT = "coffer-backup-signature/v1";
const SIGNATURE_CONTEXT = "coffer/v1/backup\n";

/** The `format` of a streamed backup's header line: what coffer writes. */
export const BACKUP_FORMAT_V2 = "coffer-backup/v2";
const BACKUP_SIGNATURE_FORMAT_V2 = "coffer-backup-signature/v2";
const SIGNATURE_CONTEXT_V2 = "coffer/v2/backup\n";
const V2_PREFIX = `{"format":"${BACKUP_FORMAT_V2}",`;

/** The longest header line of a v2 backup (it holds an identity file, a few hundred bytes). */
const MAX_HEADER_LINE = 1024 * 1024;
const MAX_SIGNATURE_LINE = 16 * 1024;
/** v1 held a store of at most 384 MiB as base64 in one string, and is read whole. */
const MAX_V1_PLAINTEXT = 640 * 1024 * 1024;

/** What a backup says about itself, whichever its format: everything but the snapshot. */
export interface BackupInfo {
  format: typeof BACKUP_FORMAT | typeof BACKUP_FORMAT_V2;
  /** when the snapshot was taken, ISO 8601 UTC */
  created: string;
  /** the snapshot's schema version (`PRAGMA user_version`) */
  schema: number;
  /** the age recipient of the identity that made the backup (public) */
  recipient: string;
  /** the identity file's text exactly as on disk (plain or passphrase-encrypted), or null */
  identity: string | null;
  /** the audit chain's head signed when the backup was made (absent in older backups) */
  head?: SignedHead;
}

/** The JSON document inside a v1 backup: the SQLite snapshot as base64 in `store`. */
export type BackupContainer = BackupInfo & { format: typeof BACKUP_FORMAT; store: string };

/** The header line of a v2 backup: `storeBytes` is the size of the snapshot that follows it. */
export type BackupHeaderLine = BackupInfo & { format: typeof BACKUP_FORMAT_V2; storeBytes: number };

/** A backup read and its signature verified: what it says about itself, and who signed it. */
export interface OpenedBackup {
  info: BackupInfo;
  /** undefined for a v1 backup from before signatures */
  signer: BackupSigner | undefined;
}

/** Who signed a backup, once the signature has verified. */
export interface BackupSigner {
  name: string;
  card: string;
  fingerprint: string;
  /** the Ed25519 public key, base64url */
  signingKey: string;
}

/**
 * Reads the age header of a backup (armored or binary): a passphrase file has exactly one
 * `-> scrypt` stanza; anything else is encrypted to recipients (stanza types listed).
 * @throws CofferError E_DECRYPT when it is not a well-formed age file
 */
export async function readAgeHeader(
  file: Uint8Array,
): Promise<{ kind: "passphrase"; logN: number } | { kind: "recipients"; stanzas: string[] }> {
  const bad = (why: string) => new CofferError("E_DECRYPT", `not a readable age file (${why}): damaged, or not a coffer backup`);
  if (!isAgeFile(file)) throw bad("no age header");
  // The header is at the start: only the first 64 KiB (armored: its first whole lines) are read,
  // so a caller may pass the file's beginning alone. The rest is checked when it is decrypted.
  let binary: Uint8Array = file.subarray(0, AGE_HEADER_PREFIX);
  if (isArmored(file)) {
    const lines = Buffer.from(file.subarray(0, AGE_HEADER_PREFIX)).toString("latin1").trimStart().split("\n").map((l) => l.replace(/\r$/, ""));
    lines.shift();
    const body: string[] = [];
    for (const line of lines.slice(0, -1)) {
      if (line.startsWith("-----END")) break;
      if (line.length === 0 || line.length > 64 || line.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(line)) throw bad("broken ASCII armor");
      body.push(line);
      if (line.length < 64) break;
    }
    binary = Buffer.from(body.join(""), "base64");
  }
  const lines = Buffer.from(binary).toString("latin1").split("\n");
  if (lines[0] !== "age-encryption.org/v1") throw bad("unknown version line");
  const end = lines.findIndex((l) => l.startsWith("---"));
  const header = lines.slice(1, end === -1 ? undefined : end);
  if (header.length > 0 && !header[0]!.startsWith("-> ")) throw bad("a body line before any stanza");
  // Each stanza as [type, ...args].
  const stanzas = header.filter((l) => l.startsWith("-> ")).map((l) => l.slice(3).split(" "));
  if (end === -1 || stanzas.length === 0) throw bad("no complete header");
  const scrypt = stanzas.find((s) => s[0] === "scrypt");
  if (scrypt !== undefined) {
    const logN = Number(scrypt[2]);
    if (stanzas.length !== 1 || !Number.isSafeInteger(logN)) throw bad("a scrypt stanza must be the only one");
    return { kind: "passphrase", logN };
  }
  return { kind: "recipients", stanzas: stanzas.map((s) => s[0]!) };
}

/** How much of a backup file {@link readAgeHeader} reads. */
export const AGE_HEADER_PREFIX = 64 * 1024;

/** True when an age file (or its beginning) is ASCII-armored. */
export function isArmored(file: Uint8Array): boolean {
  return Buffer.from(file.subarray(0, 64)).toString("latin1").trimStart().startsWith("-----BEGIN");
}

/**
 * The plaintext of a v2 backup, made as it is read: the header line, the snapshot's bytes from
 * `store` (which must give exactly `header.storeBytes`), and the signature line, signed by
 * `sign` over the SHA-256 of everything before it.
 */
export function backupPlaintext(
  header: Omit<BackupHeaderLine, "format">,
  store: AsyncIterable<Uint8Array>,
  sign: (message: Buffer) => { card: string; signature: Buffer },
): ReadableStream<Uint8Array> {
  async function* parts(): AsyncGenerator<Uint8Array> {
    const hash = createHash("sha256");
    const line = Buffer.from(`${JSON.stringify({ format: BACKUP_FORMAT_V2, ...header })}\n`, "utf8");
    hash.update(line);
    yield line;
    let n = 0;
    for await (const chunk of store) {
      n += chunk.length;
      if (n > header.storeBytes) break;
      hash.update(chunk);
      yield chunk;
    }
    if (n !== header.storeBytes) throw new CofferError("E_INTEGRITY", "the store's snapshot changed size while it was read");
    const lf = Buffer.from("\n");
    hash.update(lf);
    yield lf;
    const signed = sign(Buffer.concat([Buffer.from(SIGNATURE_CONTEXT_V2), hash.digest()]));
    yield Buffer.from(`${JSON.stringify({ format: BACKUP_SIGNATURE_FORMAT_V2, from: signed.card, signature: signed.signature.toString("base64url") })}\n`, "utf8");
  }
  return ReadableStream.from(parts());
}

/**
 * Decrypts the backup `file` with `key` into the new private file `into`, reading the plaintext
 * as it streams by, either format: the snapshot's bytes go to `into` as they come (v2; a v1
 * backup is read whole, as it was written), and the signature is verified against the card in
 * its line (who that card must be is the caller's check) before the header's fields are looked at.
 * @param what - how to name the file in a decryption error
 * @throws CofferError E_SIGNATURE (no, bad or broken signature), E_INTEGRITY (not a coffer
 *   backup, malformed fields), E_DECRYPT (wrong key, damaged or truncated file)
 */
export async function decryptBackup(file: string, key: OpenWith, what: string, into: string): Promise<OpenedBackup> {
  const fd = openPrivateNew(into);
  const sink = (chunk: Uint8Array) => writeAll(fd, chunk);
  try {
    const r = new PlainReader(await openStream(fileChunks(file), isArmored(readFilePrefix(file, 64)), key, what));
    try {
      return (await r.startsWith(V2_PREFIX)) ? await readV2(r, sink) : await readV1(r, sink);
    } finally {
      r.release();
    }
  } finally {
    closeSync(fd);
  }
}

async function readV2(r: PlainReader, storeSink: (chunk: Uint8Array) => void): Promise<OpenedBackup> {
  const broken = (why: string) => new CofferError("E_INTEGRITY", `the backup decrypted but ${why}: damaged or not a coffer backup`);
  const hash = createHash("sha256");
  const line = await r.line(MAX_HEADER_LINE);
  if (line === undefined) throw broken("its header line is too long or unterminated");
  hash.update(line).update("\n");
  const header = jsonOf(line, () => broken("its header line is not JSON"));
  const size = header.storeBytes;
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw broken("its header has no store size");
  const whole = await r.pipe(size as number, (chunk) => {
    hash.update(chunk);
    storeSink(chunk);
  });
  if (!whole || (await r.atEnd())) throw broken("it ends inside its store");
  if ((await r.line(0)) === undefined) throw broken("its store is not the size its header says");
  hash.update("\n");
  const sig = await r.line(MAX_SIGNATURE_LINE);
  if (sig === undefined) {
    throw new CofferError("E_SIGNATURE", "the backup carries no signature (a v2 backup is always signed): forged or truncated backup");
  }
  if (!(await r.atEnd())) throw broken("there are bytes after its signature");
  const signer = verifySignatureLine(sig, BACKUP_SIGNATURE_FORMAT_V2, Buffer.concat([Buffer.from(SIGNATURE_CONTEXT_V2), hash.digest()]));
  const { storeBytes: _size, ...info } = checkFields<BackupHeaderLine>(header, BACKUP_FORMAT_V2);
  return { info, signer };
}

async function readV1(r: PlainReader, storeSink: (chunk: Uint8Array) => void): Promise<OpenedBackup> {
  const plain = await r.all(MAX_V1_PLAINTEXT);
  // JSON.stringify never writes a raw newline, so the first one ends the container line.
  const nl = plain.indexOf(0x0a);
  const body = nl === -1 ? plain : plain.subarray(0, nl);
  const signer = nl === -1
    ? undefined
    : verifySignatureLine(plain.subarray(nl + 1), BACKUP_SIGNATURE_FORMAT, Buffer.concat([Buffer.from(SIGNATURE_CONTEXT), body]));
  const container = jsonOf(body, () => new CofferError("E_INTEGRITY", "the backup decrypted but holds no coffer backup (not JSON)"));
  const { store, ...info } = checkFields<BackupContainer>(container, BACKUP_FORMAT);
  const snapshot = Buffer.from(store, "base64");
  storeSink(snapshot);
  snapshot.fill(0);
  return { info, signer };
}

function jsonOf(bytes: Buffer, notJson: () => CofferError): Record<string, unknown> {
  try {
    return JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw notJson();
  }
}

// Verifies a signature line of `format` over `message`; gives its signer.
function verifySignatureLine(text: Buffer, format: string, message: Buffer): BackupSigner {
  const forged = (why: string) => new CofferError("E_SIGNATURE", `the backup's signature ${why}: forged or tampered backup`);
  const line = jsonOf(text, () => forged("line is not JSON")) as Record<string, unknown> | null;
  if (line?.format !== format || typeof line.from !== "string" || typeof line.signature !== "string") {
    throw forged(`line is not a ${format}`);
  }
  let card;
  try {
    card = parseCard(line.from);
  } catch {
    throw forged("names a malformed card");
  }
  const signature = Buffer.from(line.signature, "base64url");
  if (!verifyEd25519(card.signingKey, message, signature)) throw forged(`does not verify against its signer card "${card.name}"`);
  return { name: card.name, card: line.from, fingerprint: cardFingerprint(line.from), signingKey: card.signingKey };
}

// The fields of a v1 container or a v2 header line (which has storeBytes, not store).
function checkFields<T extends BackupInfo>(c: Record<string, unknown>, format: T["format"]): T {
  if (c === null || typeof c !== "object" || Array.isArray(c)) {
    throw new CofferError("E_INTEGRITY", "the backup decrypted but holds no coffer backup");
  }
  if (c.format !== format) {
    throw new CofferError(
      "E_INTEGRITY",
      typeof c.format === "string" && c.format.startsWith("coffer-backup/")
        ? `the backup's format ${JSON.stringify(c.format.slice(0, 40))} is newer than this coffer knows (${BACKUP_FORMAT_V2}); upgrade coffer`
        : "the backup decrypted but is not a coffer backup (no coffer-backup format)",
    );
  }
  const field = (ok: boolean, name: string) => {
    if (!ok) throw new CofferError("E_INTEGRITY", `the backup's "${name}" field is missing or malformed`);
  };
  field(typeof c.created === "string" && !Number.isNaN(Date.parse(c.created)), "created");
  field(Number.isSafeInteger(c.schema) && (c.schema as number) >= 1, "schema");
  field(typeof c.recipient === "string" && c.recipient.startsWith("age1"), "recipient");
  if (format === BACKUP_FORMAT) {
    field(typeof c.store === "string" && c.store.length > 0 && c.store.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(c.store), "store");
  }
  field(c.identity === null || (typeof c.identity === "string" && c.identity.length > 0), "identity");
  field(c.head === undefined || (typeof c.head === "object" && c.head !== null), "head");
  return c as unknown as T;
}

// Reads a plaintext stream as lines, exact byte counts or the whole rest, holding no more than
// a chunk beyond what the caller asked for (a line has a limit).
class PlainReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Buffer = Buffer.alloc(0);
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async #more(): Promise<boolean> {
    if (this.#done) return false;
    const next = await this.#reader.read();
    if (next.done) {
      this.#done = true;
      return false;
    }
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    return true;
  }

  async startsWith(prefix: string): Promise<boolean> {
    const p = Buffer.from(prefix, "utf8");
    while (this.#buf.length < p.length && (await this.#more()));
    return this.#buf.subarray(0, p.length).equals(p);
  }

  /** The next line without its LF; undefined when none ends within `max` bytes. */
  async line(max: number): Promise<Buffer | undefined> {
    let from = 0;
    for (;;) {
      const nl = this.#buf.indexOf(0x0a, from);
      if (nl !== -1) {
        if (nl > max) return undefined;
        const line = this.#buf.subarray(0, nl);
        this.#buf = this.#buf.subarray(nl + 1);
        return line;
      }
      if (this.#buf.length > max) return undefined;
      from = this.#buf.length;
      if (!(await this.#more())) return undefined;
    }
  }

  /** Gives the next `n` bytes to `sink` as they come; false when the stream ends first. */
  async pipe(n: number, sink: (chunk: Buffer) => void): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length === 0 && !(await this.#more())) return false;
      const part = this.#buf.subarray(0, Math.min(left, this.#buf.length));
      this.#buf = this.#buf.subarray(part.length);
      left -= part.length;
      sink(part);
    }
    return true;
  }

  /** True when nothing is left (the stream read to its end, which authenticates it). */
  async atEnd(): Promise<boolean> {
    while (this.#buf.length === 0) if (!(await this.#more())) return true;
    return false;
  }

  /** Everything left; refused beyond `max` bytes. */
  async all(max: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let size = 0;
    do {
      parts.push(this.#buf);
      size += this.#buf.length;
      this.#buf = Buffer.alloc(0);
      if (size > max) throw new CofferError("E_INTEGRITY", "the backup decrypted but is larger than a v1 backup can be: not a coffer backup");
    } while (await this.#more());
    return Buffer.concat(parts, size);
  }

  /** Lets go of the stream, cancelling it (and closing its file) when it was not read to its end. */
  release(): void {
    if (!this.#done) this.#reader.cancel().catch(() => undefined);
    this.#reader.releaseLock();
  }
}
