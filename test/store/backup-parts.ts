/** Test helpers: take a v2 backup's plaintext apart, and build a v1 one from it. */
import type { BackupContainer, BackupHeaderLine } from "../../src/store/backup.ts";

export interface V2Parts {
  headerLine: string;
  header: BackupHeaderLine;
  snapshot: Buffer;
  signatureLine: string;
}

/** Splits a v2 plaintext: header line, snapshot bytes, signature line. */
export function splitV2(plain: Uint8Array): V2Parts {
  const buf = Buffer.from(plain);
  const nl = buf.indexOf(0x0a);
  const headerLine = buf.subarray(0, nl).toString("utf8");
  const header = JSON.parse(headerLine) as BackupHeaderLine;
  const snapshot = Buffer.from(buf.subarray(nl + 1, nl + 1 + header.storeBytes));
  const tail = buf.subarray(nl + 1 + header.storeBytes).toString("utf8");
  if (!tail.startsWith("\n") || !tail.endsWith("\n")) throw new Error("not a v2 plaintext");
  return { headerLine, header, snapshot, signatureLine: tail.slice(1, -1) };
}

/** The v1 container (one JSON document, as coffer wrote before v2) of the same backup. */
export function asV1(parts: V2Parts): BackupContainer {
  const { storeBytes: _n, ...rest } = parts.header;
  return { ...rest, format: "coffer-backup/v1", store: parts.snapshot.toString("base64") };
}

/** A v2 plaintext from its parts (unsigned as given: the signature line is taken as it is). */
export function joinV2(headerLine: string, snapshot: Uint8Array, signatureLine: string | null): Buffer {
  return Buffer.concat([
    Buffer.from(`${headerLine}\n`), snapshot, Buffer.from("\n"), Buffer.from(signatureLine === null ? "" : `${signatureLine}\n`),
  ]);
}
