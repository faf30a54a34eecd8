/**
 * The one wait for a server dependency's first connection (Redis for the change bus and the
 * shared rate limits): start soon with it when it comes quickly, start without it rather than
 * not at all. Never rejects: what failed is reported by the clients' own error listeners, and
 * they keep reconnecting.
 */
import type { EventEmitter } from "node:events";

/**
 * Resolves once `ready()` holds (checked on each "ready" event of `clients` and every 20 ms),
 * at the first "error" of any of them, or after `ms`, whichever comes first.
 */
export function firstConnection(ready: () => boolean, clients: readonly EventEmitter[], ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    const poll = setInterval(check, 20);
    function check(): void {
      if (ready()) done();
    }
    function done(): void {
      clearTimeout(timer);
      clearInterval(poll);
      for (const c of clients) {
        c.off("ready", check);
        c.off("error", done);
      }
      resolve();
    }
    for (const c of clients) {
      c.on("ready", check);
      c.once("error", done);
    }
    check();
  });
}
