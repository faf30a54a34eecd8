/**
 * `/v1/runbooks` and `/v1/executions` (docs/design.md §10): the reviewed scripts of the server's
 * runbooks directory, run over the API with their secrets, and their history. Policy paths are
 * `runbook:NAME` with `read` (see it, validate, history, output), `run` (run, cancel) and
 * `approve`. A name from a request is only ever looked up among the runbooks loaded at start (or
 * on SIGHUP): it never reaches the filesystem. Values never leave in an answer: params that are
 * not secrets are stored and shown, secret values are masked in output.
 */
import { StringDecoder } from "node:string_decoder";
import { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CofferError, isCofferError } from "../../errors.ts";
import type { ExecutionStatus, ServerStorage, StoredExecution } from "../../storage/types.ts";
import type { CatalogEntry, RunbookCatalog } from "../../runbooks/catalog.ts";
import { checkParams, claimsMatch, type Runbook } from "../../runbooks/definition.ts";
import { isFinal, type ExecutionManager, type Requester } from "../../runbooks/executions.ts";
import type { ServerParts } from "../context.ts";
import { principalOf } from "../lineage.ts";
import {
  EXECUTION_PARAMS, EXECUTION_SCHEMA, HISTORY_QUERY, RUN_BODY, RUNBOOK_INFO, RUNBOOK_PARAMS,
  type ExecutionParams, type HistoryQuery, type RunBody, type RunbookParams,
} from "../schemas.ts";
import { SSE_HEADERS, sse } from "./watch.ts";

/** The server's runbooks, when `runbooks:` is configured. */
export interface RunbookParts {
  catalog: RunbookCatalog;
  executions: ExecutionManager;
  /** counts one execution against the principal's limit; throws E_RATE_LIMITED (429, Retry-After) past it */
  limit(req: FastifyRequest, reply: FastifyReply, principal: string): Promise<void>;
}

/** A 400 listing every problem (`error.problems` in the answer). */
export class ProblemsError extends CofferError {
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[]) {
    super("E_INVALID_VALUE", message);
    this.problems = problems;
  }
}

