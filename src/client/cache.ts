/**
 * The cache of server secrets that lets a client ride out an outage (issue 18), one policy for
 * `connect()` (src/app/connect.ts) and the CLI's `server` provider (src/providers/server.ts):
 *
 * - within `ttl` of a successful read the cached value is served and no request is made;
 * - after it, the server is asked again; when that fails for a reason that says the server is
 *   unreachable or unwell (network error, timeout, 5xx, 429: {@link servesStale}), the cached
 *   value is served until `staleIfError` has passed since it went stale (`fetchedAt + ttl`),
 *   marked `secret.meta.stale` and told to `onStale`; after that the error surfaces;
 * - a refusal (401, 403, 404, any other 4xx) always surfaces, and drops the cached value (a
 *   revoked token or a deleted secret must not be served from the cache later);
 * - `offline` reads make no request: the cached value within the same limits, or E_PROVIDER.
 *
 * Values are held in memory (one Buffer per entry, copied into each Secret handed out, zeroed by
 * {@link SecretCache.clear}) and, when a {@link CacheBacking} is given, on disk: that is
 * src/cache/disk.ts, which encrypts. This module does no I/O itself, and its clock is injectable.
 */
import { CofferError } from "../errors.ts";
import { requireDuration } from "../core/durations.ts";
import { Secret } from "../core/secret.ts";
import { ServerError } from "./server-error.ts";

/** A cache's limits, in milliseconds. */
export interface CacheSettings {
  /** how long a value is served without asking the server */
  ttlMs: number;
  /** how long after `ttl` a value is still served while the server cannot be reached */
  staleIfErrorMs: number;
}

/** The cache options as an app writes them: durations in coffer's grammar (`"5m"`, `"24h"`). */
export interface CacheDurations {
  /** served without a request this long after a read (default `"0s"`: always asked) */
  ttl?: string;
  /** served while the server is unreachable this long after `ttl` (default `"0s"`: never) */
  staleIfError?: string;
}

/** The longest ttl or staleIfError: 30 days. */
export const MAX_CACHE_DURATION_MS = 30 * 86_400_000;

/**
 * Parses cache durations with coffer's duration parser (src/core/durations.ts).
 * @throws CofferError E_INVALID_VALUE for a malformed duration or one over 30d
 */
export function cacheSettings(d: CacheDurations): CacheSettings {
  const parse = (text: string | undefined, what: string): number =>
    text === undefined ? 0 : requireDuration(text, `cache ${what}`, { min: 0, max: MAX_CACHE_DURATION_MS });
  return { ttlMs: parse(d.ttl, "ttl"), staleIfErrorMs: parse(d.staleIfError, "staleIfError") };
}

/** One cached read. */
export interface CachedValue {
  name: string;
  version: number;
  updatedAt: string;
  /** the value's bytes; owned by the cache */
  value: Buffer;
  /** when it was read from the server (ms since the epoch, the cache's clock) */
  fetchedAt: number;
  /** set when the server said it changed: asked again at the next read, whatever the ttl */
  due?: boolean;
}

/** Where cached values are kept besides memory (src/cache/disk.ts: encrypted files). */
export interface CacheBacking {
  /** the entry saved under `key`, or undefined (none, unreadable, or not this key's) */
  read(key: string): Promise<CachedValue | undefined>;
  write(key: string, entry: CachedValue): Promise<void>;
  remove(key: string): Promise<void>;
}

/** What a stale read tells its listeners. */
export interface StaleEvent {
  /** the secret served from the cache */
  name: string;
  /** the version served */
  version: number;
  /** since when the value is stale (its read plus ttl) */
  since: Date;
  /** why the server was not asked or did not answer */
  error: CofferError;
}

/** Options of {@link SecretCache}. */
export interface SecretCacheOptions {
  /** the clock (tests); default {@link turnClock} */
  now?: () => number;
  /** a second level, e.g. the encrypted disk cache */
  backing?: CacheBacking;
  /** called for every value served stale */
  onStale?: (event: StaleEvent) => void;
  /** called when the backing fails to read or write (the read itself goes on without it) */
  onBackingError?: (err: unknown) => void;
}

/** What a read from the server gives the cache. */
export interface FetchedValue {
  name: string;
  version: number;
  updatedAt: string;
  /** taken over by the cache */
  value: Buffer;
}

/**
 * True when `err` says the server could not be reached or is unwell, so a cached value may be
 * served instead: network errors and timeouts (E_PROVIDER without an HTTP status), 5xx, 429.
 * Never a 401, 403, 404 or other 4xx, nor an answer the client could not use.
 */
export function servesStale(err: unknown): err is CofferError {
  if (err instanceof ServerError) return err.status >= 500 || err.status === 429;
  return err instanceof CofferError && err.code === "E_PROVIDER" && !/ answered /.test(err.message);
}

/** The cache key of a read: the name, and the version when one is pinned. */
export function cacheEntryKey(name: string, version?: number): string {
  return version === undefined ? name : `${name}@${version}`;
}

/**
 * Date.now(), read at most once per turn of the event loop: on a host with a slow clock source
 * a clock read costs as much as the rest of a cached get() (~50 ns), so a burst of reads in one
 * turn shares one. A value is then served past its ttl by at most the length of the turn in
 * progress (a turn has no I/O in it, so no fresher answer could have been had anyway).
 */
