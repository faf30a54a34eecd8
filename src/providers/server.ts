/**
 * The `server` provider: secrets from a coffer team server over its HTTP API
 * (`GET /v1/secrets/{name}`), with the token from the environment or `coffer login`.
 * `{ type: server, url, tokenEnv?, staleIfError? }`, `--provider server:https://host:8200[/path]`.
 * Every read goes through the outage cache (src/client/cache.ts; ttl 0, staleIfError 24h by default).
 */
import { tokenTransportRule } from "../core/token-transport.ts";
import { CofferError, show } from "../errors.ts";
import { CofferClient } from "../client/client.ts";
import { ServerError } from "../client/server-error.ts";
import { normaliseServerUrl } from "../client/server-url.ts";
import { loadServerTls, tokenFor } from "../client/token-file.ts";
import { readWatchStream, eventFields } from "../client/watch-stream.ts";
import { cacheEntryKey, MAX_CACHE_DURATION_MS, SecretCache, type CacheBacking } from "../client/cache.ts";
import { cacheScope, lazyDiskCache } from "../cache/disk.ts";
import { namedCacheDir } from "../core/paths.ts";
import { checkDuration, formatDuration, requireDuration } from "../core/durations.ts";
import { Secret } from "../core/secret.ts";
import { pollingFeed, pollVersions, watchByPath, watchSet } from "./watch.ts";
import { HTTP_URL_PATTERN, isHttpUrl, type ProviderType } from "./grammar.ts";
import { describeRef, type Provider, type ProviderContext, type SecretRef } from "./provider.ts";
import { pickKey } from "./keyed.ts";

/** The `server` entry of the `providers:` section. */
export interface ServerSpec {
  type: "server";
  /** the server's http(s) base URL (no query, fragment or credentials) */
  url: string;
  /** the variable holding the API token (default `COFFER_TOKEN`) */
  tokenEnv?: string;
  /** how long after a read its cached value is used while the server cannot be reached (a duration; default 24h, `0s`: never) */
  staleIfError?: string;
}

/** The variable a `server` provider reads its API token from, unless `tokenEnv` says otherwise. */
export const DEFAULT_SERVER_TOKEN_ENV = "COFFER_TOKEN";
/** What a `server` provider's url must be, for messages. */
export const SERVER_URL_RULE = "must be an http:// or https:// URL without credentials, query or fragment, e.g. https://coffer.internal:8200";

const staleRule = (s: string): string | undefined => {
  const r = checkDuration(s, { min: 0, max: MAX_CACHE_DURATION_MS });
  return "ok" in r ? undefined : r.rule;
};
const urlRule = (s: string): string | undefined => (isHttpUrl(s, true) ? tokenTransportRule(s) : SERVER_URL_RULE);

export const serverType: ProviderType<ServerSpec> = {
  type: "server",
  keys: true,
  schema: {
    title: "Coffer server",
    type: "object",
    additionalProperties: false,
    required: ["type", "url"],
    properties: {
      type: { const: "server", description: "A coffer team server (`coffer serve`) over HTTP with an API token." },
      url: {
        type: "string",
        pattern: HTTP_URL_PATTERN,
        description: "The server's http:// or https:// URL, without credentials, query or fragment.",
        "x-format": "server-url",
        "x-needs": "the http:// or https:// URL of a coffer server",
      },
      tokenEnv: { $ref: "#/$defs/envName", default: DEFAULT_SERVER_TOKEN_ENV, description: "The environment variable holding the API token." },
      staleIfError: {
        type: "string",
        default: "24h",
        description: "How long after a read its value (kept in an encrypted cache) is used while the server cannot be reached; 0s: never.",
        "x-format": "stale-if-error",
        "x-rule": "{where}: {rule}",
      },
    },
  },
  formats: { "server-url": urlRule, "stale-if-error": staleRule },
  path: "secret-name",
  cliForm: "server:https://host:8200",
  fromCli(url) {
    const bad = urlRule(url);
    if (bad === SERVER_URL_RULE) return { rule: `server url ${show(url)} ${SERVER_URL_RULE}` };
    return bad !== undefined ? { rule: `it ${bad}` } : { ok: { type: "server", url } };
  },
  spec: (s) => ({
    type: "server",
    url: s["url"] as string,
    ...(s["tokenEnv"] !== undefined && { tokenEnv: s["tokenEnv"] as string }),
    ...(s["staleIfError"] !== undefined && { staleIfError: s["staleIfError"] as string }),
  }),
  create: createServerProvider,
};

