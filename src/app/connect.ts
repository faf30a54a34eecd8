/**
 * `connect()`: an app's client of a coffer team server (issue 18), the library form of what the
 * CLI's `server` provider does. It is {@link CofferClient} (the one HTTP client: token, TLS and
 * mTLS, error codes, retries) plus the outage cache of src/client/cache.ts (in memory, and
 * encrypted on disk by src/cache/disk.ts) plus the change stream of src/client/watch-stream.ts.
 *
 * @example
 * import { connect } from "coffer";
 * const coffer = connect({ url: "https://coffer.internal:8200", cache: { ttl: "5m", staleIfError: "24h" } });
 * coffer.on("stale", (e) => log.warn(`${e.name} served from cache since ${e.since.toISOString()}`));
 * const password = await coffer.get("db/prod/password");
 */
import { isAbsolute } from "node:path";
import { CofferError } from "../errors.ts";
import { CofferClient, SERVER_TIMEOUT_MS, type ServerSecretInfo, type ServerVersionInfo } from "../client/client.ts";
import { normaliseServerUrl, type ClientTlsFiles } from "../client/server-url.ts";
import type { ClientTls } from "../client/http.ts";
import { loadServerTls, tokenFor } from "../client/token-file.ts";
import { cacheEntryKey, cacheSettings, SecretCache, type CacheDurations, type StaleEvent } from "../client/cache.ts";
import { eventFields, readWatchStream } from "../client/watch-stream.ts";
import { cacheScope, lazyDiskCache } from "../cache/disk.ts";
import { namedCacheDir } from "../core/paths.ts";
import { requireDuration } from "../core/durations.ts";
import { Secret } from "../core/secret.ts";

/** The cache options of {@link connect}. */
export interface ConnectCacheOptions extends CacheDurations {
  /**
   * where the encrypted cache files go (default `$XDG_CACHE_HOME/coffer`, or `$COFFER_HOME/cache`);
   * false: memory only
   */
  dir?: string | false;
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** the server's base URL (default `COFFER_SERVER`) */
  url?: string;
  /** an API token or JWT (default `COFFER_TOKEN`, else the token `coffer login URL` saved) */
  token?: string;
  /** CA certificates to trust instead of the system's: an absolute path or the PEM bytes */
  ca?: string | Buffer;
  /** a client certificate to present (mTLS), with `key`: an absolute path or the PEM bytes */
  cert?: string | Buffer;
  /** the client certificate's private key: an absolute path (a 0600 file) or the PEM bytes */
  key?: string | Buffer;
  /** per-request timeout: a duration (`"10s"`) or milliseconds (default 10 s) */
  timeout?: string | number;
  /** how many times a request is retried after a network error, a 5xx or a 429 (default 2: 3 attempts; never after another 4xx) */
  retries?: number;
  /** the outage cache (default: none, every get() asks the server) */
  cache?: ConnectCacheOptions;
  /** the environment read for COFFER_SERVER, COFFER_TOKEN, the identity and the cache dir (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** the fetch to use (tests, benchmarks) */
  fetch?: typeof fetch;
  /** the cache's clock (tests) */
  now?: () => number;
}

/** A change the server pushed (`watch()`). */
export interface ChangeEvent {
  /** `change`: `name` was written, removed or restored; `resync`: the stream was re-opened, changes may have been missed */
  kind: "change" | "resync";
  /** the secret that changed (for `change`) */
  name?: string;
  /** what happened to it, as the server says (`write`, `delete`, …) */
  action?: string;
  /** its new current version, when the server gives one */
  version?: number;
}

/** The events of a {@link Connection}. */
export interface ConnectionEvents {
  /** a value was served from the cache because the server could not be reached */
  stale: StaleEvent;
}

