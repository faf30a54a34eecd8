/**
 * Change events (issue 7): which secret names changed, never values. A write or delete on any
 * instance is published; every instance's `GET /v1/watch` streams tell their subscribers.
 * Carried by Redis pub/sub when `redis:` is configured, else PostgreSQL LISTEN/NOTIFY when
 * `database:` is, else in memory (one instance).
 *
 * A transport that is down never stops the server: the bus starts anyway, reports
 * `healthy() === false`, reconnects by itself, and the watch route tells its clients to
 * re-check (`event: resync`) when it is back.
 *
 * The same channel carries token revocations (`{"revoked": "<token id>", "at": …}`), so that every
 * instance ends the watch streams of a revoked token at once rather than at their next heartbeat.
 */
import { isSecretName } from "../core/names.ts";
import { firstConnection } from "./first-connection.ts";

/** One change. */
export interface ChangeEvent {
  name: string;
  /** the new version after a write; the last version for a delete */
  version: number | null;
  action: "write" | "delete";
  /** ISO 8601 UTC */
  at: string;
}

/** Publishes and delivers change events. */
export interface ChangeBus {
  readonly kind: "memory" | "redis" | "postgres";
  /** Sends an event to every subscriber of every instance. Never throws: a failure is counted and logged. */
  publish(event: ChangeEvent): Promise<void>;
  /** Calls `listener` for every event from any instance; returns the unsubscribe function. */
  subscribe(listener: (event: ChangeEvent) => void): () => void;
  /**
   * Tells every instance that the API token `tokenId` was revoked: this instance's listeners at
   * once (even with the transport down), the others' through it. Never throws.
   */
  publishRevocation(tokenId: string): Promise<void>;
  /** Calls `listener` with the id of every token revoked on any instance (maybe twice); returns the unsubscribe function. */
  onRevocation(listener: (tokenId: string) => void): () => void;
  /**
   * Tells the other instances that the database's roles changed, so they re-read them sooner
   * than their once-a-second check (roles.ts; correctness never depends on it). Never throws.
   */
  publishRolesChanged(): Promise<void>;
  /** Calls `listener` when another instance (or this one) says the roles changed; returns the unsubscribe function. */
  onRolesChanged(listener: () => void): () => void;
  /** False while the transport is down (events may be missed; clients fall back to polling). */
  healthy(): boolean;
  close(): Promise<void>;
}

/** Options of the buses. */
export interface ChangeBusOptions {
  /** told of every transport failure; the error's message never holds a URL (it may carry a password) */
  onError?: (err: Error) => void;
  /** how long creating the bus waits for the transport before starting without it (default 2000 ms) */
  connectTimeoutMs?: number;
  /**
   * Keeps deployments that share one Redis apart (`coffer:changes:<scope>`; the server passes its
   * store id). PostgreSQL needs none: NOTIFY stays within its database.
   */
  scope?: string;
}

/** The Redis channel and PostgreSQL NOTIFY channel events travel on. */
export const CHANGE_CHANNEL_REDIS = "coffer:changes";
export const CHANGE_CHANNEL_POSTGRES = "coffer_changes";

/**
 * The event in `value` with only its four fields, or undefined when it is not a well-formed
 * event (another program on the channel, a newer or broken instance): such events are ignored.
 */
export function toChangeEvent(value: unknown): ChangeEvent | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  const { name, version, action, at } = v;
  if (typeof name !== "string" || !isSecretName(name)) return undefined;
  if (version !== null && (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0)) return undefined;
  if (action !== "write" && action !== "delete") return undefined;
  if (typeof at !== "string" || at.length > 64 || Number.isNaN(Date.parse(at))) return undefined;
  return { name, version, action, at };
}

/** A token id as the server makes them (keys.ts): 16 hex digits. */
const TOKEN_ID = /^[0-9a-f]{16}$/;

/** Parses a message off the wire (JSON text): a change, a revocation or a roles change; undefined when malformed. */
function parseMessage(text: string): { change: ChangeEvent } | { revoked: string } | { roles: true } | undefined {
  if (text.length > 8192) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null && Object.hasOwn(value, "roles")) {
      return (value as { roles: unknown }).roles === "changed" ? { roles: true } : undefined;
    }
    if (typeof value === "object" && value !== null && Object.hasOwn(value, "revoked")) {
      const id = (value as { revoked: unknown }).revoked;
      return typeof id === "string" && TOKEN_ID.test(id) ? { revoked: id } : undefined;
    }
    const change = toChangeEvent(value);
    return change === undefined ? undefined : { change };
  } catch {
    return undefined;
  }
}

