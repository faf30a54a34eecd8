/**
 * A loopback stand-in for the runbook routes of the coffer server, answering as the HTTP contract
 * (helpers/api.md) says: `/v1/runbooks`, `…/{name}`, `…/validate`, `…/run`, `/v1/executions`,
 * `…/{id}`, `…/output` (text, or server-sent events), `…/cancel`, `…/approve`, plus
 * `/v1/auth/self` for `coffer login`. Nothing runs: each runbook has a plan (the output pieces and
 * how it ends). Output streams are written in small pieces with pauses between them, so events
 * and multi-byte characters arrive split across TCP reads.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import type { Execution, ExecutionStatus, RunbookInfo, ValidRunbook } from "../../src/client/runbooks.ts";

/** One request the stub saw. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** How a runbook's execution goes. `hold`: it stays running until cancelled. */
export interface Plan {
  /** output pieces; `$NAME` is replaced by the param's value */
  output: string[];
  end: { status: ExecutionStatus; exitCode: number | null; signal: string | null } | "hold";
}

/** An error answer the stub gives to every request whose target starts with `prefix`. */
export interface Fault {
  prefix: string;
  status: number;
  code: string;
  message: string;
  problems?: string[];
  retryAfter?: string;
}

export interface RunbookStub {
  readonly url: string;
  /** the token of `token:alice` */
  readonly token: string;
  /** the token of `token:bob`, another principal */
  readonly otherToken: string;
  readonly requests: RecordedRequest[];
  readonly executions: Map<string, { execution: Execution; output: string[] }>;
  fault: Fault | undefined;
  /** when set, an output stream of this execution id is answered with this raw body (then closed) */
  rawStream: { id: string; contentType: string; body: string; close: boolean } | undefined;
  close(): Promise<void>;
}

const param = (name: string, required: boolean, pattern: string | null, def: string | null = null) =>
  ({ name, required, pattern, description: `the ${name.toLowerCase()}`, default: def });

function runbook(name: string, extra: Partial<ValidRunbook> = {}): ValidRunbook {
  return {
    name, valid: true, description: `the ${name} runbook`, isolation: "sandbox", approvals: 0, timeoutMs: 600_000,
    outputLimit: 10 * 1024 * 1024, concurrency: null, secrets: [], files: [], params: [], ...extra,
  };
}

/** The stub's runbooks and what running each does. */
export const RUNBOOKS: { info: RunbookInfo; plan: Plan }[] = [
  { info: { name: "broken", valid: false, problems: ["broken.yml:3: unknown key \"rn\"", "broken.yml: no \"run\""] }, plan: { output: [], end: "hold" } },
  {
    info: runbook("cancel-me"),
    plan: { output: ["started\n"], end: "hold" },
  },
  {
    info: runbook("fail3"),
    plan: { output: ["about to fail\n"], end: { status: "failed", exitCode: 3, signal: null } },
  },
  {
    info: runbook("flush-cdn", {
      description: "Flush the CDN cache for one region\nsecond line", secrets: ["CDN_TOKEN"], files: ["CLIENT_KEY"], concurrency: 1,
      params: [param("REGION", true, "^[a-z0-9-]{1,32}$"), param("NOTE", false, null, "")],
    }),
    // Multi-byte characters (é, ✓, 🚀) in pieces that the stream splits further.
    plan: { output: ["flushing $REGION\n", "café ✓ ", "🚀 done\n", "CDN_TOKEN=***\n"], end: { status: "succeeded", exitCode: 0, signal: null } },
  },
  {
    info: runbook("needs-ok", { approvals: 1 }),
    plan: { output: ["approved and ran\n"], end: { status: "succeeded", exitCode: 0, signal: null } },
  },
  {
    info: runbook("slow", { timeoutMs: 2000, isolation: "tempdir" }),
    plan: { output: ["sleeping\n"], end: { status: "timed-out", exitCode: null, signal: "SIGTERM" } },
  },
];

