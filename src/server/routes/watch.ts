/**
 * `GET /v1/watch?prefix=P`: a server-sent-events stream of the names that change under P, on any
 * instance, and that the caller may list; never values (the events: the route's OpenAPI
 * description below; docs/security.md). The stream ends when the client goes away, the server
 * closes, or the credential stops being good: at its expiry (checked on every event too), at once
 * when its API token is revoked on any instance (revocations travel on the change bus), and at the
 * next heartbeat otherwise (a revocation missed while the transport was down is caught there, or
 * when it is back).
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import type { ChangeBus, ChangeEvent } from "../changes.ts";
import type { ServerParts } from "../context.ts";
import { PREFIX_QUERY, type PrefixQuery } from "../schemas.ts";

/** What the watch route needs from the server. */
export interface WatchDeps {
  bus: ChangeBus;
  /** may the request's principal list (see) this name? */
  canSee: (req: FastifyRequest, name: string) => boolean;
  /** audits the opening of a stream (fail closed: a throw refuses it) */
  audit: (req: FastifyRequest, prefix: string) => Promise<void>;
  /** comment lines keep proxies from closing an idle stream (default 15 000 ms) */
  heartbeatMs?: number;
  /**
   * Is the stream's credential still good (not revoked, not expired)? Asked at every
   * heartbeat; a false or a throw ends the stream, so revoking a token also ends its watches.
   */
  stillValid?: (req: FastifyRequest) => Promise<boolean>;
  /** how often the bus's health is looked at, for degraded/resync (default 1000 ms) */
  healthCheckMs?: number;
}

/** A client that reads slower than this much unsent output is cut off (it falls back to polling). */
const MAX_BUFFERED_BYTES = 1024 * 1024;

interface Stream {
  res: ServerResponse;
  end: () => void;
  /** asks `stillValid` and ends the stream unless it says yes */
  recheck: () => void;
  tokenId: string | undefined;
}

/** The longest delay setTimeout takes; a later expiry is left to the heartbeat's check. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The headers of a server-sent-events answer (watch and execution output). */
export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-accel-buffering": "no",
} as const;

/** The watch route of the server: its bus and policy, streams audited, credentials re-checked. */
export function watchRoutes(api: FastifyInstance, s: ServerParts): void {
  registerWatchRoute(api, {
    bus: s.changes,
    canSee: (req, name) => req.principal !== null && s.policy.allows(req.principal.roles, "list", name),
    audit: async (req, prefix) => {
      await req.record("ok", "secret.watch", { detail: { prefix } });
    },
    stillValid: async (req) => {
      const p = req.principal;
      if (p === null || (p.expiresAt !== null && p.expiresAt.getTime() <= Date.now())) return false;
      if (p.kind === "cert" && req.headers.authorization === undefined) return true;
      return (await s.auth.authenticate(req.headers.authorization)).subject === p.subject;
    },
  });
}

