/**
 * The on-disk level of the cache of server secrets (src/client/cache.ts), encrypted with age
 * (src/crypto/age.ts; never a cipher of our own, never a plaintext file). docs/design.md §"Cache".
 *
 * The key that encrypts it is, in order:
 * 1. the user's identity (`coffer init`), when it opens without asking: a plain identity file,
 *    or a passphrase-protected one with `COFFER_PASSPHRASE_FILE` (the library never prompts);
 * 2. on a host without an identity, a key file `<cache dir>/cache.key` (an age identity, 0600),
 *    created on first use. It stops a copied cache from being read elsewhere; it does not stop
 *    the same user (or root) on this host, who can read the key file too;
 * 3. nothing: an identity that cannot be opened without a prompt (or is unreadable) keeps the
 *    cache in memory only. The key file is never used in place of an identity the user has.
 *
 * Layout: `<cache dir>` (0700; `$XDG_CACHE_HOME/coffer`, see src/core/paths.ts) holds
 * `secrets/<sha256 hex>.age`, one 0600 file per cached read. The file name is a hash of the
 * scope (server URL and a hash of the token: one token's cache is never another's) and the
 * entry's key (name, version), so names do not show in the listing either. Inside, the age
 * plaintext is JSON that repeats the scope and key; a file that does not decrypt, or holds
 * another scope or key (moved or swapped), is not used.
 */
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { CofferError } from "../errors.ts";
import { cacheDir } from "../core/paths.ts";
import { createPrivateFile, ensurePrivateDir, readPrivateFile, replacePrivateFile } from "../core/fs-secure.ts";
import { resolvePaths } from "../core/paths.ts";
import { decryptWithIdentity, encryptToRecipients, generateAgeIdentity } from "../crypto/age.ts";
import { decodeAgeSecretKey, recipientOf } from "../crypto/keys.ts";
import { loadIdentity } from "../identity/identity.ts";
import type { CacheBacking, CachedValue } from "../client/cache.ts";

/** The key the disk cache is encrypted with. */
export interface CacheKey {
  /** the age identity (`AGE-SECRET-KEY-1…`) */
  secretKey: string;
  /** its recipient (`age1…`) */
  recipient: string;
  /** where it came from, for messages */
  source: "identity" | "key file";
}

/** The name of the key file in the cache dir. */
export const CACHE_KEY_FILE = "cache.key";

/**
 * The disk cache's key (see the module comment), or undefined when the cache must stay in memory.
 * @param dir - the cache dir (default {@link cacheDir})
 */
export async function cacheKeyFor(env: NodeJS.ProcessEnv = process.env, dir = cacheDir(env)): Promise<CacheKey | undefined> {
  const identityPath = resolvePaths({ env }).identity;
  try {
    const id = await loadIdentity(identityPath, { env });
    return { secretKey: id.secretKey, recipient: id.recipient, source: "identity" };
  } catch (err) {
    // No identity on this host: the key file. Any other failure (locked without a passphrase
    // file, bad permissions): memory only.
    if (!(err instanceof CofferError) || err.code !== "E_NOT_INITIALIZED") return undefined;
  }
  ensurePrivateDir(dir);
  const path = join(dir, CACHE_KEY_FILE);
  const missing = (): CofferError => new CofferError("E_NOT_FOUND", "no cache key file");
  let text: string;
  try {
    text = readPrivateFile(path, "cache key file", missing).toString("utf8").trim();
  } catch (err) {
    if (!(err instanceof CofferError) || err.code !== "E_NOT_FOUND") return undefined;
    text = await generateAgeIdentity();
    try {
      createPrivateFile(path, `${text}\n`);
    } catch (e) {
      // Another process made it first: use theirs.
      if (!(e instanceof CofferError) || e.code !== "E_CONFLICT") return undefined;
      text = readPrivateFile(path, "cache key file", missing).toString("utf8").trim();
    }
  }
  try {
    const secret = decodeAgeSecretKey(text);
    const recipient = recipientOf(secret);
    secret.fill(0);
    return { secretKey: text, recipient, source: "key file" };
  } catch {
    return undefined;
  }
}

/** The scope of one server and one token: the URL and a hash of the token (never the token). */
export function cacheScope(url: string, token: string): string {
  return `${url}\n${createHash("sha256").update(token).digest("hex")}`;
}

/**
 * The disk cache of one scope ({@link cacheScope}) in `dir`, encrypted to `key`.
 * @param dir - the cache dir; `secrets/` is made in it (0700)
 */
export function diskCache(dir: string, scope: string, key: CacheKey): CacheBacking {
  const folder = join(dir, "secrets");
  const fileOf = (k: string): string => join(folder, `${createHash("sha256").update(`${scope}\n${k}`).digest("hex")}.age`);
  return {
    async read(k) {
      let sealed: Buffer;
      try {
        // Only a file of the user's own, private (as coffer wrote it), is believed.
        sealed = readPrivateFile(fileOf(k), "cache file", () => new CofferError("E_NOT_FOUND", "not cached"));
      } catch {
        return undefined;
      }
      let plain: Uint8Array;
      try {
        plain = await decryptWithIdentity(sealed, key.secretKey, "a cache file");
      } catch {
        return undefined; // another key's file (a new identity), or damaged: read again from the server
      }
      const text = Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
      try {
        const doc = JSON.parse(text.toString("utf8")) as Record<string, unknown>;
        if (doc.v !== 1 || doc.scope !== scope || doc.key !== k || typeof doc.name !== "string" || typeof doc.version !== "number" ||
          typeof doc.updatedAt !== "string" || typeof doc.fetchedAt !== "number" || typeof doc.value !== "string") return undefined;
        return { name: doc.name, version: doc.version, updatedAt: doc.updatedAt, fetchedAt: doc.fetchedAt, value: Buffer.from(doc.value, "base64") };
      } catch {
        return undefined;
      } finally {
        text.fill(0);
      }
    },
    async write(k, e: CachedValue) {
      ensurePrivateDir(folder);
      const b64 = e.value.toString("base64");
      const plain = Buffer.from(JSON.stringify({ v: 1, scope, key: k, name: e.name, version: e.version, updatedAt: e.updatedAt, fetchedAt: e.fetchedAt, value: b64 }), "utf8");
      try {
        replacePrivateFile(fileOf(k), await encryptToRecipients(plain, [key.recipient]));
      } finally {
        plain.fill(0);
      }
    },
    async remove(k) {
      rmSync(fileOf(k), { force: true });
    },
  };
}

/**
 * {@link diskCache} with its key found on first use ({@link cacheKeyFor}): no identity is read,
 * and nothing is made on disk, until a read misses memory or a value is written. Without a key
 * every call does nothing (the cache stays in memory).
 * @param onKey - told once which key the cache uses, or that it has none
 */
export function lazyDiskCache(env: NodeJS.ProcessEnv, dir: string, scope: string, onKey?: (key: CacheKey | undefined) => void): CacheBacking {
  let backing: Promise<CacheBacking | undefined> | undefined;
  const get = (): Promise<CacheBacking | undefined> => {
    backing ??= cacheKeyFor(env, dir).then((key) => {
      onKey?.(key);
      return key === undefined ? undefined : diskCache(dir, scope, key);
    });
    return backing;
  };
  return {
    read: async (k) => (await get())?.read(k),
    write: async (k, e) => (await get())?.write(k, e),
    remove: async (k) => (await get())?.remove(k),
  };
}
