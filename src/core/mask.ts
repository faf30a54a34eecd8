/**
 * Masking of secret values in a child's output (`coffer run --mask`, runbooks; docs/design.md §6).
 *
 * Every delivered value, each line of a multi-line value, and their usual encodings (base64
 * with and without padding, base64url, the value's part of longer base64 such as HTTP Basic
 * `user:password` at each alignment, URL-encoding, JSON string escaping as common encoders
 * write it, XML/HTML entities) are replaced by
 * `***` in a byte stream, also when an occurrence is split across chunks. Output is held back
 * only as long as it could still be the start of a value: at any time the held bytes are at
 * most the longest suffix of the data seen so far that is a proper prefix of some pattern.
 *
 * Matching is on bytes, so chunks that split a UTF-8 sequence pass through intact. Every
 * position is tried, also inside a match: overlapping matches merge into one `***`, so no tail
 * of an overlapping second secret shows. Bytes outside every match (such as ANSI colour codes
 * around a value) pass through unchanged.
 */
import { Transform } from "node:stream";
import type { TransformCallback } from "node:stream";

/** Values (and lines, and encoded forms) shorter than this many bytes are not masked. */
export const MIN_MASK_LENGTH = 4;

/** Options of {@link createMasker}. */
export interface MaskOptions {
  /** What an occurrence is replaced by; default `***`. */
  readonly replacement?: string | Uint8Array;
  /** Shortest value or line (in bytes) that is masked; default {@link MIN_MASK_LENGTH}. */
  readonly minLength?: number;
}

