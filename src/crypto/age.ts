/**
 * Everything coffer does with the age format goes through `age-encryption` (typage), loaded
 * lazily: importing it costs ~100 ms, which a command that does not need it must not pay.
 */
import { CofferError, DecryptError } from "../errors.ts";

type AgeModule = typeof import("age-encryption");
let agePromise: Promise<AgeModule> | undefined;

/** How to encrypt: a passphrase (age scrypt) or age recipients (`age1…`). */
export type SealTo = { passphrase: string; logN: number } | { recipients: readonly string[] };

/** What opens an age file: a passphrase or an age identity (`AGE-SECRET-KEY-1…`). */
export type OpenWith = { passphrase: string } | { identity: string };

/**
 * What coffer uses of age-encryption's Encrypter and Decrypter, declared here rather than taken
 * from the package: its declarations need the DOM lib (CryptoKey, WebAuthn), and coffer's
 * published types must check in a Node app without it (test/e2e/app-package.test.ts).
 */
export interface AgeEncrypter {
  encrypt(file: Uint8Array | string): Promise<Uint8Array>;
  encrypt(file: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>>;
}
/** See {@link AgeEncrypter}. */
export interface AgeDecrypter {
  decrypt(file: Uint8Array, outputFormat?: "uint8array"): Promise<Uint8Array>;
  decrypt(file: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>>;
}

function loadAge(): Promise<AgeModule> {
  agePromise ??= import("age-encryption");
  return agePromise;
}

/**
 * An age Encrypter set up for `to`.
 * @throws CofferError E_INVALID_VALUE for a recipient age does not take
 */
export async function encrypterFor(to: SealTo): Promise<AgeEncrypter> {
  const enc = new (await loadAge()).Encrypter();
  if ("passphrase" in to) {
    enc.setPassphrase(to.passphrase);
    enc.setScryptWorkFactor(to.logN);
    return enc;
  }
  for (const r of to.recipients) {
    try {
      enc.addRecipient(r);
    } catch (cause) {
      throw new CofferError("E_INVALID_VALUE", `not a valid age recipient: ${r.slice(0, 80)}`, { cause });
    }
  }
  return enc;
}

/** An age Decrypter set up with `key`. */
export async function decrypterFor(key: OpenWith): Promise<AgeDecrypter> {
  const dec = new (await loadAge()).Decrypter();
  if ("passphrase" in key) dec.addPassphrase(key.passphrase);
  else dec.addIdentity(key.identity);
  return dec;
}

/** Generates a new native X25519 age identity (`AGE-SECRET-KEY-1…`). */
export async function generateAgeIdentity(): Promise<string> {
  return (await loadAge()).generateX25519Identity();
}

/**
 * Encrypts `data` to one or more age recipients (binary age format).
 * @param recipients - `age1…` strings
 */
export async function encryptToRecipients(data: Uint8Array, recipients: readonly string[]): Promise<Uint8Array> {
  return (await encrypterFor({ recipients })).encrypt(data);
}

/**
 * Decrypts an age file (binary or armored) with an identity string.
 * @param what - how to name the file in an error
 * @throws DecryptError when the identity does not match or the file is tampered
 */
export function decryptWithIdentity(file: Uint8Array, identity: string, what: string): Promise<Uint8Array> {
  return decrypt(file, { identity }, what);
}

/**
 * Encrypts `data` with a passphrase (age scrypt recipient) and ASCII-armors it.
 * @param logN - scrypt work factor; age's default is 18
 */
export async function encryptWithPassphrase(data: Uint8Array, passphrase: string, logN = 18): Promise<string> {
  const sealed = await (await encrypterFor({ passphrase, logN })).encrypt(data);
  return (await loadAge()).armor.encode(sealed);
}

/** Decrypts a passphrase-encrypted age file (binary or armored). */
export function decryptWithPassphrase(file: Uint8Array, passphrase: string, what: string): Promise<Uint8Array> {
  return decrypt(file, { passphrase }, what);
}

async function decrypt(file: Uint8Array, key: OpenWith, what: string): Promise<Uint8Array> {
  const age = await loadAge();
  const dec = await decrypterFor(key);
  try {
    return await dec.decrypt(armored(file) ? age.armor.decode(Buffer.from(file).toString("utf8")) : file);
  } catch (cause) {
    throw new DecryptError(what, { cause });
  }
}

const ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";
const head = (file: Uint8Array): string => Buffer.from(file.subarray(0, 64)).toString("latin1").trimStart();
const armored = (file: Uint8Array): boolean => head(file).startsWith(ARMOR_BEGIN);

/** True when `file` is an age file, armored or binary. */
export function isAgeFile(file: Uint8Array): boolean {
  return armored(file) || head(file).startsWith("age-encryption.org/v1");
}
