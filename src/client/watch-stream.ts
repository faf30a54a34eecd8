/**
 * One read of a coffer server's change stream (`GET /v1/watch?prefix=P`, server-sent events),
 * the one used by the `server` provider's watch (src/providers/server.ts, which polls while it is
 * down) and by `connect().watch()` (src/app/connect.ts). It sends through the client (its token,
 * TLS and close signal), parses with src/client/sse.ts, and counts a stream silent past `idleMs`
 * (no heartbeat) as dropped. The caller decides what to do when it ends.
 */
import { CofferError } from "../errors.ts";
import type { CofferClient } from "./client.ts";
import { SseParser, type SseEvent } from "./sse.ts";

/** Options of {@link readWatchStream}. */
export interface WatchStreamOptions {
  /** ends the stream (the caller's stop) */
  signal: AbortSignal;
  /** a stream silent this long counts as dropped, in ms */
  idleMs: number;
  /** every event, in order */
  onEvent: (event: SseEvent) => void;
}

/**
 * Reads the change stream of `prefix` until it ends, is aborted, or goes silent.
 * @returns when the stream ended (closed by the server, silent, or aborted after it opened)
 * @throws CofferError when it could not be opened: what {@link CofferClient.send} throws, or
 *   E_PROVIDER for an answer that is not an event stream (a proxy's page)
 */
export async function readWatchStream(client: CofferClient, prefix: string, options: WatchStreamOptions): Promise<void> {
  const aborter = new AbortController();
  let idle: NodeJS.Timeout | undefined;
  const touch = (): void => {
    if (idle !== undefined) clearTimeout(idle);
    idle = setTimeout(() => aborter.abort(), options.idleMs);
    idle.unref();
  };
  try {
    touch();
    const res = await client.send("GET", `/v1/watch${prefix === "" ? "" : `?${new URLSearchParams({ prefix })}`}`, {
      accept: "text/event-stream",
      timeout: false,
      signal: AbortSignal.any([aborter.signal, options.signal]),
    });
    if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream") || res.body === null) {
      await res.body?.cancel().catch(() => {});
      throw new CofferError("E_PROVIDER", `server ${client.url}: /v1/watch did not answer with an event stream`);
    }
    const decoder = new TextDecoder("utf-8");
    const parser = new SseParser(options.onEvent);
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || options.signal.aborted) break;
        touch();
        parser.push(decoder.decode(value, { stream: true }));
      }
    } catch {
      // dropped, silent or aborted: the stream has ended
    } finally {
      await reader.cancel().catch(() => {});
    }
  } finally {
    if (idle !== undefined) clearTimeout(idle);
    aborter.abort();
  }
}

/** The fields of an event's JSON object; none when it is not one (an older format, a broken event). */
export function eventFields(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
