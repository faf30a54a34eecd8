/**
 * The `server` provider: secrets from a coffer team server over its HTTP API
 * (`GET /v1/secrets/{name}`), with the token from the environment or `coffer login`.
 */
import { CofferError } from "../errors.ts";
import { CofferClient, ServerError, normaliseServerUrl } from "../server/client.ts";
import { loadToken } from "../server/token-file.ts";
import { Secret } from "../store/secret.ts";
import { describeRef, type Provider, type ProviderContext, type ProviderSpec, type SecretRef } from "./provider.ts";

/** The `server` entry of the `providers:` section. */
export type ServerSpec = Extract<ProviderSpec, { type: "server" }>;

/** Options of {@link createServerProvider} (for tests and tuning; not in the config). */
export interface ServerProviderOptions {
  /** per-request timeout, headers and body (default 10 000 ms) */
  timeoutMs?: number;
  /** how often watch() polls the versions (default 30 000 ms) */
  pollIntervalMs?: number;
  /** the fetch to use (tests) */
  fetch?: typeof fetch;
}

/**
 * Where change notices come from: calls `onChange(name)` when the current version of one of
 * `names` changed or the secret disappeared; returns a function that stops. Polling is the
 * one source today; a server-sent-events source can replace it without touching `watch`.
 */
type ChangeFeed = (names: readonly string[], onChange: (name: string) => void) => () => void;

/**
 * Creates the `server` provider.
 *
 * `resolve({path, version?})` sends `GET {url}/v1/secrets/{path}[?version=N]` with
 * `Authorization: Bearer <token>`. The token is `ctx.env[spec.tokenEnv ?? "COFFER_TOKEN"]`,
 * else the one `coffer login URL` saved; it is looked up on the first request and kept. The
 * Secret's `updatedAt` is the version's `createdAt` (when that version was written). `#key` is
 * not supported: a server secret is one value.
 *
 * Errors (never carrying the token or a value) name the reference and keep the server's code
 * (E_UNAUTHENTICATED, E_DENIED, E_NOT_FOUND, E_RATE_LIMITED, E_UNAVAILABLE, …); network errors,
 * timeouts, non-JSON or over-2-MiB answers are E_PROVIDER; no token is E_CONFIG.
 *
 * `watch(refs, onChange)` polls `GET {url}/v1/secrets/{path}/versions` for each unpinned path
 * every `pollIntervalMs` and calls `onChange` for the refs of a path whose current version
 * changed or which disappeared. Failed polls are skipped (after a 429, until Retry-After has
 * passed). The timer does not keep the process alive.
 * @throws CofferError E_CONFIG when `url` is not a usable http(s) URL
 */
export function createServerProvider(name: string, spec: ServerSpec, ctx: ProviderContext, options: ServerProviderOptions = {}): Provider {
  let url: string;
  try {
    url = normaliseServerUrl(spec.url);
  } catch (err) {
    throw new CofferError("E_CONFIG", `provider "${name}": ${(err as Error).message}`);
  }
  const tokenEnv = spec.tokenEnv ?? "COFFER_TOKEN";
  const pollIntervalMs = options.pollIntervalMs ?? 30_000;
  const closing = new AbortController();
  const stops = new Set<() => void>();
  let client: CofferClient | undefined;

  const getClient = (): CofferClient => {
    if (closing.signal.aborted) throw new CofferError("E_INTERNAL", `provider "${name}" was used after close()`);
    if (client === undefined) {
      const fromEnv = ctx.env[tokenEnv];
      const token = fromEnv !== undefined && fromEnv !== "" ? fromEnv : loadToken(url, ctx.env);
      if (token === undefined) {
        throw new CofferError("E_CONFIG", `provider "${name}" needs a token: run \`coffer login ${url}\` or set ${tokenEnv}`);
      }
      client = new CofferClient({
        url,
        token,
        signal: closing.signal,
        ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
        ...(options.fetch !== undefined && { fetch: options.fetch }),
      });
    }
    return client;
  };

  const pollVersions: ChangeFeed = (names, onChange) => {
    const seen = new Map<string, string>();
    let stopped = false;
    let busy = false;
    let quietUntil = 0;
    const currentOf = async (path: string): Promise<string> => {
      try {
        const { versions } = await getClient().versions(path);
        return String(versions.find((v) => v.current)?.version ?? "missing");
      } catch (err) {
        if (err instanceof CofferError && err.code === "E_NOT_FOUND") return "missing";
        throw err;
      }
    };
    const poll = async (): Promise<void> => {
      if (busy || stopped || Date.now() < quietUntil) return;
      busy = true;
      try {
        for (const path of names) {
          let current: string;
          try {
            current = await currentOf(path);
          } catch (err) {
            // A failed poll is skipped; the next one tries again (later, when rate limited).
            if (err instanceof ServerError && err.retryAfterSeconds !== undefined) {
              quietUntil = Date.now() + err.retryAfterSeconds * 1000;
              return;
            }
            continue;
          }
          if (stopped) return;
          const before = seen.get(path);
          seen.set(path, current);
          if (before !== undefined && before !== current) onChange(path);
        }
      } finally {
        busy = false;
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), pollIntervalMs);
    timer.unref();
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  };

  return {
    name,
    async resolve(ref: SecretRef): Promise<Secret> {
      if (ref.key !== undefined) {
        throw new CofferError("E_CONFIG", `${describeRef(ref)}: a coffer server secret is one value, without keys; drop "#${ref.key}"`);
      }
      try {
        const s = await getClient().readSecret(ref.path, ref.version);
        return new Secret({ name: s.name, version: s.version, updatedAt: s.createdAt }, s.value);
      } catch (err) {
        if (!(err instanceof CofferError) || err.code === "E_CONFIG" || err.code === "E_INTERNAL") throw err;
        const hint = err.code === "E_UNAUTHENTICATED" ? `; run \`coffer login ${url}\` again or check ${tokenEnv}` : "";
        const message = `${describeRef(ref)}: ${err.message}${hint}`;
        if (err instanceof ServerError) throw new ServerError(err.code, message, err.status, err.requestId, err.retryAfterSeconds);
        throw new CofferError(err.code, message);
      }
    },
    watch(refs: readonly SecretRef[], onChange: (ref: SecretRef) => void): () => void {
      const watched = refs.filter((r) => r.version === undefined);
      const paths = [...new Set(watched.map((r) => r.path))];
      const stopFeed = pollVersions(paths, (path) => {
        for (const r of watched) if (r.path === path) onChange(r);
      });
      const stop = (): void => {
        stopFeed();
        stops.delete(stop);
      };
      stops.add(stop);
      return stop;
    },
    close(): void {
      for (const stop of [...stops]) stop();
      closing.abort();
    },
  };
}
