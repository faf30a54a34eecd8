/**
 * Random values for `coffer set --generate`: uniform over the charset (rejection sampling in
 * `crypto.randomInt`), from the OS CSPRNG.
 */
import { randomBytes, randomInt } from "node:crypto";
import { CofferError } from "../errors.ts";

/** The charsets `--generate` offers. */
export const CHARSETS = ["alnum", "hex", "base64", "words"] as const;
export type Charset = (typeof CHARSETS)[number];

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** Default length: 32 characters (≈190 bits as alnum), or 7 words (77 bits). */
export function defaultLength(charset: Charset): number {
  return charset === "words" ? 7 : 32;
}

/**
 * Generates a random value.
 * @param length - characters (alnum, hex, base64) or words (words); 1–4096
 * @returns the value; `words` are BIP-39 English words joined by `-`
 */
export async function generateValue(charset: Charset, length = defaultLength(charset)): Promise<string> {
  if (!Number.isSafeInteger(length) || length < 1 || length > 4096) {
    throw new CofferError("E_INVALID_VALUE", "invalid --length: must be a whole number from 1 to 4096");
  }
  switch (charset) {
    case "alnum":
      return Array.from({ length }, () => ALNUM[randomInt(ALNUM.length)]).join("");
    case "hex":
      return randomBytes(Math.ceil(length / 2)).toString("hex").slice(0, length);
    case "base64":
      return randomBytes(Math.ceil((length * 3) / 4)).toString("base64url").slice(0, length);
    case "words": {
      const { wordlist } = await import("@scure/bip39/wordlists/english.js");
      return Array.from({ length }, () => wordlist[randomInt(wordlist.length)]).join("-");
    }
  }
}

/** Checks a `--charset` argument. */
export function parseCharset(s: string): Charset {
  if (!(CHARSETS as readonly string[]).includes(s)) {
    throw new CofferError("E_INVALID_VALUE", `invalid --charset ${JSON.stringify(s)}: one of ${CHARSETS.join(", ")}`);
  }
  return s as Charset;
}

/**
 * How a value was generated, remembered with a secret by `coffer set --generate` so that
 * `coffer rotate` makes the next one the same way (the server's `generate` of a rotation policy
 * has the same shape).
 */
export interface GeneratorSettings {
  charset: Charset;
  /** characters, or words for `words` */
  length: number;
}

/** The longest value {@link generateValue} makes, in characters or words. */
export const MAX_GENERATED_LENGTH = 4096;

/**
 * Checks generator settings (from flags, or read back from a store).
 * @throws CofferError E_INVALID_VALUE naming the bad part
 */
export function checkGenerator(g: { charset: unknown; length: unknown }): GeneratorSettings {
  const charset = parseCharset(String(g.charset));
  const length = g.length;
  if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 1 || length > MAX_GENERATED_LENGTH) {
    throw new CofferError("E_INVALID_VALUE", `invalid --length: must be a whole number from 1 to ${MAX_GENERATED_LENGTH}`);
  }
  return { charset, length };
}

/** What a generator makes, for a message: `32 alnum characters`, `7 words`. */
export function describeGenerator(g: GeneratorSettings): string {
  return `${g.length} ${g.charset === "words" ? "words" : `${g.charset} characters`}`;
}