/** Options of {@link createServerProvider} (for tests and tuning; not in the config). */
export interface ServerProviderOptions {
  /** per-request timeout, headers and body (default 10 000 ms) */
  timeoutMs?: number;
  /** how often watch() polls the versions while it has no event stream (default 30 000 ms) */
  pollIntervalMs?: number;
  /** the first wait before the event stream is tried again (default 1000 ms; doubles up to {@link maxStreamRetryMs}) */
  streamRetryMs?: number;
  /** the longest wait between stream attempts (default 30 000 ms) */
  maxStreamRetryMs?: number;
  /** a stream silent this long (no heartbeat) counts as dropped (default 45 000 ms) */
  streamIdleMs?: number;
  /** false: watch() only polls (default true) */
  stream?: boolean;
  /** the fetch to use (tests) */
  fetch?: typeof fetch;
  /**
   * how long after a read its value is served while the server cannot be reached (default: the
   * spec's `staleIfError`, else {@link SERVER_STALE_IF_ERROR_MS}; 0: never, and no disk cache). The provider's cache has a ttl of 0: every read
   * asks the server, the cache is only for an outage and for `--offline`.
   */
  staleIfErrorMs?: number;
  /** the cache dir (default `$XDG_CACHE_HOME/coffer`, src/core/paths.ts; none, so memory only, when `ctx.env` names no home) */
  cacheDir?: string;
  /** false: the cache stays in memory (default true: encrypted on disk when a key is found) */
  diskCache?: boolean;
  /** the cache's clock (tests) */
  now?: () => number;
}

/** How long the `server` provider serves a cached value while its server is unreachable: 24 hours. */
export const SERVER_STALE_IF_ERROR_MS = 86_400_000;

/** The event-stream parser moved to src/client/sse.ts (also used for runbook output); re-exported for existing importers. */
export { SseParser, type SseEvent } from "../client/sse.ts";

/**
 * The longest common prefix of whole "/"-segments of the names' folders: `app/db/pw` and
 * `app/api` → `app/`; a lone `app/db/pw` → `app/db/`; `a` and `b` → "". Over 256 characters
 * (the server's limit) → "".
 */
export function watchPrefix(names: readonly string[]): string {
  if (names.length === 0) return "";
  const folders = names.map((n) => n.split("/").slice(0, -1));
  const first = folders[0]!;
  let common = 0;
  while (common < first.length && folders.every((f) => f[common] === first[common])) common++;
  const prefix = common === 0 ? "" : `${first.slice(0, common).join("/")}/`;
  return prefix.length > 256 ? "" : prefix;
}

