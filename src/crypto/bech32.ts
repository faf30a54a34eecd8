/**
 * Bech32 (BIP-173) as age uses it for keys: no 90-character limit, one case throughout.
 * An encoding with a checksum against typos, not cryptography; here so that reading an
 * identity does not load a general codec library on the CLI's hot path. Tested against
 * `@scure/base` (the codec age-encryption uses) and BIP-173's vectors.
 */

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const;

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATORS[i]!;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const codes = Array.from(hrp, (c) => c.charCodeAt(0));
  return [...codes.map((c) => c >>> 5), 0, ...codes.map((c) => c & 31)];
}

function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] | undefined {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i]!;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & maxv);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) {
    return undefined;
  }
  return out;
}

/** Encodes bytes under a human-readable prefix, in lower case. */
export function bech32Encode(hrp: string, bytes: Uint8Array): string {
  const lower = hrp.toLowerCase();
  const data = convertBits(bytes, 8, 5, true)!;
  const mod = polymod([...hrpExpand(lower), ...data, 0, 0, 0, 0, 0, 0]) ^ 1;
  let out = `${lower}1`;
  for (const d of data) out += CHARSET[d];
  for (let i = 0; i < 6; i++) out += CHARSET[(mod >>> (5 * (5 - i))) & 31];
  return out;
}

/**
 * Decodes a bech32 string.
 * @returns the prefix (lower case) and bytes, or undefined when the string is not valid bech32
 *   (mixed case, bad character, bad checksum, bad padding)
 */
export function bech32Decode(s: string): { prefix: string; bytes: Uint8Array } | undefined {
  const lower = s.toLowerCase();
  if (s !== lower && s !== s.toUpperCase()) return undefined;
  const sep = lower.lastIndexOf("1");
  if (sep < 1 || sep + 7 > lower.length) return undefined;
  const prefix = lower.slice(0, sep);
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    if (c < 33 || c > 126) return undefined;
  }
  const data: number[] = [];
  for (const ch of lower.slice(sep + 1)) {
    const d = CHARSET.indexOf(ch);
    if (d < 0) return undefined;
    data.push(d);
  }
  if (polymod([...hrpExpand(prefix), ...data]) !== 1) return undefined;
  const bytes = convertBits(data.slice(0, -6), 5, 8, false);
  return bytes === undefined ? undefined : { prefix, bytes: Uint8Array.from(bytes) };
}
