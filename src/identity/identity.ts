/**
 * The user's identity: a standard age identity file (docs/design.md §3–4), plain or
 * passphrase-encrypted with age's scrypt recipient, from which the signing key and card derive.
 *
 * The plain file is what `age-keygen` writes plus coffer's own comment lines, so `age -d -i`
 * and SOPS read it as it is:
 *
 *     # coffer identity
 *     # name: alice
 *     # created: 2026-11-23T08:00:00.000Z
 *     # public key: age1…
 *     AGE-SECRET-KEY-1…
 */
import { userInfo } from "node:os";
import { CofferError } from "../errors.ts";
import { decryptWithPassphrase, encryptWithPassphrase, generateAgeIdentity, isAgeFile } from "../crypto/age.ts";
import { decodeAgeSecretKey, deriveSigningKey, recipientOf, type SigningKey } from "../crypto/keys.ts";
import { assertSecureParents, createPrivateFile, readPrivateFile } from "../core/fs-secure.ts";
import { homeOf } from "../core/paths.ts";
import { assertMemberName, formatCard } from "./card.ts";

/** A loaded identity. Holds the secret key in memory: do not log it. */
export interface Identity {
  /** the identity's name (the `# name:` comment), used as the actor in audit records */
  readonly name: string;
  /** the age identity string `AGE-SECRET-KEY-1…` */
  readonly secretKey: string;
  /** the 32-byte X25519 scalar */
  readonly secret: Uint8Array;
  /** the age recipient `age1…` */
  readonly recipient: string;
  /** true when the file on disk is passphrase-encrypted */
  readonly encrypted: boolean;
}

/** Where a passphrase comes from when the identity file is encrypted. */
export type PassphraseSource = string | (() => Promise<string>);

/**
 * Parses the text of a plain age identity file: `#` comments, blank lines and exactly one
 * `AGE-SECRET-KEY-1…` line.
 * @throws CofferError E_IDENTITY naming what is wrong (never echoing key material)
 */
export function parseIdentityText(text: string): { secretKey: string; name?: string } {
  const keys: string[] = [];
  let name: string | undefined;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s*name:\s*(\S+)\s*$/.exec(line);
      if (m?.[1] !== undefined) name = m[1];
      continue;
    }
    if (line.startsWith("AGE-SECRET-KEY-PQ-1")) {
      throw new CofferError("E_IDENTITY", `line ${i + 1}: post-quantum age identities are not supported yet; use an X25519 identity (AGE-SECRET-KEY-1…)`);
    }
    if (line.startsWith("AGE-PLUGIN-")) {
      throw new CofferError("E_IDENTITY", `line ${i + 1}: age plugin identities are not supported; use an X25519 identity (AGE-SECRET-KEY-1…)`);
    }
    if (!line.startsWith("AGE-SECRET-KEY-1")) {
      throw new CofferError("E_IDENTITY", `line ${i + 1}: not an age identity line (expected AGE-SECRET-KEY-1… or a # comment)`);
    }
    keys.push(line);
  }
  if (keys.length !== 1) {
    throw new CofferError(
      "E_IDENTITY",
      keys.length === 0 ? "no AGE-SECRET-KEY-1… line in the identity file" : `the identity file holds ${keys.length} keys; coffer needs exactly one`,
    );
  }
  decodeAgeSecretKey(keys[0]!);
  return name === undefined ? { secretKey: keys[0]! } : { secretKey: keys[0]!, name };
}

/** Renders the plain identity file text. */
export function renderIdentityText(secretKey: string, name: string, created = new Date()): string {
  const recipient = recipientOf(decodeAgeSecretKey(secretKey));
  return [
    "# coffer identity: a standard age identity file (age -d -i and SOPS can use it)",
    `# name: ${name}`,
    `# created: ${created.toISOString()}`,
    `# public key: ${recipient}`,
    secretKey,
    "",
  ].join("\n");
}

/** Builds an {@link Identity} from a secret key string and a name. */
export function identityFrom(secretKey: string, name: string, encrypted: boolean): Identity {
  const secret = decodeAgeSecretKey(secretKey);
  return { name, secretKey, secret, recipient: recipientOf(secret), encrypted };
}

/** The default identity name: the login name, if it is a valid name. */
export function defaultIdentityName(): string {
  try {
    const user = userInfo().username;
    assertMemberName(user);
    return user;
  } catch {
    return "me";
  }
}

/** Options of {@link createIdentityFile}. */
export interface CreateIdentityOptions {
  /** where to write the identity (0600, must not exist) */
  path: string;
  /** the identity's name; default: the login name */
  name?: string;
  /** the text of an existing age identity file to adopt instead of generating a key */
  adopt?: string;
  /** encrypt the file with this passphrase (age scrypt, work factor `logN`) */
  passphrase?: string;
  /** scrypt work factor for the passphrase (default 18, age's) */
  logN?: number;
}