/** A connection to a coffer server; see {@link connect}. */
export interface Connection {
  /** the server's canonical URL */
  readonly url: string;
  /**
   * A secret's current value (or `version`). With a cache: served from it within `ttl`; when the
   * server cannot be reached, from it within `staleIfError` with `secret.meta.stale` true and a
   * `stale` event.
   * @throws CofferError E_NOT_FOUND, E_DENIED, E_UNAUTHENTICATED, E_RATE_LIMITED, E_PROVIDER (unreachable), …
   */
  get(name: string, options?: { version?: number }): Promise<Secret>;
  /** Several secrets at once, by name; fails (disposing the others) when one fails. */
  getMany(names: readonly string[]): Promise<Record<string, Secret>>;
  /** The secrets whose names start with `prefix` (names and metadata, never values). */
  list(prefix?: string): Promise<ServerSecretInfo[]>;
  /** A secret's versions (no values). */
  versions(name: string): Promise<ServerVersionInfo[]>;
  /**
   * Calls `onChange` for each change the server pushes under `prefix` (its `/v1/watch` stream;
   * re-opened after 1 s, doubling to 30 s, when it drops, then a `resync` event). With a cache, a
   * changed secret is read again at its next get(). Returns the function that stops it.
   */
  watch(prefix: string, onChange: (event: ChangeEvent) => void): () => void;
  /** Listens to an event; returns the function that stops listening. */
  on<E extends keyof ConnectionEvents>(event: E, listener: (e: ConnectionEvents[E]) => void): () => void;
  /** Ends the watches and requests in flight and zeroes the cached values in memory. */
  close(): void;
}

/**
 * Connects to a coffer server: nothing is sent until the first call.
 * @throws CofferError E_CONFIG without a URL or token; E_INVALID_VALUE for a bad URL, token,
 *   timeout, retries or cache duration; E_USAGE for a bad TLS combination or TLS on http://;
 *   PermissionsError for a key file others can read
 */
