/**
 * A loopback stand-in for the coffer server's HTTP API, answering as its contract says:
 * `GET/PUT/DELETE /v1/secrets/{name}`, `GET /v1/secrets?prefix=`, `GET /v1/secrets/{name}/versions`,
 * `GET /v1/auth/self`, `GET /v1/sys/health`; errors as `{"error":{"code","message"},"requestId"}`.
 * Secrets live in memory; one fixed token is accepted. With `watch: true` it also serves
 * `GET /v1/watch?prefix=` (server-sent events: ready, then a change event per write or removal);
 * without, /v1/watch is a 404, as on an older server.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes, randomUUID } from "node:crypto";

/** One request the fake saw. */
export interface RecordedRequest {
  method: string;
  /** the raw request target, e.g. `/v1/secrets/db/pw?version=2` */
  url: string;
  headers: IncomingHttpHeaders;
  /** the request body as text */
  body: string;
}

/** A failure the fake answers every request with, instead of the API. */
export type Fault =
  | { kind: "error"; status: number; code: string; message: string; retryAfter?: string }
  | { kind: "raw"; status: number; body: string; contentType?: string }
  | { kind: "hang" }
  | { kind: "oversized"; bytes: number };

interface Version {
  value: Buffer;
  createdAt: string;
  createdBy: string;
}

interface Entry {
  versions: Version[];
  description: string | null;
  removed: boolean;
  updatedAt: string;
}

/** The running fake. */
export interface FakeCofferServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** the token it accepts: `cof_` + 43 base64url characters */
  readonly token: string;
  /** the subject `GET /v1/auth/self` gives for the token */
  readonly subject: string;
  /** every request, in order */
  readonly requests: RecordedRequest[];
  /** when set, every request (health too) gets this instead */
  fault: Fault | undefined;
  /** names that answer 403 even to the right token */
  readonly denied: Set<string>;
  /** writes a new version directly; returns its number */
  put(name: string, value: string | Buffer, description?: string): number;
  /** removes a secret (as DELETE would) */
  remove(name: string): void;
  /** the open /v1/watch streams */
  readonly streams: number;
  /** writes raw text to every open /v1/watch stream */
  sendToStreams(text: string): void;
  /** cuts every open /v1/watch stream (as a restart or a proxy would) */
  dropStreams(): void;
  /** with `watch: true`: false makes /v1/watch answer 503 (the stream cannot be opened) */
  watchAvailable: boolean;
  /** false: writes send no change events (as when the change transport is down) */
  announce: boolean;
  close(): Promise<void>;
}