/**
 * Generates (or adopts) an age X25519 identity and writes it to `path`, 0600, refusing to
 * overwrite.
 * @returns the identity
 */
export async function createIdentityFile(options: CreateIdentityOptions): Promise<Identity> {
  const adopted = options.adopt === undefined ? undefined : parseIdentityText(options.adopt);
  const name = options.name ?? adopted?.name ?? defaultIdentityName();
  assertMemberName(name);
  const secretKey = adopted?.secretKey ?? (await generateAgeIdentity());
  const text = renderIdentityText(secretKey, name);
  if (options.passphrase !== undefined) {
    if (options.passphrase.length === 0) throw new CofferError("E_INVALID_VALUE", "the passphrase is empty");
    createPrivateFile(options.path, await encryptWithPassphrase(Buffer.from(text), options.passphrase, options.logN ?? 18));
  } else {
    createPrivateFile(options.path, text);
  }
  return identityFrom(secretKey, name, options.passphrase !== undefined);
}

/** Options of {@link loadIdentity}. */
export interface LoadIdentityOptions {
  /** the passphrase, or a function that asks for it, when the file is encrypted */
  passphrase?: PassphraseSource;
  /** environment to read `COFFER_PASSPHRASE_FILE` from (default `process.env`) */
  env?: NodeJS.ProcessEnv;
  /** told before slow work (the scrypt of an encrypted identity takes seconds) */
  progress?: (message: string) => void;
}

/**
 * Reads the identity at `path`, refusing a file others can read or someone else owns, or one
 * in a directory others could write (see {@link assertSecureParents}).
 * An encrypted file is opened with the passphrase from `options.passphrase`, else the file
 * named by `COFFER_PASSPHRASE_FILE`.
 * @throws CofferError E_NOT_INITIALIZED, E_PERMISSIONS, E_IDENTITY or E_DECRYPT
 */
export async function loadIdentity(path: string, options: LoadIdentityOptions = {}): Promise<Identity> {
  assertSecureParents(path, "identity file", homeOf(options.env));
  const raw = readPrivateFile(path, "identity file", () => new CofferError("E_NOT_INITIALIZED", `no identity at ${path}; run \`coffer init\` first`));
  const encrypted = isAgeFile(raw);
  let plain = raw;
  if (encrypted) {
    const passphrase = await readPassphrase(options);
    options.progress?.("unlocking the identity (scrypt, a few seconds)…");
    plain = Buffer.from(await decryptWithPassphrase(raw, passphrase, `identity ${path} (wrong passphrase?)`));
  }
  try {
    const parsed = parseIdentityText(plain.toString("utf8"));
    return identityFrom(parsed.secretKey, parsed.name ?? defaultIdentityName(), encrypted);
  } finally {
    plain.fill(0);
  }
}

/**
 * The passphrase of an encrypted identity: the given string, else `COFFER_PASSPHRASE_FILE`, else
 * what the given function asks for.
 * @param what - names the identity in the error when there is no passphrase at all
 */
export async function readPassphrase(options: LoadIdentityOptions, what = "the identity"): Promise<string> {
  const source = options.passphrase;
  if (typeof source === "string") return source;
  const file = (options.env ?? process.env).COFFER_PASSPHRASE_FILE;
  if (file !== undefined && file !== "") return readPassphraseFile(file);
  if (source !== undefined) return source();
  throw new CofferError(
    "E_IDENTITY",
    `${what} is passphrase-protected and no passphrase was given: set COFFER_PASSPHRASE_FILE or run from a terminal`,
  );
}

/**
 * Reads a passphrase file (must be private to the user), dropping one trailing newline.
 * @throws CofferError E_PERMISSIONS / E_INVALID_VALUE
 */
export function readPassphraseFile(file: string): string {
  const raw = readPrivateFile(file, "passphrase file", () => new CofferError("E_INVALID_VALUE", `passphrase file ${file} does not exist`));
  const text = raw.toString("utf8").replace(/\r?\n$/, "");
  raw.fill(0);
  if (text.length === 0) throw new CofferError("E_INVALID_VALUE", `passphrase file ${file} is empty`);
  return text;
}

/** The identity's signing key (derived, never stored). */
export function signingKeyOf(identity: Identity): SigningKey {
  return deriveSigningKey(identity.secret);
}

/** The identity's one-line public card. */
export function cardOf(identity: Identity): string {
  return formatCard({ name: identity.name, recipient: identity.recipient, signingKey: signingKeyOf(identity).publicKey });
}