/**
 * Creates the `server` provider.
 *
 * `resolve({path, version?})` sends `GET {url}/v1/secrets/{path}[?version=N]` with
 * `Authorization: Bearer <token>`. The token is `ctx.env[spec.tokenEnv ?? "COFFER_TOKEN"]`,
 * else the one `coffer login URL` saved; it is looked up on the first request and kept, with the
 * CA and client certificate `coffer login URL --ca F --cert F --key F` saved for the URL. The
 * Secret's `updatedAt` is the version's `createdAt` (when that version was written). `#key` is
 * not supported: a server secret is one value.
 *
 * Errors (never carrying the token or a value) name the reference and keep the server's code
 * (E_UNAUTHENTICATED, E_DENIED, E_NOT_FOUND, E_RATE_LIMITED, E_UNAVAILABLE, …); network errors,
 * timeouts, non-JSON or over-2-MiB answers are E_PROVIDER; no token is E_CONFIG.
 *
 * `watch(refs, onChange)` listens to `GET {url}/v1/watch?prefix=P` (server-sent events; P is
 * the common folder of the unpinned paths) and calls `onChange` for the refs of a path a
 * `change` event names. It notes the current versions once at the start (`GET
 * …/versions`). While the stream is down (cannot connect, non-200, an older server without
 * /v1/watch, dropped, silent past `streamIdleMs`, or the server says `degraded`) it polls the
 * versions every `pollIntervalMs`, at once first so changes made during the gap are seen, and
 * tries the stream again after 1 s, doubling to 30 s. A `resync` event polls once. Failed polls
 * are skipped (after a 429, until Retry-After has passed). No timer keeps the process alive.
 * @throws CofferError E_CONFIG when `url` is not a usable http(s) URL, or is plain http to a host
 *   that is not loopback (the token would cross the network in clear)
 */