/** The listeners of a bus: changes and revocations, and `deliver` for a message off the wire. */
function busListeners() {
  const changes = listenerSet<ChangeEvent>();
  const revocations = listenerSet<string>();
  const roles = listenerSet<null>();
  const deliver = (text: string): void => {
    const m = parseMessage(text);
    if (m !== undefined && "revoked" in m) revocations.emit(m.revoked);
    else if (m !== undefined && "roles" in m) roles.emit(null);
    else if (m !== undefined) changes.emit(m.change);
  };
  return { changes, revocations, roles, deliver };
}

/** What a bus between instances needs of its transport (Redis, PostgreSQL). */
interface Transport {
  closed(): boolean;
  /** carries a message to every instance, this one included */
  send(text: string): Promise<unknown>;
  /** told of a message that could not be sent */
  failed(err: unknown): void;
  healthy(): boolean;
  close(): Promise<void>;
}

/**
 * A bus on `transport` (none: in memory, this instance only). A revocation reaches this
 * instance's listeners at once, even when the transport is down; a failed send is reported, never thrown.
 */
function makeBus(kind: ChangeBus["kind"], listeners: ReturnType<typeof busListeners>, transport?: Transport): ChangeBus {
  const post = async (text: string): Promise<void> => {
    if (transport === undefined || transport.closed()) return;
    try {
      await transport.send(text);
    } catch (err) {
      transport.failed(err);
    }
  };
  return {
    kind,
    async publish(event) {
      const e = toChangeEvent(event);
      if (e !== undefined && transport === undefined) listeners.changes.emit(e);
      else if (e !== undefined) await post(JSON.stringify(e));
    },
    subscribe: (listener) => listeners.changes.add(listener),
    async publishRevocation(tokenId) {
      if (!TOKEN_ID.test(tokenId)) return;
      listeners.revocations.emit(tokenId);
      await post(JSON.stringify({ revoked: tokenId, at: new Date().toISOString() }));
    },
    onRevocation: (listener) => listeners.revocations.add(listener),
    async publishRolesChanged() {
      // this instance refreshes itself after its own change; the message is for the others
      await post(JSON.stringify({ roles: "changed", at: new Date().toISOString() }));
    },
    onRolesChanged: (listener) => listeners.roles.add(() => listener()),
    healthy: () => transport === undefined || (!transport.closed() && transport.healthy()),
    async close() {
      if (transport?.closed() === true) return;
      listeners.changes.clear();
      listeners.revocations.clear();
      listeners.roles.clear();
      await transport?.close();
    },
  };
}

/** A listener set whose listeners cannot break each other. */
function listenerSet<T>(): { add: (l: (e: T) => void) => () => void; emit: (e: T) => void; clear: () => void } {
  const listeners = new Set<(event: T) => void>();
  return {
    add(listener) {
      // Wrapped, so the same function subscribed twice is two subscriptions.
      const wrapped = (e: T) => listener(e);
      listeners.add(wrapped);
      return () => void listeners.delete(wrapped);
    },
    emit(event) {
      for (const l of [...listeners]) {
        try {
          l(event);
        } catch {
          // one subscriber's failure is its own
        }
      }
    },
    clear: () => listeners.clear(),
  };
}

/** Only the error's code or class: driver messages may quote the URL (and its password). */
function safeError(what: string, err: unknown): Error {
  const e = err as { code?: unknown; name?: unknown } | null;
  const code = typeof e?.code === "string" ? e.code : typeof e?.name === "string" ? e.name : "error";
  return new Error(`${what}: ${code}`);
}

/** The single-instance bus. */
export function createMemoryBus(): ChangeBus {
  return makeBus("memory", busListeners());
}

/**
 * Redis pub/sub: one connection PUBLISHes on {@link CHANGE_CHANNEL_REDIS} (`:<scope>`, with a
 * scope), another SUBSCRIBEs.
 * Resolves once both are ready, or after `connectTimeoutMs`, or at the first failure (the bus
 * then starts unhealthy and ioredis keeps reconnecting).
 */