export function turnClock(): () => number {
  let now: number | undefined;
  const reset = (): void => void (now = undefined);
  return () => {
    if (now === undefined) {
      now = Date.now();
      setImmediate(reset).unref();
    }
    return now;
  };
}

/** The policy above over one server and one token (the caller keeps one cache per pair). */
export class SecretCache {
  readonly settings: Readonly<CacheSettings>;
  readonly #memory = new Map<string, CachedValue>();
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #backing: CacheBacking | undefined;
  readonly #onStale: ((event: StaleEvent) => void) | undefined;
  readonly #onBackingError: (err: unknown) => void;

  constructor(settings: CacheSettings, options: SecretCacheOptions = {}) {
    this.settings = { ...settings };
    this.#ttlMs = settings.ttlMs;
    this.#now = options.now ?? turnClock();
    this.#backing = options.backing;
    this.#onStale = options.onStale;
    this.#onBackingError = options.onBackingError ?? (() => {});
  }

  /**
   * The value under `key` (see {@link cacheEntryKey}): cached within ttl, else `fetch()`ed, else
   * (when that fails as {@link servesStale} says) cached within staleIfError.
   * @param offline - make no request: the cached value within ttl + staleIfError, or E_PROVIDER
   * @throws what `fetch` throws when no cached value may be served; CofferError E_PROVIDER offline
   */
  get(key: string, fetch: () => Promise<FetchedValue>, offline = false): Promise<Secret> {
    const hit = this.fresh(key);
    return hit !== undefined ? Promise.resolve(hit) : this.#slow(key, this.#memory.get(key), fetch, offline);
  }

  /** The value under `key` when memory holds it within ttl (no request, no await: the hot path), else undefined. */
  fresh(key: string): Secret | undefined {
    const hit = this.#memory.get(key);
    return hit !== undefined && hit.due !== true && this.#now() - hit.fetchedAt < this.#ttlMs ? secretOf(hit, false) : undefined;
  }

  async #slow(key: string, hit: CachedValue | undefined, fetch: () => Promise<FetchedValue>, offline: boolean): Promise<Secret> {
    let entry = hit;
    if (entry === undefined && this.#backing !== undefined) {
      entry = await this.#backing.read(key).catch((err: unknown) => void this.#onBackingError(err));
      if (entry !== undefined) this.#memory.set(key, entry);
    }
    const now = this.#now();
    if (entry !== undefined && entry.due !== true && now - entry.fetchedAt < this.settings.ttlMs) return secretOf(entry, false);
    if (offline) {
      const name = key.replace(/@\d+$/, "");
      if (entry === undefined) throw new CofferError("E_PROVIDER", `offline, and no cached value of ${name} (read it once while the server answers)`);
      // The reason a served value gives (its stale warning), or the error past staleIfError.
      const since = entry.fetchedAt + this.settings.ttlMs;
      const why = now > since + this.settings.staleIfErrorMs
        ? `offline, and the cached value of ${name} is past its staleIfError (stale since ${new Date(since).toISOString()})`
        : "offline: no request was made";
      return this.#stale(entry, now, new CofferError("E_PROVIDER", why));
    }
    let got: FetchedValue;
    try {
      got = await fetch();
    } catch (err) {
      if (servesStale(err)) return this.#stale(entry, now, err);
      if (err instanceof CofferError && ["E_NOT_FOUND", "E_DENIED", "E_UNAUTHENTICATED"].includes(err.code)) await this.#forget(key);
      throw err;
    }
    const fresh: CachedValue = { name: got.name, version: got.version, updatedAt: got.updatedAt, value: got.value, fetchedAt: this.#now() };
    const old = this.#memory.get(key);
    this.#memory.set(key, fresh);
    if (old !== undefined && old !== fresh) old.value.fill(0);
    if (this.#backing !== undefined) await this.#backing.write(key, fresh).catch(this.#onBackingError);
    return secretOf(fresh, false);
  }

  // The cached value within staleIfError, told to onStale; else `err`.
  #stale(entry: CachedValue | undefined, now: number, err: CofferError): Secret {
    const since = entry === undefined ? 0 : entry.fetchedAt + this.settings.ttlMs;
    if (entry === undefined || now > since + this.settings.staleIfErrorMs) throw err;
    const stale = now >= since;
    if (stale) this.#onStale?.({ name: entry.name, version: entry.version, since: new Date(since), error: err });
    return secretOf(entry, stale);
  }

  async #forget(key: string): Promise<void> {
    this.#memory.get(key)?.value.fill(0);
    this.#memory.delete(key);
    if (this.#backing !== undefined) await this.#backing.remove(key).catch(this.#onBackingError);
  }

  /** Drops the in-memory entries of `name` (all its versions), so the next read asks the server (a change event). */
  invalidate(name: string): void {
    for (const entry of this.#memory.values()) if (entry.name === name) entry.due = true;
  }

  /** Zeroes and drops every in-memory value (the disk cache stays). */
  clear(): void {
    for (const e of this.#memory.values()) e.value.fill(0);
    this.#memory.clear();
  }
}

// (A fresh entry is its own meta: no object is built on the hot path of a cached read.)
function secretOf(e: CachedValue, stale: boolean): Secret {
  return new Secret(stale ? { name: e.name, version: e.version, updatedAt: e.updatedAt, stale } : e, Buffer.from(e.value));
}
