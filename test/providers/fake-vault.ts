/**
 * A loopback stand-in for HashiCorp Vault's KV v2 HTTP API, answering as Vault's API
 * documentation shows: `GET/POST/DELETE /v1/:mount/data/*path`, `GET /v1/:mount/metadata/*path`,
 * 403 `{"errors":["permission denied"]}` for a wrong token, 404 `{"errors":[]}` for a missing
 * secret, and 404 with `data.data: null` and the metadata for a deleted version.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";

/** One request the fake saw. */
export interface RecordedRequest {
  method: string;
  /** the raw request target, e.g. `/v1/secret/data/db%20x/pw?version=2` */
  url: string;
  headers: IncomingHttpHeaders;
}

/** A failure the fake answers every request with, instead of the API. */
export type Fault =
  | { kind: "status"; status: number; body?: string; contentType?: string }
  | { kind: "hang" }
  | { kind: "oversized"; bytes: number };

interface Version {
  data: Record<string, unknown> | null;
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

/** The running fake. */
export interface FakeVault {
  /** `http://127.0.0.1:<port>` */
  readonly address: string;
  /** the token it accepts */
  readonly token: string;
  /** every request, in order */
  readonly requests: RecordedRequest[];
  /** when set, every request gets this instead */
  fault: Fault | undefined;
  /** paths (mount/path) that answer 403 even to the right token (a policy that denies) */
  readonly denied: Set<string>;
  /** writes a new version directly (as a POST would); returns its number */
  put(path: string, data: Record<string, unknown>, mount?: string): number;
  /** marks a version destroyed (data gone) */
  destroy(path: string, version: number, mount?: string): void;
  close(): Promise<void>;
}

/** Starts the fake on 127.0.0.1, a random port. */
export async function startFakeVault(options: { token?: string; mounts?: string[] } = {}): Promise<FakeVault> {
  const token = options.token ?? "s.fake-root-token";
  const mounts = new Set(options.mounts ?? ["secret"]);
  const secrets = new Map<string, Version[]>(); // "mount\0path" → versions (index = version - 1)
  const requests: RecordedRequest[] = [];
  const denied = new Set<string>();
  const hanging: ServerResponse[] = [];

  const put = (path: string, data: Record<string, unknown>, mount = "secret"): number => {
    const k = `${mount}\0${path}`;
    const list = secrets.get(k) ?? [];
    list.push({ data, created_time: new Date().toISOString(), deletion_time: "", destroyed: false });
    secrets.set(k, list);
    return list.length;
  };

  const send = (res: ServerResponse, status: number, body?: unknown): void => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" }).end(text);
  };
  const envelope = (data: unknown): Record<string, unknown> => ({
    request_id: randomUUID(),
    lease_id: "",
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: null,
    auth: null,
    mount_type: "kv",
  });
  const versionMeta = (v: Version, n: number): Record<string, unknown> => ({
    created_time: v.created_time,
    custom_metadata: null,
    deletion_time: v.deletion_time,
    destroyed: v.destroyed,
    version: n,
  });

  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
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
        res.writeHead(f.status, { "Content-Type": f.contentType ?? "application/json" }).end(f.body ?? "");
        return;
      }
      const url = new URL(req.url ?? "/", "http://x");
      if (req.headers["x-vault-token"] !== token) return send(res, 403, { errors: ["permission denied"] });
      // the mount is the longest configured prefix (mounts may have several segments, e.g. kv/team)
      const route = url.pathname.startsWith("/v1/") ? url.pathname.slice(4) : url.pathname;
      const mount = [...mounts].sort((a, b) => b.length - a.length).find((mt) => route.startsWith(`${mt}/`));
      const m = mount === undefined ? null : /^(data|metadata)\/(.+)$/.exec(route.slice(mount.length + 1));
      if (mount === undefined || m === null) {
        return send(res, 404, { errors: [`no handler for route "${decodeURIComponent(route)}". route entry not found.`] });
      }
      const kind = m[1]!;
      const path = m[2]!.split("/").map(decodeURIComponent).join("/");
      if (denied.has(`${mount}/${path}`)) return send(res, 403, { errors: ["permission denied"] });
      const k = `${mount}\0${path}`;
      const list = secrets.get(k);
      if (kind === "data" && req.method === "GET") {
        if (list === undefined || list.length === 0) return send(res, 404, { errors: [] });
        const q = url.searchParams.get("version");
        const n = q === null || q === "0" ? list.length : Number(q);
        const v = Number.isInteger(n) && n >= 1 ? list[n - 1] : undefined;
        if (v === undefined) return send(res, 404, { errors: [] });
        const body = envelope({ data: v.deletion_time !== "" || v.destroyed ? null : v.data, metadata: versionMeta(v, n) });
        return send(res, v.deletion_time !== "" || v.destroyed ? 404 : 200, body);
      }
      if (kind === "data" && req.method === "POST") {
        let body: { data?: Record<string, unknown>; options?: { cas?: number } };
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof body;
        } catch {
          return send(res, 400, { errors: ["failed to parse JSON input"] });
        }
        if (typeof body.data !== "object" || body.data === null) return send(res, 400, { errors: ["no data provided"] });
        const cas = body.options?.cas;
        if (cas !== undefined && cas !== (list?.length ?? 0)) {
          return send(res, 400, { errors: ["check-and-set parameter did not match the current version"] });
        }
        const n = put(path, body.data, mount);
        return send(res, 200, envelope(versionMeta(secrets.get(k)![n - 1]!, n)));
      }
      if (kind === "data" && req.method === "DELETE") {
        const last = list?.[list.length - 1];
        if (last !== undefined && last.deletion_time === "") last.deletion_time = new Date().toISOString();
        return send(res, 204);
      }
      if (kind === "metadata" && req.method === "GET") {
        if (list === undefined || list.length === 0) return send(res, 404, { errors: [] });
        const versions: Record<string, unknown> = {};
        list.forEach((v, i) => {
          versions[String(i + 1)] = { created_time: v.created_time, deletion_time: v.deletion_time, destroyed: v.destroyed };
        });
        return send(res, 200, envelope({
          cas_required: false,
          created_time: list[0]!.created_time,
          current_version: list.length,
          custom_metadata: null,
          delete_version_after: "0s",
          max_versions: 0,
          oldest_version: 0,
          updated_time: list[list.length - 1]!.created_time,
          versions,
        }));
      }
      return send(res, 405, { errors: ["1 error occurred:\n\t* unsupported operation\n\n"] });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const fake: FakeVault = {
    address: `http://127.0.0.1:${port}`,
    token,
    requests,
    fault: undefined,
    denied,
    put,
    destroy(path: string, version: number, mount = "secret"): void {
      const v = secrets.get(`${mount}\0${path}`)?.[version - 1];
      if (v !== undefined) {
        v.destroyed = true;
        v.data = null;
      }
    },
    async close(): Promise<void> {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