export async function createRedisBus(url: string, options: ChangeBusOptions = {}): Promise<ChangeBus> {
  const { Redis } = await import("ioredis");
  const onError = options.onError ?? (() => {});
  const listeners = busListeners();
  let closed = false;
  const common = {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    autoResubscribe: false, // we subscribe on every "ready" ourselves
    retryStrategy: (times: number) => (closed ? null : Math.min(250 * 2 ** Math.min(times, 6), 10_000)),
  };
  const channel = options.scope === undefined ? CHANGE_CHANNEL_REDIS : `${CHANGE_CHANNEL_REDIS}:${options.scope}`;
  const pub = new Redis(url, { ...common, connectionName: "coffer-publish" });
  const sub = new Redis(url, { ...common, connectionName: "coffer-subscribe" });
  let subscribed = false;
  // An "error" event without a listener would crash the process: every one is reported instead.
  pub.on("error", (err: unknown) => onError(safeError("redis publisher", err)));
  sub.on("error", (err: unknown) => onError(safeError("redis subscriber", err)));
  sub.on("close", () => (subscribed = false));
  sub.on("ready", () => {
    sub.subscribe(channel).then(
      () => (subscribed = true),
      (err: unknown) => onError(safeError("redis subscribe", err)),
    );
  });
  sub.on("message", (from: string, message: string) => {
    if (from === channel) listeners.deliver(message);
  });
  const healthy = () => subscribed && pub.status === "ready" && sub.status === "ready";

  // Wait (briefly) for both connections, so the first streams do not miss events.
  const connected = firstConnection(healthy, [pub, sub], options.connectTimeoutMs ?? 2000);
  pub.connect().catch(() => {});
  sub.connect().catch(() => {});
  await connected;

  return makeBus("redis", listeners, {
    closed: () => closed,
    send: (text) => pub.publish(channel, text),
    failed: (err) => onError(safeError("redis publish", err)),
    healthy,
    async close() {
      closed = true;
      await Promise.allSettled([quit(pub), quit(sub)]);
    },
  });

  async function quit(r: InstanceType<typeof Redis>): Promise<void> {
    if (r.status === "ready") {
      await Promise.race([r.quit().catch(() => {}), new Promise((res) => setTimeout(res, 1000).unref())]);
    }
    r.disconnect(false);
  }
}

/**
 * PostgreSQL LISTEN/NOTIFY: a dedicated client LISTENs on {@link CHANGE_CHANNEL_POSTGRES} and
 * reconnects with backoff (250 ms doubling to 10 s) when it drops; events are sent with
 * `pg_notify` from a small pool. Resolves once listening, or after `connectTimeoutMs` / the
 * first failure (the bus then starts unhealthy and keeps trying).
 */
export async function createPostgresBus(url: string, options: ChangeBusOptions = {}): Promise<ChangeBus> {
  const pg = (await import("pg")).default;
  const onError = options.onError ?? (() => {});
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const listeners = busListeners();
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: connectTimeoutMs, idleTimeoutMillis: 30_000, application_name: "coffer-notify" });
  pool.on("error", (err) => onError(safeError("postgres publisher", err)));
  let closed = false;
  let listening = false;
  let client: InstanceType<typeof pg.Client> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let backoff = 250;

  const connect = async (): Promise<void> => {
    if (closed) return;
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs, application_name: "coffer-listen", keepAlive: true });
    client = c;
    let dropped = false;
    const drop = (err?: unknown) => {
      if (dropped) return;
      dropped = true;
      listening = false;
      if (err !== undefined && !closed) onError(safeError("postgres listener", err));
      c.removeAllListeners("notification");
      c.end().catch(() => {});
      if (!closed) {
        retryTimer = setTimeout(() => void connect().catch(() => {}), backoff);
        retryTimer.unref();
        backoff = Math.min(backoff * 2, 10_000);
      }
    };
    c.on("error", (err) => drop(err));
    c.on("end", () => drop());
    c.on("notification", (msg) => {
      if (msg.channel !== CHANGE_CHANNEL_POSTGRES || msg.payload === undefined) return;
      listeners.deliver(msg.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGE_CHANNEL_POSTGRES}`);
      if (closed || dropped) {
        c.end().catch(() => {});
        return;
      }
      listening = true;
      backoff = 250;
    } catch (err) {
      drop(err ?? new Error("connect failed"));
      throw err;
    }
  };

  await Promise.race([connect().catch(() => {}), new Promise((res) => setTimeout(res, connectTimeoutMs).unref())]);

  return makeBus("postgres", listeners, {
    closed: () => closed,
    send: (text) => pool.query("SELECT pg_notify($1, $2)", [CHANGE_CHANNEL_POSTGRES, text]),
    failed: (err) => onError(safeError("postgres publish", err)),
    healthy: () => listening,
    async close() {
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      await Promise.allSettled([client?.end(), pool.end()]);
    },
  });
}

/**
 * The bus a server's config calls for: Redis pub/sub with `redis`, else PostgreSQL
 * LISTEN/NOTIFY with `database`, else memory. Never fails for a transport that is down.
 */
export async function createChangeBus(config: { redis?: string; database?: string }, options: ChangeBusOptions = {}): Promise<ChangeBus> {
  if (config.redis !== undefined) return createRedisBus(config.redis, options);
  if (config.database !== undefined) return createPostgresBus(config.database, options);
  return createMemoryBus();
}