export function connect(options: ConnectOptions = {}): Connection {
  const env = options.env ?? process.env;
  const rawUrl = options.url ?? nonEmpty(env.COFFER_SERVER);
  if (rawUrl === undefined) throw new CofferError("E_CONFIG", "connect() needs the server's URL: give { url } or set COFFER_SERVER");
  const url = normaliseServerUrl(rawUrl);
  const token = options.token ?? tokenFor(url, env);
  if (token === undefined) throw new CofferError("E_CONFIG", `connect() needs a token for ${url}: give { token }, set COFFER_TOKEN, or run \`coffer login ${url}\``);
  const timeoutMs = typeof options.timeout === "string"
    ? requireDuration(options.timeout, "timeout", { min: 1, max: 3_600_000 })
    : options.timeout ?? SERVER_TIMEOUT_MS;
  const retries = options.retries ?? 2;
  if (!Number.isSafeInteger(retries) || retries < 0 || retries > 9) throw new CofferError("E_INVALID_VALUE", `retries is a whole number from 0 to 9, got ${retries}`);

  const closing = new AbortController();
  const client = new CofferClient({
    url,
    token,
    timeoutMs,
    attempts: retries + 1,
    signal: closing.signal,
    ...tlsOptions(options, url, env),
    ...(options.fetch !== undefined && { fetch: options.fetch }),
  });

  const staleListeners = new Set<(e: StaleEvent) => void>();
  let cache: SecretCache | undefined;
  if (options.cache !== undefined) {
    const settings = cacheSettings(options.cache);
    const dir = options.cache.dir;
    if (typeof dir === "string" && !isAbsolute(dir)) throw new CofferError("E_INVALID_VALUE", "cache.dir must be an absolute path");
    const where = dir === false ? undefined : dir ?? namedCacheDir(env);
    cache = new SecretCache(settings, {
      ...(where !== undefined && { backing: lazyDiskCache(env, where, cacheScope(url, token)) }),
      ...(options.now !== undefined && { now: options.now }),
      onStale: (e) => {
        // A listener's failure is not the read's: the value is still returned.
        for (const l of staleListeners) {
          try {
            l(e);
          } catch (err) {
            process.emitWarning(`coffer: a "stale" listener threw: ${(err as Error)?.message ?? String(err)}`);
          }
        }
      },
    });
  }
  const stops = new Set<() => void>();

  const read = async (name: string, version?: number): Promise<Secret> => {
    const s = await client.readSecret(name, version);
    return new Secret({ name: s.name, version: s.version, updatedAt: s.createdAt }, s.value);
  };

  const connection: Connection = {
    url,
    get(name, opts) {
      if (cache === undefined) return read(name, opts?.version);
      // The hot path (a cached value within ttl) builds no closure and awaits nothing.
      const key = opts?.version === undefined ? name : cacheEntryKey(name, opts.version);
      const hit = cache.fresh(key);
      if (hit !== undefined) return Promise.resolve(hit);
      // The name is checked by readSecret on a miss.
      return cache.get(key, async () => {
        const s = await client.readSecret(name, opts?.version);
        return { name: s.name, version: s.version, updatedAt: s.createdAt, value: s.value };
      });
    },
    async getMany(names) {
      const got = await Promise.allSettled(names.map((n) => connection.get(n)));
      const failed = got.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed !== undefined) {
        for (const r of got) if (r.status === "fulfilled") r.value.dispose();
        throw failed.reason;
      }
      const out: Record<string, Secret> = {};
      names.forEach((n, i) => {
        out[n] = (got[i] as PromiseFulfilledResult<Secret>).value;
      });
      return out;
    },
    list: (prefix) => client.listSecrets(prefix),
    versions: async (name) => (await client.versions(name)).versions,
    watch(prefix, onChange) {
      let stopped = false;
      let retryMs = 1000;
      let timer: NodeJS.Timeout | undefined;
      const aborter = new AbortController();
      let opened = 0;
      const loop = async (): Promise<void> => {
        if (stopped) return;
        try {
          await readWatchStream(client, prefix, {
            signal: AbortSignal.any([aborter.signal, closing.signal]),
            idleMs: 45_000,
            onEvent: (e) => {
              if (stopped) return;
              const f = eventFields(e.data);
              if (e.event === "ready") {
                retryMs = 1000;
                if (opened++ > 0) onChange({ kind: "resync" });
              } else if (e.event === "resync") onChange({ kind: "resync" });
              else if (e.event === "change" && typeof f.name === "string") {
                cache?.invalidate(f.name);
                onChange({
                  kind: "change",
                  name: f.name,
                  ...(typeof f.action === "string" && { action: f.action }),
                  ...(typeof f.version === "number" && { version: f.version }),
                });
              }
            },
          });
        } catch {
          // cannot open it now: try again below
        }
        if (stopped || closing.signal.aborted) return;
        timer = setTimeout(() => void loop(), retryMs);
        timer.unref();
        retryMs = Math.min(retryMs * 2, 30_000);
      };
      void loop();
      const stop = (): void => {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        aborter.abort();
        stops.delete(stop);
      };
      stops.add(stop);
      return stop;
    },
    on(event, listener) {
      if (event !== "stale") throw new CofferError("E_USAGE", `no event ${String(event)}; a connection has "stale"`);
      const l = listener as (e: StaleEvent) => void;
      staleListeners.add(l);
      return () => void staleListeners.delete(l);
    },
    close() {
      for (const stop of [...stops]) stop();
      closing.abort();
      cache?.clear();
      staleListeners.clear();
    },
  };
  return connection;
}

// TLS from the options (paths or PEM; not both kinds), else what `coffer login --ca/--cert/--key` saved for the URL.
function tlsOptions(o: ConnectOptions, url: string, env: NodeJS.ProcessEnv): { tls: ClientTlsFiles } | { tlsPem: ClientTls } | Record<string, never> {
  const given = [o.ca, o.cert, o.key].filter((v) => v !== undefined);
  if (given.length === 0) {
    const saved = loadServerTls(url, env);
    return saved !== undefined ? { tls: saved } : {};
  }
  if (given.every((v) => typeof v === "string")) {
    return { tls: { ...(o.ca !== undefined && { ca: o.ca as string }), ...(o.cert !== undefined && { cert: o.cert as string }), ...(o.key !== undefined && { key: o.key as string }) } };
  }
  if (given.every((v) => Buffer.isBuffer(v))) {
    return { tlsPem: { ...(o.ca !== undefined && { ca: o.ca as Buffer }), ...(o.cert !== undefined && { cert: o.cert as Buffer }), ...(o.key !== undefined && { key: o.key as Buffer }) } };
  }
  throw new CofferError("E_USAGE", "give ca, cert and key all as paths or all as PEM buffers");
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v !== "" ? v : undefined;
}
