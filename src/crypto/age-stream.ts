/**
 * age encryption of streams, for files that must not be held in memory whole (backups).
 * age-encryption's Encrypter and Decrypter take and give web ReadableStreams (64 KiB chunks,
 * each authenticated); its ASCII armor only does whole buffers, so the armor here is the same
 * encoding done as a stream: the PEM-like BEGIN line, the binary file as base64 in lines of 64
 * characters (48 bytes), the END line — byte for byte what `age.armor.encode` and `age -a` write,
 * and read as strictly as `age.armor.decode` reads.
 */
import { DecryptError } from "../errors.ts";
import { decrypterFor, encrypterFor, type OpenWith, type SealTo } from "./age.ts";

const BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";
const END = "-----END AGE ENCRYPTED FILE-----";
const LINE_BYTES = 48;
const BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;

export type { OpenWith, SealTo } from "./age.ts";

/**
 * Encrypts `plain` as it is read and ASCII-armors the result, also as a stream.
 * @throws CofferError E_INVALID_VALUE for a recipient age does not take
 */
export async function sealStream(plain: ReadableStream<Uint8Array>, to: SealTo): Promise<ReadableStream<Uint8Array>> {
  return (await (await encrypterFor(to)).encrypt(plain)).pipeThrough(armorEncoder());
}

/**
 * Decrypts an age file (armored when `armored`) as it is read. The header is checked before
 * this returns; every 64 KiB of the plaintext is authenticated before it is given out, and the
 * end of the file only when the stream has been read to its end.
 * @param what - how to name the file in an error
 * @throws DecryptError (also from reading the stream) for a wrong key, a damaged or a truncated file
 */
export async function openStream(file: ReadableStream<Uint8Array>, armored: boolean, key: OpenWith, what: string): Promise<ReadableStream<Uint8Array>> {
  const dec = await decrypterFor(key);
  let plain: ReadableStream<Uint8Array>;
  try {
    plain = await dec.decrypt(armored ? file.pipeThrough(armorDecoder()) : file);
  } catch (cause) {
    throw new DecryptError(what, { cause });
  }
  // An error while reading (a chunk that fails authentication, a truncated file, broken armor)
  // becomes the DecryptError a whole-file decryption would have thrown.
  const reader = plain.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (cause) {
        controller.error(new DecryptError(what, { cause }));
        return;
      }
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/** Encodes a binary age file as ASCII armor, as `age.armor.encode` does, chunk by chunk. */
export function armorEncoder(): TransformStream<Uint8Array, Uint8Array> {
  let carry = Buffer.alloc(0);
  const lines = (bytes: Buffer): string => {
    let text = "";
    for (let i = 0; i < bytes.length; i += LINE_BYTES) text += `${bytes.subarray(i, i + LINE_BYTES).toString("base64")}\n`;
    return text;
  };
  return new TransformStream({
    start(controller) {
      controller.enqueue(Buffer.from(`${BEGIN}\n`, "latin1"));
    },
    transform(chunk, controller) {
      const all = carry.length === 0 ? Buffer.from(chunk) : Buffer.concat([carry, chunk]);
      // A short tail waits for the next chunk: only the file's last line may be short.
      const whole = all.length - (all.length % LINE_BYTES);
      if (whole > 0) controller.enqueue(Buffer.from(lines(all.subarray(0, whole)), "latin1"));
      carry = Buffer.from(all.subarray(whole));
    },
    flush(controller) {
      controller.enqueue(Buffer.from(`${lines(carry)}${END}\n`, "latin1"));
    },
  });
}

/**
 * Decodes ASCII armor as `age.armor.decode` does (whitespace around it ignored, LF or CRLF,
 * otherwise strict: lines of 64 characters but the last, which is 4 to 64 and a multiple of
 * 4), line by line. A malformed armor errors the stream.
 */
export function armorDecoder(): TransformStream<Uint8Array, Uint8Array> {
  let pending = "";
  let state: "begin" | "body" | "end" = "begin";
  let lastLine = false;
  const fail = (why: string): never => {
    throw new Error(`invalid ASCII armor: ${why}`);
  };
  // One line (without its LF); gives the base64 it carries, or "".
  const line = (raw: string): string => {
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (state === "begin") {
      if (text.trim() === "") return "";
      if (text.trimStart() !== BEGIN) fail("invalid header");
      state = "body";
    } else if (state === "body") {
      if (text.trimEnd() === END) {
        state = "end";
        return "";
      }
      if (lastLine || text.length === 0 || text.length > 64 || text.length % 4 !== 0) fail("invalid line length");
      if (!BASE64_LINE.test(text)) fail("invalid base64");
      lastLine = text.length < 64 || text.endsWith("=");
      return text;
    } else if (text.trim() !== "") {
      fail("data after the footer");
    }
    return "";
  };
  return new TransformStream({
    transform(chunk, controller) {
      const text = pending + Buffer.from(chunk).toString("latin1");
      let base64 = "";
      let from = 0;
      for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", from)) {
        base64 += line(text.slice(from, nl));
        from = nl + 1;
      }
      pending = text.slice(from);
      if (pending.length > 1024) fail("a line is too long");
      // Every line but the last is 64 characters, so the lines join into one valid base64.
      if (base64 !== "") controller.enqueue(Buffer.from(base64, "base64"));
    },
    flush(controller) {
      const base64 = pending === "" ? "" : line(pending);
      if (base64 !== "") controller.enqueue(Buffer.from(base64, "base64"));
      if (state !== "end") fail("invalid footer");
    },
  });
}