export function createServerProvider(name: string, spec: ServerSpec, ctx: ProviderContext, options: ServerProviderOptions = {}): Provider {
  let url: string;
  try {
    url = normaliseServerUrl(spec.url);
  } catch (err) {
    throw new CofferError("E_CONFIG", `provider "${name}": ${(err as Error).message}`);
  }
  const transport = tokenTransportRule(url);
  if (transport !== undefined) throw new CofferError("E_CONFIG", `provider "${name}" ${transport}`);
  const tokenEnv = spec.tokenEnv ?? DEFAULT_SERVER_TOKEN_ENV;
  const pollIntervalMs = options.pollIntervalMs ?? 30_000;
  const streamRetryMs = options.streamRetryMs ?? 1000;
  const maxStreamRetryMs = options.maxStreamRetryMs ?? 30_000;
  const streamIdleMs = options.streamIdleMs ?? 45_000;
  const closing = new AbortController();
  const watches = watchSet();
  let client: CofferClient | undefined;
  let cache: SecretCache | undefined;

  const getClient = (): CofferClient => {
    if (closing.signal.aborted) throw new CofferError("E_INTERNAL", `provider "${name}" was used after close()`);
    if (client === undefined) {
      const found = tokenFor(url, ctx.env, tokenEnv);
      if (found === undefined) {
        throw new CofferError("E_CONFIG", `provider "${name}" needs a token: run \`coffer login ${url}\` or set ${tokenEnv}`);
      }
      // The CA and client certificate come from `coffer login --ca/--cert/--key` only, never from
      // .coffer.yml: a committed file must not choose which local key files are read.
      const tls = loadServerTls(url, ctx.env);
      client = new CofferClient({
        url,
        token: found,
        signal: closing.signal,
        ...(tls !== undefined && { tls }),
        ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
        ...(options.fetch !== undefined && { fetch: options.fetch }),
      });
      const staleIfErrorMs = options.staleIfErrorMs ??
        (spec.staleIfError !== undefined ? requireDuration(spec.staleIfError, `provider "${name}" staleIfError`, { min: 0, max: MAX_CACHE_DURATION_MS }, "E_CONFIG") : SERVER_STALE_IF_ERROR_MS);
      const dir = options.cacheDir ?? namedCacheDir(ctx.env);
      const backing: CacheBacking | undefined = options.diskCache === false || staleIfErrorMs === 0 || dir === undefined
        ? undefined
        : lazyDiskCache(ctx.env, dir, cacheScope(url, found));
      cache = new SecretCache({ ttlMs: 0, staleIfErrorMs }, {
        ...(backing !== undefined && { backing }),
        ...(options.now !== undefined && { now: options.now }),
        onStale: (e) => ctx.warn?.(`provider "${name}": ${e.name} (version ${e.version}) served from the cache, stale since ${e.since.toISOString()} (up to ${formatDuration(staleIfErrorMs)}): ${e.error.message}`),
      });
    }
    return client;
  };

  const currentOf = async (path: string): Promise<string> => {
    try {
      const { versions } = await getClient().versions(path);
      return String(versions.find((v) => v.current)?.version ?? "missing");
    } catch (err) {
      if (err instanceof CofferError && err.code === "E_NOT_FOUND") return "missing";
      throw err;
    }
  };

  /**
   * Keeps an event stream open for `paths` (see the provider's JSDoc), polling while it is not.
   * Returns the stop function.
   */
  const streamFeed = (paths: readonly string[], onChange: (name: string) => void): (() => void) => {
    const watched = new Set(paths);
    const polls = pollVersions(paths, currentOf, onChange, pollIntervalMs);
    const prefix = watchPrefix(paths);
    let stopped = false;
    let retryMs = streamRetryMs;
    let retryTimer: NodeJS.Timeout | undefined;
    let current: AbortController | undefined;

    const fallBack = () => {
      if (stopped) return;
      polls.start();
      if (retryTimer !== undefined) return;
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        void connect();
      }, retryMs);
      retryTimer.unref();
      retryMs = Math.min(retryMs * 2, maxStreamRetryMs);
    };

    const connect = async (): Promise<void> => {
      if (stopped) return;
      const aborter = new AbortController();
      current = aborter;
      try {
        await readWatchStream(getClient(), prefix, {
          signal: AbortSignal.any([aborter.signal, closing.signal]),
          idleMs: streamIdleMs,
          onEvent: (e) => {
            if (stopped) return;
            const { name, action, version, healthy } = eventFields(e.data);
            if (e.event === "ready") retryMs = streamRetryMs;
            // A `ready` without fields (an older format) is trusted.
            if (e.event === "degraded" || (e.event === "ready" && healthy === false)) polls.start();
            else if (e.event === "ready" || e.event === "resync") {
              polls.stop();
              // Changes made while there was no stream (or before it was up) are caught here.
              polls.pollNow();
            } else if (e.event === "change" && typeof name === "string" && watched.has(name)) {
              polls.saw(name, action === "delete" ? "missing" : typeof version === "number" ? String(version) : "?");
              onChange(name);
            }
          },
        });
      } catch {
        // network error, no token, a refusal, an older server without /v1/watch: poll instead
      } finally {
        aborter.abort();
        if (current === aborter) current = undefined;
        fallBack();
      }
    };

    // Versions now, so a poll after a gap knows what changed; then the stream.
    polls.pollNow();
    void connect();
    return () => {
      stopped = true;
      polls.dispose();
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      current?.abort();
    };
  };

  const feed = options.stream === false ? pollingFeed(currentOf, pollIntervalMs) : streamFeed;

  return {
    name,
    async resolve(ref: SecretRef): Promise<Secret> {
      let read: Secret;
      try {
        const c = getClient();
        read = await cache!.get(cacheEntryKey(ref.path, ref.version), async () => {
          const s = await c.readSecret(ref.path, ref.version);
          return { name: s.name, version: s.version, updatedAt: s.createdAt, value: s.value };
        }, ctx.offline === true);
      } catch (err) {
        if (!(err instanceof CofferError) || err.code === "E_CONFIG" || err.code === "E_INTERNAL") throw err;
        const hint = err.code === "E_UNAUTHENTICATED" ? `; run \`coffer login ${url}\` again or check ${tokenEnv}` : "";
        const message = `${describeRef(ref)}: ${err.message}${hint}`;
        if (err instanceof ServerError) throw new ServerError(err.code, message, err.status, err.requestId, err.retryAfterSeconds);
        throw new CofferError(err.code, message);
      }
      // `key:` reads the value as a map (what a Vault client wrote through the Vault API): keyed.ts.
      return pickKey(read, ref);
    },
    watch: (refs, onChange) => watches.add(watchByPath(refs, onChange, feed)),
    close(): void {
      watches.stopAll();
      closing.abort();
      cache?.clear();
    },
  };
}