/** A runbook name in a URL: one segment of the secret-name rule. */
const RUNBOOK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** How often a stream looks for output written on another instance. */
const STREAM_POLL_MS = 500;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;
/** How long a stopping server lets output streams send their end event. */
const STREAM_CLOSE_GRACE_MS = 2_000;
/** Output chunks read per query. */
const PAGE = 64;
/** A stream whose client reads slower than this much unsent output waits for it to drain. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export function runbookRoutes(api: FastifyInstance, s: ServerParts): void {
  const parts = s.runbooks;
  const { storage } = s;
  /** The runbook a request names: refused (400) when it is not a name, 404 when none is loaded (after the policy said yes). */
  const entry = (name: string): CatalogEntry => {
    const found = parts?.catalog.get(name);
    if (found === undefined) throw new CofferError("E_NOT_FOUND", parts === undefined ? "this server has no runbooks (runbooks.dir is not configured)" : `no runbook "${name}"`);
    return found;
  };
  const runnable = (name: string): Runbook => {
    const e = entry(name);
    if (!e.valid) throw new CofferError("E_CONFLICT", `runbook "${name}" is invalid and cannot run: ${e.problems.join("; ")}`);
    return e.runbook;
  };
  const requester = async (req: FastifyRequest): Promise<Requester> => {
    const caller = req.caller();
    return { subject: caller.subject, principal: await principalOf(storage, caller), detail: req.auditDetail("ok") };
  };
  const manager = (): ExecutionManager => {
    if (parts === undefined) throw new CofferError("E_NOT_FOUND", "this server has no runbooks (runbooks.dir is not configured)");
    return parts.executions;
  };
  /** The execution `id`, once the caller holds `capability` on its runbook. */
  const execution = async (req: FastifyRequest, id: string, capability: "read" | "run" | "approve", action: string): Promise<StoredExecution> => {
    const e = await storage.getExecution(id);
    if (e === undefined) throw new CofferError("E_NOT_FOUND", `no execution ${id}`);
    await req.authorize(capability, `runbook:${e.runbook}`, action);
    return e;
  };
  const readable = (req: FastifyRequest, name: string): boolean => s.policy.allows(req.caller().roles, "read", `runbook:${name}`);

  api.get("/v1/runbooks", {
    schema: { summary: "List the runbooks you may read: params, limits, validity", response: { 200: { type: "object", properties: { runbooks: { type: "array", items: RUNBOOK_INFO } } } } },
  }, async (req) => {
    const runbooks = (parts?.catalog.list() ?? []).filter((e) => readable(req, e.name)).map(info);
    await req.record("ok", "runbook.list", { detail: { count: runbooks.length } });
    return { runbooks };
  });

  api.get<{ Params: RunbookParams }>("/v1/runbooks/:name", {
    schema: { summary: "A runbook: its params, secrets (names only), files, limits and validity", params: RUNBOOK_PARAMS, response: { 200: { type: "object", properties: { runbook: RUNBOOK_INFO } } } },
  }, async (req) => {
    const name = runbookName(req.params.name);
    await req.authorize("read", `runbook:${name}`, "runbook.read");
    return { runbook: info(entry(name)) };
  });

  api.post<{ Params: RunbookParams; Body: RunBody }>("/v1/runbooks/:name/validate", {
    schema: { summary: "Check params against a runbook; runs nothing", params: RUNBOOK_PARAMS, body: RUN_BODY },
  }, async (req) => {
    const name = runbookName(req.params.name);
    await req.authorize("read", `runbook:${name}`, "runbook.validate");
    const params = paramsOf(runnable(name), req.body?.params);
    return { valid: true, params };
  });

  api.post<{ Params: RunbookParams; Body: RunBody }>("/v1/runbooks/:name/run", {
    schema: { summary: "Run a runbook (202); pending-approval when it needs approvals", params: RUNBOOK_PARAMS, body: RUN_BODY },
  }, async (req, reply) => {
    const name = runbookName(req.params.name);
    await req.authorize("run", `runbook:${name}`, "runbook.run");
    const runbook = runnable(name);
    if (runbook.requireClaims !== null && !claimsMatch(runbook.requireClaims, req.caller().claims)) {
      s.metrics.denials.inc({ action: "runbook.run" });
      await req.record("denied", "runbook.run", { detail: { object: `runbook:${name}`, reason: "claims" } });
      throw new CofferError("E_DENIED", `you may not run runbook "${name}": it requires JWT claims ${Object.keys(runbook.requireClaims).join(", ")} that your credential does not carry`);
    }
    const params = paramsOf(runbook, req.body?.params);
    const by = await requester(req);
    await parts!.limit(req, reply, by.principal);
    const e = await manager().request(runbook, params, by);
    return reply.status(202).send({ id: e.id, status: e.status });
  });

  api.get<{ Querystring: HistoryQuery }>("/v1/executions", {
    schema: { summary: "Execution history, newest first (runbook, limit, before)", querystring: HISTORY_QUERY, response: { 200: { type: "object", properties: { executions: { type: "array", items: EXECUTION_SCHEMA } } } } },
  }, async (req) => {
    const limit = Number(req.query.limit ?? 20);
    const { before } = req.query;
    if (req.query.runbook !== undefined) {
      const runbook = runbookName(req.query.runbook);
      await req.authorize("read", `runbook:${runbook}`, "runbook.history");
      const rows = await storage.listExecutions({ runbook, limit, ...(before !== undefined && { before }) });
      return { executions: rows.map(executionJson) };
    }
    // Every runbook the caller may read: pages filtered until enough (or ten pages looked at).
    const out: StoredExecution[] = [];
    let cursor = before;
    for (let page = 0; page < 10 && out.length < limit; page++) {
      const rows = await storage.listExecutions({ limit: 100, ...(cursor !== undefined && { before: cursor }) });
      out.push(...rows.filter((e) => readable(req, e.runbook)));
      if (rows.length < 100) break;
      cursor = rows.at(-1)!.id;
    }
    return { executions: out.slice(0, limit).map(executionJson) };
  });

  api.get<{ Params: ExecutionParams }>("/v1/executions/:id", {
    schema: { summary: "One execution: status, exit code, params, times, output size", params: EXECUTION_PARAMS, response: { 200: { type: "object", properties: { execution: EXECUTION_SCHEMA } } } },
  }, async (req) => ({ execution: executionJson(await execution(req, req.params.id, "read", "runbook.execution")) }));

  api.post<{ Params: ExecutionParams }>("/v1/executions/:id/cancel", {
    schema: { summary: "Cancel a pending or running execution (an approver turning down a pending one: rejected)", params: EXECUTION_PARAMS, response: { 200: { type: "object", properties: { execution: EXECUTION_SCHEMA } } } },
  }, async (req) => {
    // An approver may turn down a pending execution (it ends rejected); stopping a running one takes run.
    const e = await storage.getExecution(req.params.id);
    const approver = e?.status === "pending-approval" && s.policy.allows(req.caller().roles, "approve", `runbook:${e.runbook}`);
    if (!approver) await execution(req, req.params.id, "run", "runbook.cancel");
    return { execution: executionJson(await manager().cancel(req.params.id, await requester(req))) };
  });

  api.post<{ Params: ExecutionParams }>("/v1/executions/:id/approve", {
    schema: { summary: "Approve a pending execution (another principal than the requester's)", params: EXECUTION_PARAMS, response: { 200: { type: "object", properties: { execution: EXECUTION_SCHEMA } } } },
  }, async (req) => {
    const e = await execution(req, req.params.id, "approve", "runbook.approve");
    const approved = await manager().approve(e.id, runnable(e.runbook), await requester(req)).catch(async (err: unknown) => {
      // The manager's one refusal of its own: the requester's principal approving its request.
      if (isCofferError(err, "E_DENIED")) {
        s.metrics.denials.inc({ action: "runbook.approve" });
        await req.record("denied", "runbook.approve", { detail: { object: `runbook:${e.runbook}`, execution: e.id, reason: "own request" } });
      }
      throw err;
    });
    return { execution: executionJson(approved) };
  });

  // The open output streams: how to end each, and when its loop is over.
  const streams = new Map<() => void, Promise<void>>();
  api.addHook("preClose", async () => {
    // Running scripts first (stopped, recorded interrupted), so a stream can still send its end
    // event; then, after a short grace, every stream still open is ended.
    await parts?.executions.close();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, STREAM_CLOSE_GRACE_MS).unref());
    await Promise.race([Promise.allSettled([...streams.values()]), grace]);
    for (const end of [...streams.keys()]) end();
  });

  api.get<{ Params: ExecutionParams }>("/v1/executions/:id/output", {
    schema: {
      summary: "An execution's output, masked: text, or with Accept: text/event-stream a live stream",
      description: "Events: `output` `{text}`; `end` `{execution}` once it has ended, then the stream closes; `: keepalive` comments.",
      params: EXECUTION_PARAMS,
    },
  }, async (req, reply) => {
    const e = await execution(req, req.params.id, "read", "runbook.output");
    const stream = (req.headers.accept ?? "").includes("text/event-stream");
    // fastify routes HEAD here too: the headers a GET would get, no body, no stream.
    if (req.method === "HEAD") return reply.status(200).headers(stream ? SSE_HEADERS : { "content-type": "text/plain; charset=utf-8" }).send();
    if (!stream) {
      return reply.type("text/plain; charset=utf-8").send(Readable.from(mapChunks(outputChunks(storage, e.id))));
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...SSE_HEADERS, connection: "keep-alive" });
    res.socket?.setNoDelay(true);
    let open = true;
    let wake: (() => void) | undefined;
    let over = (): void => {};
    const end = (): void => {
      if (!open) return;
      open = false;
      streams.delete(end);
      wake?.();
      if (!res.writableEnded) res.end();
    };
    streams.set(end, new Promise<void>((resolve) => (over = resolve)));
    res.on("close", end);
    res.on("error", end);
    const unlisten = parts?.executions.onOutput(e.id, () => wake?.()) ?? (() => {});
    const keepalive = setInterval(() => open && res.write(": keepalive\n\n"), KEEPALIVE_MS);
    keepalive.unref();
    const send = async (text: string): Promise<void> => {
      if (!open) return;
      res.write(text);
      if (res.writableLength > MAX_BUFFERED_BYTES) await new Promise<void>((resolve) => { res.once("drain", resolve); res.once("close", resolve); });
    };
    try {
      const decoder = new StringDecoder("utf8");
      let seq = -1;
      const pump = async (): Promise<void> => {
        for await (const c of outputChunks(storage, e.id, seq)) {
          seq = c.seq;
          const text = decoder.write(c.data);
          if (text !== "") await send(sse("output", { text }));
          if (!open) return;
        }
      };
      while (open) {
        await pump();
        const now = await storage.getExecution(e.id);
        if (now === undefined || isFinal(now.status)) {
          await pump(); // what was written between the last read and the final status
          const tail = decoder.end();
          if (tail !== "") await send(sse("output", { text: tail }));
          if (now !== undefined) await send(sse("end", { execution: executionJson(now) }));
          break;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, STREAM_POLL_MS).unref();
        });
        wake = undefined;
      }
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, "execution output stream failed");
    } finally {
      clearInterval(keepalive);
      unlisten();
      end();
      over();
    }
  });
}