/** Registers the route on the authenticated API context. */
export function registerWatchRoute(api: FastifyInstance, deps: WatchDeps): void {
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const healthCheckMs = deps.healthCheckMs ?? 1000;
  const stillValid = deps.stillValid ?? (async () => true);
  const streams = new Set<Stream>();
  let healthTimer: NodeJS.Timeout | undefined;
  let wasHealthy = deps.bus.healthy();

  const broadcast = (text: string) => {
    for (const s of streams) write(s, text);
  };
  const watchHealth = () => {
    if (healthTimer !== undefined || streams.size === 0) return;
    wasHealthy = deps.bus.healthy();
    healthTimer = setInterval(() => {
      const now = deps.bus.healthy();
      if (now !== wasHealthy) broadcast(now ? sse("resync", { reason: "the change transport is back" }) : sse("degraded", { reason: "the change transport is down" }));
      // Revocations published while the transport was down were missed: check every credential.
      if (now && !wasHealthy) for (const s of [...streams]) s.recheck();
      wasHealthy = now;
    }, healthCheckMs);
    healthTimer.unref();
  };
  const unwatchHealth = () => {
    if (healthTimer !== undefined && streams.size === 0) {
      clearInterval(healthTimer);
      healthTimer = undefined;
    }
  };

  const stopRevocations = deps.bus.onRevocation((tokenId) => {
    for (const s of [...streams]) if (s.tokenId === tokenId) s.end();
  });

  // app.close() waits for open connections: end every stream first, so shutdown is prompt.
  api.addHook("preClose", async () => {
    stopRevocations();
    for (const s of [...streams]) s.end();
  });

  api.get<{ Querystring: PrefixQuery }>("/v1/watch", {
    schema: {
      summary: "Stream (server-sent events) the names of secrets under prefix that change and that you may list; never values",
      description:
        "`text/event-stream`. Events: `ready` `{prefix, transport, healthy}`; `change` `{name, version, action, at}` (id: at); " +
        "`degraded` (the change transport is down: poll) and `resync` (it is back: check everything once); `: heartbeat` comments.",
      querystring: PREFIX_QUERY,
      response: { 200: { description: "an event stream", content: { "text/event-stream": { schema: { type: "string" } } } } },
    },
  }, async (req, reply) => {
    // fastify routes HEAD here too: the headers a GET would get, no body, no stream, no audit.
    if (req.method === "HEAD") return reply.status(200).headers(SSE_HEADERS).send();
    const prefix = req.query.prefix ?? "";
    // The credential's expiry ends the stream; a revocation of its API token on the bus, too.
    const expiresAt = req.principal?.expiresAt ?? null;
    const expired = () => expiresAt !== null && expiresAt.getTime() <= Date.now();
    await deps.audit(req, prefix); // a throw refuses the stream (fail closed)
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...SSE_HEADERS, connection: "keep-alive" });
    res.socket?.setNoDelay(true);
    let unsubscribe: (() => void) | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let expiry: NodeJS.Timeout | undefined;
    const stream: Stream = {
      res,
      tokenId: req.principal?.tokenId,
      end: () => {
        if (!streams.delete(stream)) return;
        unsubscribe?.();
        if (heartbeat !== undefined) clearInterval(heartbeat);
        if (expiry !== undefined) clearTimeout(expiry);
        unwatchHealth();
        if (!res.writableEnded) res.end();
      },
      recheck: () => {
        if (expired()) return stream.end();
        stillValid(req).then((ok) => ok || stream.end(), stream.end);
      },
    };
    streams.add(stream);
    res.on("close", stream.end);
    res.on("error", stream.end);
    write(stream, sse("ready", { prefix, transport: deps.bus.kind, healthy: deps.bus.healthy() }));
    unsubscribe = deps.bus.subscribe((event: ChangeEvent) => {
      if (expired()) return stream.end();
      if (!event.name.startsWith(prefix)) return;
      // Looked up per event: the policy is the one the server runs with.
      if (!deps.canSee(req, event.name)) return;
      const { name, version, action, at } = event;
      write(stream, sse("change", { name, version, action, at }, at));
    });
    heartbeat = setInterval(() => {
      stillValid(req).then((ok) => (ok ? write(stream, ": heartbeat\n\n") : stream.end()), stream.end);
    }, heartbeatMs);
    heartbeat.unref();
    if (expiresAt !== null) {
      const ms = expiresAt.getTime() - Date.now();
      if (ms <= 0) stream.end();
      else if (ms < MAX_TIMER_MS) (expiry = setTimeout(stream.end, ms)).unref();
    }
    watchHealth();
    if (res.destroyed) stream.end();
    // A revocation published between authentication and here found no stream to end: look once.
    else if (stream.tokenId !== undefined) stream.recheck();
  });
}

/** One event in SSE framing; `data` is one line of JSON. */
export function sse(event: string, data: unknown, id?: string): string {
  const idLine = id !== undefined && /^[^\r\n\0]*$/.test(id) ? `id: ${id}\n` : "";
  return `event: ${event}\n${idLine}data: ${JSON.stringify(data)}\n\n`;
}

function write(s: Stream, text: string): void {
  if (s.res.writableEnded || s.res.destroyed) return;
  if (s.res.writableLength > MAX_BUFFERED_BYTES) {
    s.res.destroy();
    return;
  }
  s.res.write(text);
}