function toBytes(v: string | Uint8Array): Buffer {
  return typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * The indexes of the values that are too short to be masked (1 to `minLength - 1` bytes), so
 * the caller can warn naming their variables. Empty values are not listed: there is nothing
 * to hide.
 */
export function tooShortToMask(values: readonly (string | Uint8Array)[], minLength = MIN_MASK_LENGTH): number[] {
  return values.flatMap((v, i) => {
    const n = toBytes(v).length;
    return n > 0 && n < minLength ? [i] : [];
  });
}

/** Bytes that `encodeURIComponent` leaves alone: A-Z a-z 0-9 - _ . ! ~ * ' ( ). */
const URI_UNRESERVED = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()") URI_UNRESERVED[c.charCodeAt(0)] = 1;

/** Percent-encodes bytes: equal to `encodeURIComponent` for UTF-8 text, defined for any bytes. */
function percentEncode(b: Buffer, lowerHex = false, formStyle = false): string {
  let s = "";
  for (const byte of b) {
    if (formStyle && byte === 0x20) s += "+";
    else if (URI_UNRESERVED[byte] === 1 && !(formStyle && "!~'()".includes(String.fromCharCode(byte)))) s += String.fromCharCode(byte);
    else {
      const hex = byte.toString(16).padStart(2, "0");
      s += `%${lowerHex ? hex : hex.toUpperCase()}`;
    }
  }
  return s;
}

/**
 * The base64 characters that a value fixes wherever it sits inside longer base64-encoded data
 * (as the password inside `base64("user:" + password)` of HTTP Basic auth): one substring for
 * each of the three byte alignments. Characters that also depend on a neighbouring byte are
 * left out: ceil(4·shift/3) at the start and everything past floor(4·(shift+len)/3) at the end.
 */
function base64Shifts(b: Buffer): string[] {
  const out: string[] = [];
  for (const shift of [0, 1, 2]) {
    const all = Buffer.concat([Buffer.alloc(shift), b]);
    const from = Math.ceil((4 * shift) / 3);
    const to = Math.floor((4 * all.length) / 3);
    if (to > from) {
      out.push(all.toString("base64").slice(from, to));
      out.push(all.toString("base64url").slice(from, to));
    }
  }
  return out;
}

/** Short JSON escapes; every other control character is written as `\u00XX`. */
const JSON_SHORT: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

/** JSON-escapes `str` (no quotes), writing `\uXXXX` for the code units `hex` picks. */
function jsonEscape(str: string, hex: (c: string) => boolean, upper: boolean): string {
  let s = "";
  for (const c of str.split("")) {
    const code = c.charCodeAt(0);
    if (hex(c) || (code < 0x20 && JSON_SHORT[c] === undefined)) {
      const h = code.toString(16).padStart(4, "0");
      s += `\\u${upper ? h.toUpperCase() : h}`;
    } else s += JSON_SHORT[c] ?? c;
  }
  return s;
}

/** The JSON string escapings of `str` (without the quotes) that common encoders write. */
function jsonForms(str: string): string[] {
  const std = JSON.stringify(str).slice(1, -1);
  const nonAscii = (c: string): boolean => c.charCodeAt(0) > 0x7f;
  return [
    std, // JavaScript, and most encoders
    std.replaceAll("/", "\\/"), // PHP's json_encode
    jsonEscape(str, nonAscii, false), // Python's json.dumps (ensure_ascii)
    jsonEscape(str, (c) => nonAscii(c) || `<>&'+"\``.includes(c), true), // .NET's System.Text.Json
    jsonEscape(str, (c) => "<>&\u2028\u2029".includes(c), false), // Go's encoding/json
  ];
}

/** XML and HTML entity escapings of `latin1` (bytes as one char each; only ASCII is replaced). */
function xmlForms(latin1: string): string[] {
  if (!/[&<>"']/.test(latin1)) return [];
  const esc = (quot: string, apos: string, quotes: boolean): string =>
    latin1.replace(/[&<>"']/g, (c) => {
      if (c === "&") return "&amp;";
      if (c === "<") return "&lt;";
      if (c === ">") return "&gt;";
      if (!quotes) return c;
      return c === '"' ? quot : apos;
    });
  return [
    esc("&quot;", "&apos;", true), // XML (.NET SecurityElement.Escape)
    esc("&quot;", "&#39;", true), // HTML (Python html.escape, most templates)
    esc("&#34;", "&#39;", true), // Go's html.EscapeString
    esc("&quot;", "&#x27;", true),
    esc("", "", false), // XML text content (& < > only)
  ];
}

/** The byte patterns masked for one value or line: itself and its encoded forms. */
function forms(b: Buffer): Buffer[] {
  const b64 = b.toString("base64");
  const b64url = b.toString("base64url");
  const ascii = [
    b64,
    b64.replace(/=+$/, ""),
    b64url,
    b64url.padEnd(b64.length, "="),
    ...base64Shifts(b),
    percentEncode(b),
    percentEncode(b, true),
    percentEncode(b, false, true), // application/x-www-form-urlencoded (URLSearchParams)
  ];
  const out = [b, ...ascii.map((t) => Buffer.from(t, "ascii"))];
  // Entities replace ASCII bytes only, so they apply to any bytes, kept byte for byte.
  for (const x of xmlForms(b.toString("latin1"))) out.push(Buffer.from(x, "latin1"));
  // JSON escaping is defined on text: only for values that are valid UTF-8, encoded as UTF-8.
  const str = b.toString("utf8");
  if (Buffer.from(str, "utf8").equals(b)) for (const j of jsonForms(str)) out.push(Buffer.from(j, "utf8"));
  return out;
}

/**
 * Every byte pattern that masking `values` replaces, longest first and without duplicates:
 * each value, each line (split at `\n`, `\r\n`, `\r`) of a multi-line value, and the encoded
 * forms of both; all at least `minLength` bytes.
 */
export function maskPatterns(values: readonly (string | Uint8Array)[], minLength = MIN_MASK_LENGTH): Buffer[] {
  const seen = new Map<string, Buffer>();
  const add = (b: Buffer): void => {
    if (b.length < minLength) return;
    for (const f of forms(b)) if (f.length >= minLength) seen.set(f.toString("latin1"), f);
  };
  for (const v of values) {
    const b = toBytes(v);
    add(b);
    // Lines, split on bytes (latin1 keeps each byte): CR and LF never occur inside a UTF-8 sequence.
    const lines = b.toString("latin1").split(/\r\n|\r|\n/);
    if (lines.length > 1) for (const line of lines) add(Buffer.from(line, "latin1"));
  }
  return [...seen.values()].sort((x, y) => y.length - x.length);
}

/**
 * The matching engine behind {@link createMasker}, without streams: feed chunks, get the
 * masked bytes that can be released now; {@link MaskMatcher.end} releases the rest.
 */
export class MaskMatcher {
  /** Patterns by first byte, longest first: for the last byte of the data (possible holds). */
  readonly #byFirst: (Buffer[] | undefined)[] = new Array(256);
  /** Patterns of 2+ bytes by their first two bytes (`b0 << 8 | b1`), longest first. */
  readonly #byTwo: (Buffer[] | undefined)[] = new Array(65536);
  /** One-byte patterns, by their byte. */
  readonly #single = new Uint8Array(256);
  readonly #replacement: Buffer;
  #held: Buffer = Buffer.alloc(0);
  /** How many bytes at the start of `#held` are inside a region already replaced. */
  #covered = 0;

  /** @param patterns - byte patterns to replace (see {@link maskPatterns}); empty ones are ignored */
  constructor(patterns: readonly Uint8Array[], replacement: string | Uint8Array = "***") {
    this.#replacement = Buffer.from(toBytes(replacement));
    const sorted = patterns.map((p) => Buffer.from(toBytes(p))).filter((p) => p.length > 0).sort((x, y) => y.length - x.length);
    for (const p of sorted) {
      const first = p[0] as number;
      (this.#byFirst[first] ??= []).push(p);
      if (p.length === 1) this.#single[first] = 1;
      else (this.#byTwo[(first << 8) | (p[1] as number)] ??= []).push(p);
    }
  }

  /** How many bytes are held back, waiting to see whether they start a pattern. */
  get heldBytes(): number {
    return this.#held.length;
  }

  /** Takes the next chunk; returns the masked bytes that can be released now. */
  write(chunk: Uint8Array): Buffer {
    const data = this.#held.length === 0 ? toBytes(chunk) : Buffer.concat([this.#held, chunk]);
    return this.#scan(data, false);
  }

  /** Ends the stream: returns the held bytes, masked where they complete a pattern. */
  end(): Buffer {
    const data = this.#held;
    this.#held = Buffer.alloc(0);
    return this.#scan(data, true);
  }

  #scan(data: Buffer, final: boolean): Buffer {
    const out: Buffer[] = [];
    const n = data.length;
    const byFirst = this.#byFirst;
    const byTwo = this.#byTwo;
    // [.., coverEnd) is inside a masked region whose replacement is already out: overlapping
    // matches extend the region, so no tail of a second secret shows behind the first.
    let coverEnd = this.#covered;
    this.#covered = 0;
    let plainStart = coverEnd;
    for (let i = 0; i < n; i++) {
      const first = data[i] as number;
      if (byFirst[first] === undefined) continue;
      // Longest first: 2+ byte patterns sharing the first two bytes, or (at the last byte)
      // every pattern with this first byte; then a one-byte pattern.
      const candidates = i + 1 < n ? byTwo[(first << 8) | (data[i + 1] as number)] : byFirst[first];
      let len = 0;
      if (candidates !== undefined) {
        const rest = n - i;
        for (const p of candidates) {
          if (p.length > rest) {
            // A longer pattern may still complete with the next chunk: hold from here.
            if (!final && data.compare(p, 0, rest, i, n) === 0) {
              if (i < coverEnd) this.#covered = coverEnd - i;
              else if (i > plainStart) out.push(data.subarray(plainStart, i));
              this.#held = Buffer.from(data.subarray(i));
              return Buffer.concat(out);
            }
          } else if (data[i + p.length - 1] === p[p.length - 1] && data.compare(p, 0, p.length, i, i + p.length) === 0) {
            len = p.length;
            break;
          }
        }
      }
      if (len === 0 && this.#single[first] === 1) len = 1;
      if (len === 0) continue;
      if (i >= coverEnd) {
        if (i > plainStart) out.push(data.subarray(plainStart, i));
        out.push(this.#replacement);
      }
      if (i + len > coverEnd) coverEnd = plainStart = i + len;
    }
    this.#held = Buffer.alloc(0);
    if (plainStart < n) out.push(data.subarray(plainStart, n));
    return Buffer.concat(out);
  }
}

/** A Transform that masks secret values in the bytes piped through it. */
export class Masker extends Transform {
  readonly #matcher: MaskMatcher;

  /** @param patterns - byte patterns to replace (see {@link maskPatterns}) */
  constructor(patterns: readonly Uint8Array[], replacement: string | Uint8Array = "***") {
    super();
    this.#matcher = new MaskMatcher(patterns, replacement);
  }

  /** See {@link MaskMatcher.heldBytes}. */
  get heldBytes(): number {
    return this.#matcher.heldBytes;
  }

  // Written strings arrive as Buffers (decodeStrings); an empty output pushes nothing.
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, this.#matcher.write(chunk));
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.#matcher.end());
  }
}

/**
 * A Transform stream that masks `values` as the module comment says (patterns: {@link maskPatterns}).
 * Values shorter than `minLength` bytes are not masked; {@link tooShortToMask} lists them so the caller can warn.
 */
export function createMasker(values: readonly (string | Uint8Array)[], options: MaskOptions = {}): Masker {
  return new Masker(maskPatterns(values, options.minLength), options.replacement);
}

/** Masks a whole buffer at once, as {@link createMasker} would a stream. */
export function maskBytes(values: readonly (string | Uint8Array)[], data: Uint8Array, options: MaskOptions = {}): Buffer {
  const m = new MaskMatcher(maskPatterns(values, options.minLength), options.replacement);
  return Buffer.concat([m.write(data), m.end()]);
}
