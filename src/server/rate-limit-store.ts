/**
 * Rate-limit counters for `@fastify/rate-limit`: in Redis when `redis:` is configured, so every
 * instance counts against the same limit, and in this process's memory while Redis cannot be
 * reached (the server keeps serving, with per-instance limits, and says so in its health and
 * metrics). The counting itself is the plugin's own (its Lua script and its LRU store).
 */
import type { Redis } from "ioredis";
import type { FastifyRateLimitStoreCtor } from "@fastify/rate-limit";
// Imported, not required at run time from the package folder: the single executable has none.
import LocalStoreModule from "@fastify/rate-limit/store/LocalStore.js";
import RedisStoreModule from "@fastify/rate-limit/store/RedisStore.js";
import { firstConnection } from "./first-connection.ts";

type Callback = (err: Error | null, result?: { current: number; ttl: number }) => void;

interface CounterStore {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
}

const LocalStore = LocalStoreModule as new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => CounterStore;
const RedisStore = RedisStoreModule as new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key?: string) => CounterStore;

/** Where the counters are right now. */
export type LimitMode = "local" | "redis" | "local-redis-down";

/**
 * A store class to pass as `store` to `@fastify/rate-limit`.
 * @param redis - a client made with `enableOfflineQueue: false`, so a command fails at once
 *   while it is disconnected instead of waiting; undefined: memory only
 * @param prefix - keeps deployments sharing one Redis apart (the server passes its store id)
 * @param onFallback - told each time a count fell back to memory (for metrics)
 */
export function limitStoreClass(redis: Redis | undefined, prefix: string, onFallback: () => void = () => {}): { Store: FastifyRateLimitStoreCtor; mode: () => LimitMode } {
  const local = new LocalStore(false, false, 20_000);
  const remote = redis === undefined ? undefined : new RedisStore(false, false, redis, `coffer:rl:${prefix}:`);
  const mode = (): LimitMode => (redis === undefined ? "local" : redis.status === "ready" ? "redis" : "local-redis-down");
  class FallbackStore {
    incr(key: string, cb: Callback, timeWindow: number, max: number): void {
      if (remote === undefined || redis?.status !== "ready") {
        if (remote !== undefined) onFallback();
        local.incr(key, cb, timeWindow, max);
        return;
      }
      remote.incr(key, (err, result) => {
        if (err === null && result !== undefined && result !== null) return cb(null, result);
        onFallback();
        local.incr(key, cb, timeWindow, max);
      }, timeWindow, max);
    }

    /** The plugin asks each limiter for a child; the keys already say which limiter counts. */
    child(): FallbackStore {
      return this;
    }
  }
  return { Store: FallbackStore, mode };
}

/** A Redis client for the limiter: fails fast while disconnected, reconnects by itself. */
export async function connectLimitRedis(url: string, onError: (err: Error) => void): Promise<Redis> {
  const { Redis } = await import("ioredis");
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 250, 5000),
    connectionName: "coffer-rate-limit",
  });
  let last = "";
  client.on("error", (err: Error & { code?: string }) => {
    const what = err.code ?? err.name;
    if (what !== last) onError(new Error(`rate-limit Redis: ${what}`));
    last = what;
  });
  client.on("ready", () => (last = ""));
  await firstConnection(() => client.status === "ready", [client], 2000);
  return client;
}
