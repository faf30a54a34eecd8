/**
 * The watch plumbing the providers share: the set of open watches that close() stops, the
 * grouping of unpinned refs by path, and the poll of each path's current version (vault, server).
 */
import { ServerError } from "../client/server-error.ts";
import { coalesce } from "../core/coalesce.ts";
import type { SecretRef } from "./provider.ts";

/** A provider's open watches: `add` returns a stop that also forgets it; `stopAll` is for close(). */
export function watchSet(): { add(stop: () => void): () => void; stopAll(): void } {
  const stops = new Set<() => void>();
  return {
    add(stop) {
      const wrapped = (): void => {
        stops.delete(wrapped);
        stop();
      };
      stops.add(wrapped);
      return wrapped;
    },
    stopAll: () => [...stops].forEach((stop) => stop()),
  };
}

/**
 * Watches the unpinned refs (a pinned version never changes) by path: `feed` reports a changed
 * path, and each ref of that path gets `onChange`. Nothing to watch: no feed.
 */
export function watchByPath(
  refs: readonly SecretRef[],
  onChange: (ref: SecretRef) => void,
  feed: (paths: readonly string[], onPath: (path: string) => void) => () => void,
): () => void {
  const watched = refs.filter((r) => r.version === undefined);
  const paths = [...new Set(watched.map((r) => r.path))];
  if (paths.length === 0) return () => {};
  return feed(paths, (path) => {
    for (const r of watched) if (r.path === path) onChange(r);
  });
}

/**
 * Polls `currentOf(path)` (a version, or "missing") of every path, remembering them across
 * start/stop so a poll after a gap reports what changed during it: `onChange(path)` when one
 * differs from the last seen. A failed look is skipped, the next poll tries again; after a 429
 * with Retry-After, polls are skipped until it has passed. `start` polls now and every interval
 * until `stop`; `saw` records what an event stream reported, so polling does not report it again.
 */
export function pollVersions(
  paths: readonly string[],
  currentOf: (path: string) => Promise<string>,
  onChange: (path: string) => void,
  intervalMs: number,
) {
  const seen = new Map<string, string>();
  let disposed = false;
  let quietUntil = 0;
  let stopTicks: (() => void) | undefined;
  // A poll asked for during one (a resync) runs after it: it may be about a later change.
  const polls = coalesce(async () => {
    if (Date.now() < quietUntil) return;
    for (const path of paths) {
      let current: string;
      try {
        current = await currentOf(path);
      } catch (err) {
        if (err instanceof ServerError && err.retryAfterSeconds !== undefined) {
          quietUntil = Date.now() + err.retryAfterSeconds * 1000;
          return;
        }
        continue;
      }
      if (disposed) return;
      const before = seen.get(path);
      seen.set(path, current);
      if (before !== undefined && before !== current) onChange(path);
    }
  });
  const stop = () => {
    stopTicks?.();
    stopTicks = undefined;
  };
  return {
    pollNow: () => polls.trigger(),
    start() {
      if (disposed || stopTicks !== undefined) return;
      polls.trigger();
      stopTicks = polls.every(intervalMs);
    },
    stop,
    saw: (path: string, current: string) => void seen.set(path, current),
    dispose() {
      disposed = true;
      polls.stop();
    },
  };
}

/** A feed for {@link watchByPath} that only polls `currentOf` every `intervalMs`. */
export function pollingFeed(currentOf: (path: string) => Promise<string>, intervalMs: number) {
  return (paths: readonly string[], onPath: (path: string) => void): (() => void) => {
    const polls = pollVersions(paths, currentOf, onPath, intervalMs);
    polls.start();
    return () => polls.dispose();
  };
}