/** The runbook name of a request: one segment of the name rule, else 400 (it never reaches a file anyway). */
function runbookName(name: string): string {
  if (!RUNBOOK_NAME.test(name) || name.includes("..")) {
    throw new CofferError("E_INVALID_NAME", `invalid runbook name ${JSON.stringify(name.slice(0, 80))}: one segment of letters, digits, '_', '.', '-'`);
  }
  return name;
}

/** Checked params, or a 400 with every problem. */
function paramsOf(runbook: Runbook, given: unknown): Record<string, string> {
  const r = checkParams(runbook, given ?? {});
  if ("problems" in r) {
    const head = `params of runbook "${runbook.name}"`;
    throw new ProblemsError(r.problems.length === 1 ? `${head}: ${r.problems[0]}` : `${head}: ${r.problems.length} problems: ${r.problems.join("; ")}`, r.problems);
  }
  return r.params;
}

/** The output chunks of an execution after `afterSeq`, a page at a time (never the whole output in memory). */
async function* outputChunks(storage: ServerStorage, id: string, afterSeq = -1): AsyncGenerator<{ seq: number; data: Buffer }> {
  let seq = afterSeq;
  for (;;) {
    const page = await storage.readOutput(id, seq, PAGE);
    for (const c of page) {
      seq = c.seq;
      yield c;
    }
    if (page.length < PAGE) return;
  }
}