/** Starts the stub on a free loopback port. */
export async function startRunbookStub(): Promise<RunbookStub> {
  const tokens = new Map([[`cof_${randomBytes(32).toString("base64url")}`, "token:alice"], [`cof_${randomBytes(32).toString("base64url")}`, "token:bob"]]);
  const [token, otherToken] = [...tokens.keys()] as [string, string];
  const requests: RecordedRequest[] = [];
  const executions = new Map<string, { execution: Execution; output: string[] }>();
  let seq = 0;
  const streams = new Set<ServerResponse>();

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void =>
    send(res, status, { error: { code, message, ...extra }, requestId: `req-${requests.length}` }, headers);

  const check = (info: ValidRunbook, given: Record<string, string>): { problems: string[]; params: Record<string, string> } => {
    const problems: string[] = [];
    const params: Record<string, string> = {};
    for (const k of Object.keys(given)) if (!info.params.some((p) => p.name === k)) problems.push(`${k}: not a param of ${info.name}`);
    for (const p of info.params) {
      const v = given[p.name] ?? p.default ?? undefined;
      if (v === undefined) {
        if (p.required) problems.push(`${p.name}: required`);
        continue;
      }
      if (p.pattern !== null && !new RegExp(p.pattern).test(v)) problems.push(`${p.name}: does not match ${p.pattern}`);
      params[p.name] = v;
    }
    return { problems, params };
  };

  const finish = (entry: { execution: Execution; output: string[] }, plan: Plan): void => {
    const e = entry.execution;
    e.status = "running";
    e.startedAt = new Date().toISOString();
    entry.output.push(...plan.output.map((o) => o.replace(/\$([A-Z_]+)/g, (_, k: string) => e.params[k] ?? "")));
    e.outputBytes = Buffer.byteLength(entry.output.join(""));
    if (plan.end !== "hold") Object.assign(e, plan.end, { finishedAt: new Date().toISOString() });
  };

  const final = (s: ExecutionStatus): boolean => s !== "running" && s !== "pending-approval";

  const stream = async (res: ServerResponse, entry: { execution: Execution; output: string[] }): Promise<void> => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    streams.add(res);
    res.on("close", () => streams.delete(res));
    // Each event goes out in pieces of 1 to 7 bytes with a pause between them.
    const write = async (text: string): Promise<void> => {
      const bytes = Buffer.from(text);
      for (let i = 0; i < bytes.length && !res.destroyed; ) {
        const n = 1 + ((i * 7 + bytes.length) % 7);
        res.write(bytes.subarray(i, i + n));
        i += n;
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    await write(": keepalive\n\n");
    let sent = 0;
    for (;;) {
      while (sent < entry.output.length) await write(`event: output\ndata: ${JSON.stringify({ text: entry.output[sent++] })}\n\n`);
      if (final(entry.execution.status) || res.destroyed) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!res.destroyed) await write(`event: end\ndata: ${JSON.stringify({ execution: entry.execution })}\n\n`);
    res.end();
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const target = req.url ?? "/";
      requests.push({ method: req.method ?? "GET", url: target, headers: req.headers, body });
      const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
      const subject = auth !== null ? tokens.get(auth[1]!) : undefined;
      if (subject === undefined) return fail(res, 401, "E_UNAUTHENTICATED", "the token is missing, invalid, expired or revoked");
      if (stub.fault !== undefined && target.startsWith(stub.fault.prefix)) {
        const f = stub.fault;
        return fail(res, f.status, f.code, f.message, f.problems !== undefined ? { problems: f.problems } : {}, f.retryAfter !== undefined ? { "retry-after": f.retryAfter } : {});
      }
      const u = new URL(target, "http://stub");
      const parts = u.pathname.split("/").slice(1).map(decodeURIComponent);
      const method = req.method;
      if (method === "GET" && u.pathname === "/v1/auth/self") return send(res, 200, { subject, kind: "token", roles: ["ops"], expiresAt: null });
      if (parts[0] !== "v1") return fail(res, 404, "E_NOT_FOUND", "no such route");
      if (parts[1] === "runbooks") {
        if (method === "GET" && parts.length === 2) return send(res, 200, { runbooks: RUNBOOKS.map((r) => r.info) });
        const found = RUNBOOKS.find((r) => r.info.name === parts[2]);
        if (found === undefined) return fail(res, 404, "E_NOT_FOUND", `no runbook ${parts[2]}`);
        if (method === "GET" && parts.length === 3) return send(res, 200, { runbook: found.info });
        const info = found.info;
        if (method !== "POST" || parts.length !== 4 || (parts[3] !== "validate" && parts[3] !== "run")) return fail(res, 404, "E_NOT_FOUND", "no such route");
        if (!info.valid) return fail(res, 409, "E_CONFLICT", `runbook ${info.name} is invalid and cannot run`);
        let given: Record<string, string>;
        try {
          given = (JSON.parse(body) as { params: Record<string, string> }).params;
        } catch {
          return fail(res, 400, "E_USAGE", "the body is not JSON");
        }
        const { problems, params } = check(info, given);
        if (problems.length > 0) return fail(res, 400, "E_INVALID_VALUE", `runbook ${info.name}: ${problems.length} problems with the params`, { problems });
        if (parts[3] === "validate") return send(res, 200, { valid: true, params });
        const id = `0193${String(++seq).padStart(8, "0")}-0000-7000-8000-000000000000`;
        const now = new Date().toISOString();
        const entry = {
          execution: {
            id, runbook: info.name, status: "pending-approval" as ExecutionStatus, exitCode: null, signal: null, by: subject, params, createdAt: now,
            startedAt: null, finishedAt: null, outputBytes: 0, truncated: false, approvalsRequired: info.approvals, approvals: [],
            expiresAt: info.approvals > 0 ? new Date(Date.now() + 3_600_000).toISOString() : null, cancelRequested: false,
          },
          output: [] as string[],
        };
        executions.set(id, entry);
        if (info.approvals === 0) finish(entry, found.plan);
        return send(res, 202, { id, status: info.approvals === 0 ? "running" : "pending-approval" });
      }
      if (parts[1] === "executions") {
        if (method === "GET" && parts.length === 2) {
          const rb = u.searchParams.get("runbook");
          const limit = Number(u.searchParams.get("limit") ?? 20);
          const before = u.searchParams.get("before");
          const all = [...executions.values()].map((e) => e.execution).filter((e) => rb === null || e.runbook === rb)
            .filter((e) => before === null || e.id < before).sort((a, b) => (a.id < b.id ? 1 : -1));
          return send(res, 200, { executions: all.slice(0, limit) });
        }
        const entry = executions.get(parts[2] ?? "");
        if (entry === undefined) return fail(res, 404, "E_NOT_FOUND", `no execution ${parts[2]}`);
        const e = entry.execution;
        if (method === "GET" && parts.length === 3) return send(res, 200, { execution: e });
        if (method === "GET" && parts[3] === "output") {
          if (stub.rawStream?.id === e.id) {
            const raw = stub.rawStream;
            res.writeHead(200, { "content-type": raw.contentType });
            res.write(raw.body);
            if (raw.close) res.end();
            else streams.add(res);
            return;
          }
          if ((req.headers.accept ?? "").includes("text/event-stream")) return void stream(res, entry);
          res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
          return void res.end(entry.output.join(""));
        }
        if (method === "POST" && parts[3] === "cancel") {
          if (final(e.status)) return fail(res, 409, "E_CONFLICT", `execution ${e.id} has already ended (${e.status})`);
          Object.assign(e, { status: "cancelled", cancelRequested: true, finishedAt: new Date().toISOString(), signal: e.startedAt === null ? null : "SIGTERM" });
          return send(res, 200, { execution: e });
        }
        if (method === "POST" && parts[3] === "approve") {
          if (e.status !== "pending-approval") return fail(res, 409, "E_CONFLICT", `execution ${e.id} is not pending (${e.status})`);
          if (subject === e.by) return fail(res, 403, "E_DENIED", "the requester cannot approve their own execution");
          if (!e.approvals.includes(subject)) e.approvals.push(subject);
          if (e.approvals.length >= e.approvalsRequired) finish(entry, RUNBOOKS.find((r) => r.info.name === e.runbook)!.plan);
          return send(res, 200, { execution: e });
        }
      }
      return fail(res, 404, "E_NOT_FOUND", "no such route");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const stub: RunbookStub = {
    url: `http://127.0.0.1:${port}`,
    token,
    otherToken,
    requests,
    executions,
    fault: undefined,
    rawStream: undefined,
    close: async () => {
      for (const s of streams) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return stub;
}
