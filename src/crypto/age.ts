/**
 * Everything coffer does with the age format goes through `age-encryption` (typage), loaded
 * lazily: importing it costs ~100 ms, which a command that does not need it must not pay.
 */
import { CofferError, DecryptError } from "../errors.ts";

type AgeModule = typeof import("age-encryption");
let agePromise: Promise<AgeModule> | undefined;

function loadAge(): Promise<AgeModule> {
  agePromise ??= import("age-encryption");
  return agePromise;
}

/** Generates a new native X25519 age identity (`AGE-SECRET-KEY-1…`). */
export async function generateAgeIdentity(): Promise<string> {
  const age = await loadAge();
  return age.generateX25519Identity();
}

/**
 * Encrypts `data` to one or more age recipients (binary age format).
 * @param recipients - `age1…` strings
 */
export async function encryptToRecipients(data: Uint8Array, recipients: readonly string[]): Promise<Uint8Array> {
  const age = await loadAge();
  const enc = new age.Encrypter();
  for (const r of recipients) {
    try {
      enc.addRecipient(r);
    } catch (cause) {
      throw new CofferError("E_INVALID_VALUE", `not a valid age recipient: ${r.slice(0, 80)}`, { cause });
    }
  }
  return enc.encrypt(data);
}

/**
 * Decrypts an age file (binary or armored) with an identity string.
 * @param what - how to name the file in an error
 * @throws DecryptError when the identity does not match or the file is tampered
 */
export function decryptWithIdentity(file: Uint8Array, identity: string, what: string): Promise<Uint8Array> {
  return decrypt(file, (dec) => dec.addIdentity(identity), what);
}

/**
 * Encrypts `data` with a passphrase (age scrypt recipient) and ASCII-armors it.
 * @param logN - scrypt work factor; age's default is 18
 */
export async function encryptWithPassphrase(data: Uint8Array, passphrase: string, logN = 18): Promise<string> {
  const age = await loadAge();
  const enc = new age.Encrypter();
  enc.setPassphrase(passphrase);
  enc.setScryptWorkFactor(logN);
  return age.armor.encode(await enc.encrypt(data));
}

/** Decrypts a passphrase-encrypted age file (binary or armored). */
export function decryptWithPassphrase(file: Uint8Array, passphrase: string, what: string): Promise<Uint8Array> {
  return decrypt(file, (dec) => dec.addPassphrase(passphrase), what);
}

async function decrypt(file: Uint8Array, setup: (dec: InstanceType<AgeModule["Decrypter"]>) => void, what: string): Promise<Uint8Array> {
  const age = await loadAge();
  const dec = new age.Decrypter();
  setup(dec);
  try {
    return await dec.decrypt(dearmor(age, file));
  } catch (cause) {
    throw new DecryptError(what, { cause });
  }
}

const ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";

/** True when `file` is an age file, armored or binary. */
export function isAgeFile(file: Uint8Array): boolean {
  const head = Buffer.from(file.subarray(0, 64)).toString("latin1").trimStart();
  return head.startsWith(ARMOR_BEGIN) || head.startsWith("age-encryption.org/v1");
}

function dearmor(age: AgeModule, file: Uint8Array): Uint8Array {
  const text = Buffer.from(file.subarray(0, 64)).toString("latin1").trimStart();
  return text.startsWith(ARMOR_BEGIN) ? age.armor.decode(Buffer.from(file).toString("utf8")) : file;
}