async function* mapChunks(chunks: AsyncGenerator<{ data: Buffer }>): AsyncGenerator<Buffer> {
  for await (const c of chunks) yield c.data;
}

/** What a client sees of a runbook. */
function info(e: CatalogEntry): Record<string, unknown> {
  if (!e.valid) return { name: e.name, valid: false, problems: e.problems };
  const r = e.runbook;
  return {
    name: r.name, description: r.description, valid: true, isolation: r.isolation, approvals: r.approvals, timeoutMs: r.timeoutMs,
    outputLimit: r.outputLimit, concurrency: r.concurrency, secrets: Object.keys(r.secrets), files: Object.keys(r.files),
    params: Object.entries(r.params).map(([name, p]) => ({ name, required: p.required, pattern: p.pattern, description: p.description, default: p.default })),
  };
}

/** What a client sees of an execution. */
export function executionJson(e: StoredExecution): Record<string, unknown> & { status: ExecutionStatus } {
  return {
    id: e.id, runbook: e.runbook, status: e.status, exitCode: e.exitCode, signal: e.signal, by: e.requestedBy, params: e.params,
    createdAt: e.createdAt, startedAt: e.startedAt, finishedAt: e.finishedAt, outputBytes: e.outputBytes, truncated: e.truncated,
    approvalsRequired: e.approvalsRequired, approvals: e.approvals, expiresAt: e.expiresAt, cancelRequested: e.cancelRequested,
  };
}