/** Starts the fake on 127.0.0.1, a random port. */
export async function startFakeCofferServer(options: { token?: string; roles?: string[]; watch?: boolean } = {}): Promise<FakeCofferServer> {
  const token = options.token ?? `cof_${randomBytes(32).toString("base64url")}`;
  const subject = `token:${token.slice(4, 12)}`;
  const secrets = new Map<string, Entry>();
  const requests: RecordedRequest[] = [];
  const denied = new Set<string>();
  const hanging: ServerResponse[] = [];
  const streams = new Map<ServerResponse, string>();
  const announce = (name: string, version: number, action: "write" | "delete"): void => {
    if (!fake.announce) return;
    const at = new Date().toISOString();
    for (const [res, prefix] of streams) {
      if (name.startsWith(prefix)) res.write(`event: change\nid: ${at}\ndata: ${JSON.stringify({ name, version, action, at })}\n\n`);
    }
  };

  const put = (name: string, value: string | Buffer, description?: string, by = subject): number => {
    const now = new Date().toISOString();
    const e = secrets.get(name) ?? { versions: [], description: null, removed: false, updatedAt: now };
    e.versions.push({ value: Buffer.from(value), createdAt: now, createdBy: by });
    if (description !== undefined) e.description = description;
    e.removed = false;
    e.updatedAt = now;
    secrets.set(name, e);
    announce(name, e.versions.length, "write");
    return e.versions.length;
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers }).end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void =>
    send(res, status, { error: { code, message }, requestId: randomUUID() }, headers);

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: text });
      const f = fake.fault;
      if (f !== undefined) {
        if (f.kind === "hang") {
          hanging.push(res);
          return;
        }
        if (f.kind === "oversized") {
          res.writeHead(200, { "Content-Type": "application/json" });
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          let sent = 0;
          const more = (): void => {
            while (sent < f.bytes) {
              sent += chunk.length;
              if (!res.write(chunk)) {
                res.once("drain", more);
                return;
              }
            }
            res.end();
          };
          res.on("error", () => {});
          more();
          return;
        }
        if (f.kind === "raw") {
          res.writeHead(f.status, { "Content-Type": f.contentType ?? "application/json" }).end(f.body);
          return;
        }
        return fail(res, f.status, f.code, f.message, f.retryAfter !== undefined ? { "Retry-After": f.retryAfter } : {});
      }
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/v1/sys/health" && req.method === "GET") return send(res, 200, { status: "ok", version: "fake" });
      if (req.headers.authorization !== `Bearer ${token}`) {
        return fail(res, 401, "E_UNAUTHENTICATED", "the token is missing, invalid, expired or revoked");
      }
      if (url.pathname === "/v1/auth/self" && req.method === "GET") {
        return send(res, 200, { subject, kind: "token", roles: options.roles ?? ["admin"], expiresAt: null });
      }
      if (url.pathname === "/v1/watch" && req.method === "GET" && options.watch === true) {
        if (!fake.watchAvailable) return fail(res, 503, "E_UNAVAILABLE", "watch is unavailable");
        const prefix = url.searchParams.get("prefix") ?? "";
        res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store" });
        res.write(`event: ready\ndata: ${JSON.stringify({ prefix, transport: "memory", healthy: true })}\n\n`);
        streams.set(res, prefix);
        res.on("close", () => streams.delete(res));
        return;
      }
      if (url.pathname === "/v1/secrets" && req.method === "GET") {
        const prefix = url.searchParams.get("prefix") ?? "";
        const rows = [...secrets.entries()]
          .filter(([n, e]) => !e.removed && n.startsWith(prefix) && !denied.has(n))
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([name, e]) => ({ name, version: e.versions.length, description: e.description, updatedAt: e.updatedAt, updatedBy: e.versions.at(-1)!.createdBy }));
        return send(res, 200, { secrets: rows });
      }
      const m = /^\/v1\/secrets\/(.+?)(\/versions)?$/.exec(url.pathname);
      if (m === null) return fail(res, 404, "E_NOT_FOUND", `no route ${req.method} ${url.pathname}`);
      const name = m[1]!.split("/").map(decodeURIComponent).join("/");
      if (denied.has(name)) return fail(res, 403, "E_DENIED", `the policy does not allow ${subject} to read ${name}`);
      const e = secrets.get(name);
      const live = e !== undefined && !e.removed ? e : undefined;
      if (m[2] !== undefined) {
        if (req.method !== "GET") return fail(res, 400, "E_USAGE", "versions is read-only");
        if (live === undefined) return fail(res, 404, "E_NOT_FOUND", `no secret ${name}`);
        const versions = live.versions.map((v, i) => ({ version: i + 1, createdAt: v.createdAt, createdBy: v.createdBy, current: i === live.versions.length - 1 }));
        return send(res, 200, { name, versions });
      }
      if (req.method === "GET") {
        if (live === undefined) return fail(res, 404, "E_NOT_FOUND", `no secret ${name}`);
        const q = url.searchParams.get("version");
        const n = q === null ? live.versions.length : Number(q);
        const v = Number.isInteger(n) && n >= 1 ? live.versions[n - 1] : undefined;
        if (v === undefined) return fail(res, 404, "E_NOT_FOUND", `no version ${q} of ${name}`);
        let textValue: string | undefined;
        try {
          textValue = new TextDecoder("utf-8", { fatal: true }).decode(v.value);
        } catch {
          textValue = undefined;
        }
        return send(res, 200, {
          name,
          version: n,
          ...(textValue !== undefined ? { value: textValue } : { valueBase64: v.value.toString("base64") }),
          createdAt: v.createdAt,
          createdBy: v.createdBy,
          updatedAt: live.updatedAt,
        });
      }
      if (req.method === "PUT") {
        let body: { value?: unknown; valueBase64?: unknown; description?: unknown; ifVersion?: unknown };
        try {
          body = JSON.parse(text) as typeof body;
        } catch {
          return fail(res, 400, "E_INVALID_VALUE", "the body is not JSON");
        }
        const value = typeof body.value === "string" ? Buffer.from(body.value, "utf8") : typeof body.valueBase64 === "string" ? Buffer.from(body.valueBase64, "base64") : undefined;
        if (value === undefined || value.length === 0) return fail(res, 400, "E_INVALID_VALUE", "a value is required");
        if (body.ifVersion !== undefined && body.ifVersion !== (live?.versions.length ?? 0)) {
          return fail(res, 409, "E_CONFLICT", `${name} is not at version ${String(body.ifVersion)}`);
        }
        const version = put(name, value, typeof body.description === "string" ? body.description : undefined);
        return send(res, 200, { name, version });
      }
      if (req.method === "DELETE") {
        if (live === undefined) return fail(res, 404, "E_NOT_FOUND", `no secret ${name}`);
        live.removed = true;
        announce(name, live.versions.length, "delete");
        return send(res, 200, { name, version: live.versions.length });
      }
      return fail(res, 400, "E_USAGE", `unsupported method ${req.method}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const fake: FakeCofferServer = {
    url: `http://127.0.0.1:${port}`,
    token,
    subject,
    requests,
    fault: undefined,
    denied,
    put: (name, value, description) => put(name, value, description),
    remove(name) {
      const e = secrets.get(name);
      if (e !== undefined && !e.removed) {
        e.removed = true;
        announce(name, e.versions.length, "delete");
      }
    },
    get streams() {
      return streams.size;
    },
    sendToStreams(text) {
      for (const res of streams.keys()) res.write(text);
    },
    dropStreams() {
      for (const res of [...streams.keys()]) res.destroy();
      streams.clear();
    },
    watchAvailable: true,
    announce: true,
    async close() {
      for (const res of hanging) res.destroy();
      for (const res of streams.keys()) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
