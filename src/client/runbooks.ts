/**
 * The runbook calls of the coffer server's API (`/v1/runbooks`, `/v1/executions`; the contract is
 * the API section): list, show, validate and run a runbook; read, follow, cancel and
 * approve an execution; page its history. Every request goes through {@link CofferClient.send}
 * (auth, timeouts, error mapping), so this module only builds targets and checks answers.
 *
 * Params are values: they travel only in a request body, never in a URL, and an error message
 * from the server that repeats one has it replaced by `[redacted]`.
 */
import { CofferError } from "../errors.ts";
import { assertEnvName, isSecretName } from "../core/names.ts";
import { formatDuration } from "../core/durations.ts";
import { CofferClient } from "./client.ts";
import { ServerError } from "./server-error.ts";
import { field, shapeError, str, whole } from "./shape.ts";
import { SseParser } from "./sse.ts";
import { EXECUTION_STATUSES, type Execution, type ExecutionStatus, type RunbookInfo, type RunbookParam } from "./wire.ts";

export { EXECUTION_STATUSES, isFinalStatus, type Execution, type ExecutionStatus, type InvalidRunbook, type RunbookInfo, type RunbookParam, type ValidRunbook } from "./wire.ts";

/** Params of a runbook: env name → value. */
export type RunbookParams = Readonly<Record<string, string>>;

/** What {@link RunbookClient.validate} finds. */
export type Validation = { valid: true; params: Record<string, string> } | { valid: false; problems: string[] };

/** A page of history (`GET /v1/executions`). */
export interface HistoryQuery {
  /** only this runbook's executions (default: every runbook the caller may read) */
  runbook?: string;
  /** at most this many, 1 to 100 (the server's default: 20) */
  limit?: number;
  /** only executions older than this one (the last id of the previous page) */
  before?: string;
}

/** Options of {@link RunbookClient.followOutput}. */
export interface FollowOptions {
  /** a stream silent this long counts as dead (default {@link FOLLOW_IDLE_MS}: three of the server's 15 s keepalives) */
  idleMs?: number;
  /** stops following (the execution goes on) */
  signal?: AbortSignal;
}

/** Default idle limit of a followed output stream, in milliseconds. */
export const FOLLOW_IDLE_MS = 45_000;

/** The largest event of an output stream, in characters; more is a broken stream. */
export const OUTPUT_EVENT_MAX = 1024 * 1024;

/** The largest output read in one piece by {@link RunbookClient.output}, in bytes (follow it to read more). */
export const OUTPUT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The runbook API of one coffer server, over a {@link CofferClient}.
 *
 * @example
 * const runbooks = new RunbookClient(new CofferClient({ url, token }));
 * const { id } = await runbooks.run("flush-cdn", { REGION: "eu-west" });
 * const done = await runbooks.followOutput(id, (text) => process.stdout.write(text));
 * console.log(done.status, done.exitCode);
 */
export class RunbookClient {
  readonly #client: CofferClient;

  constructor(client: CofferClient) {
    this.#client = client;
  }

  /** The server's base URL. */
  get url(): string {
    return this.#client.url;
  }

  /**
   * The runbooks the caller may read, sorted by name.
   * @throws ServerError E_UNAUTHENTICATED, E_DENIED, …; CofferError E_PROVIDER
   */
  async listRunbooks(): Promise<RunbookInfo[]> {
    const body = await this.#client.request("GET", "/v1/runbooks");
    return list(body, "runbooks", "the list of runbooks", this.url).map((r) => runbookInfo(r, "the list of runbooks", this.url));
  }

  /**
   * One runbook (needs `read` on it).
   * @throws CofferError E_INVALID_NAME before any request for a name that is not one; ServerError
   *   E_NOT_FOUND, E_DENIED, …
   */
  async getRunbook(name: string): Promise<RunbookInfo> {
    const body = await this.#client.request("GET", runbookPath(name));
    const info = runbookInfo(field(body, "runbook"), `the runbook ${name}`, this.url);
    if (info.name !== name) throw new CofferError("E_PROVIDER", `server ${this.url}: answered for the runbook ${name} with another runbook`);
    return info;
  }

  /**
   * Checks params against a runbook without running anything.
   * @returns `{valid: true, params}` (with defaults filled in), or `{valid: false, problems}` for a
   *   400 that lists problems
   * @throws CofferError E_INVALID_NAME for a bad runbook or param name; ServerError for other refusals
   */
  async validate(name: string, params: RunbookParams): Promise<Validation> {
    const payload = { params: checkParams(params) };
    try {
      const body = await this.#client.request("POST", `${runbookPath(name)}/validate`, { payload, redact: Object.values(params) });
      const got = field(body, "params");
      if (field(body, "valid") !== true) throw shapeError(this.url, `validating ${name}`, "valid");
      return { valid: true, params: stringRecord(got, "params", `validating ${name}`, this.url) };
    } catch (err) {
      if (err instanceof ServerError && err.status === 400 && err.problems !== undefined && err.problems.length > 0) {
        return { valid: false, problems: [...err.problems] };
      }
      throw err;
    }
  }

  /**
   * Starts a runbook.
   * @returns its execution id and status: `running`, or `pending-approval` when others must approve first
   * @throws ServerError E_INVALID_VALUE with `problems` for bad params, E_DENIED, E_CONFLICT (at its
   *   concurrency), E_RATE_LIMITED (with retryAfterSeconds), …
   */
  async run(name: string, params: RunbookParams): Promise<{ id: string; status: ExecutionStatus }> {
    const payload = { params: checkParams(params) };
    const body = await this.#client.request("POST", `${runbookPath(name)}/run`, { payload, redact: Object.values(params) });
    const what = `running ${name}`;
    const id = str(body, "id", what, this.url);
    checkExecutionId(id, this.url);
    return { id, status: status(body, what, this.url) };
  }

  /**
   * One execution.
   * @throws CofferError E_INVALID_VALUE for an id that is not one; ServerError E_NOT_FOUND, E_DENIED, …
   */
  async execution(id: string): Promise<Execution> {
    const body = await this.#client.request("GET", executionPath(id));
    return this.#executionOf(body, id);
  }

  /**
   * The masked output of an execution so far (all of it once it has ended), as text.
   * @throws ServerError E_NOT_FOUND, …; CofferError E_PROVIDER for output over {@link OUTPUT_MAX_BYTES}
   *   (follow it instead)
   */
  async output(id: string): Promise<string> {
    const res = await this.#client.send("GET", `${executionPath(id)}/output`, { accept: "text/plain" });
    return this.#client.readBody(res, OUTPUT_MAX_BYTES);
  }

  /**
   * Streams an execution's output (`Accept: text/event-stream`) as it comes, from its start, calling
   * `onText` with each piece in order (awaited), until the execution ends.
   * @returns the final execution
   * @throws ServerError for a refusal; CofferError E_PROVIDER when the stream is silent past
   *   `idleMs`, is not an event stream, sends an event over {@link OUTPUT_EVENT_MAX} characters or a
   *   malformed one, or ends before the execution does; what `onText` throws
   */
  async followOutput(id: string, onText: (text: string) => void | Promise<void>, options: FollowOptions = {}): Promise<Execution> {
    const target = `${executionPath(id)}/output`;
    const idleMs = options.idleMs ?? FOLLOW_IDLE_MS;
    const where = `server ${this.url}`;
    const stop = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stop.abort(new CofferError("E_PROVIDER", `${where}: the output stream of execution ${id} sent nothing for ${formatDuration(idleMs)}; the execution may go on: \`coffer runbook output ${id} --follow\``));
      }, idleMs);
    };
    const onCaller = (): void => stop.abort(new CofferError("E_CANCELLED", `stopped following execution ${id}; it goes on`));
    if (options.signal?.aborted === true) onCaller();
    options.signal?.addEventListener("abort", onCaller, { once: true });
    touch();
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      const res = await this.#client.send("GET", target, { accept: "text/event-stream", timeout: false, signal: stop.signal });
      if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream") || res.body === null) {
        await res.body?.cancel().catch(() => {});
        throw new CofferError("E_PROVIDER", `${where}: answered a request for the output stream of ${id} with ${res.headers.get("content-type") ?? "no content-type"}, not an event stream; is it a coffer server of this version?`);
      }
      const events: { event: string; data: string }[] = [];
      const parser = new SseParser((e) => events.push(e), { maxChars: OUTPUT_EVENT_MAX });
      const decoder = new TextDecoder("utf-8");
      reader = res.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          throw readError(err, stop.signal, where, id);
        }
        if (chunk.done) break;
        touch();
        try {
          parser.push(decoder.decode(chunk.value, { stream: true }));
        } catch (err) {
          throw new CofferError("E_PROVIDER", `${where}: the output stream of execution ${id} is broken: ${(err as Error).message}`);
        }
        for (const e of events.splice(0)) {
          if (e.event === "output") {
            const text = field(parseJson(e.data, where, id), "text");
            if (typeof text !== "string") throw shapeError(this.url, `the output of ${id}`, "text");
            await onText(text);
          } else if (e.event === "end") {
            return this.#executionOf(parseJson(e.data, where, id), id);
          }
        }
      }
      throw new CofferError("E_PROVIDER", `${where}: the output stream of execution ${id} ended before the execution did; \`coffer runbook output ${id} --follow\` to go on`);
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onCaller);
      await reader?.cancel().catch(() => {});
      stop.abort();
    }
  }

  /**
   * Asks the server to stop an execution (SIGTERM to its process group, SIGKILL after 10 s), or ends
   * a pending one as cancelled. Needs `run` on its runbook.
   * @throws ServerError E_CONFLICT when it has already ended, E_DENIED, E_NOT_FOUND, …
   */
  async cancel(id: string): Promise<Execution> {
    const body = await this.#client.request("POST", `${executionPath(id)}/cancel`);
    return this.#executionOf(body, id);
  }

  /**
   * Approves a pending execution (each principal counts once; never the requester's own).
   * @throws ServerError E_DENIED (no `approve`, or the requester's own principal), E_CONFLICT when
   *   it is not pending, E_NOT_FOUND, …
   */
  async approve(id: string): Promise<Execution> {
    const body = await this.#client.request("POST", `${executionPath(id)}/approve`);
    return this.#executionOf(body, id);
  }

  /**
   * Executions, newest first.
   * @throws CofferError E_INVALID_NAME / E_INVALID_VALUE for a bad runbook name, limit or id;
   *   ServerError …
   */
  async history(query: HistoryQuery = {}): Promise<Execution[]> {
    const q = new URLSearchParams();
    if (query.runbook !== undefined) {
      checkRunbookName(query.runbook);
      q.set("runbook", query.runbook);
    }
    if (query.limit !== undefined) {
      if (!Number.isSafeInteger(query.limit) || query.limit < 1 || query.limit > 100) {
        throw new CofferError("E_INVALID_VALUE", `invalid limit ${query.limit}: a whole number from 1 to 100`);
      }
      q.set("limit", String(query.limit));
    }
    if (query.before !== undefined) {
      checkExecutionId(query.before);
      q.set("before", query.before);
    }
    const search = q.size > 0 ? `?${q}` : "";
    const body = await this.#client.request("GET", `/v1/executions${search}`);
    return list(body, "executions", "the history", this.url).map((e) => execution(e, "the history", this.url));
  }

  #executionOf(body: unknown, id: string): Execution {
    const e = execution(field(body, "execution"), `execution ${id}`, this.url);
    if (e.id !== id) throw new CofferError("E_PROVIDER", `server ${this.url}: answered for execution ${id} with another execution`);
    return e;
  }
}

/**
 * Refuses (E_INVALID_NAME) a runbook name that is not one segment of the secret-name rule, before
 * it reaches a URL.
 */
export function checkRunbookName(name: string): void {
  if (!isSecretName(name) || name.includes("/")) {
    throw new CofferError("E_INVALID_NAME", `invalid runbook name ${JSON.stringify(name.slice(0, 80))}: one segment of letters, digits, _ . - starting with a letter or digit`);
  }
}

/** Refuses (E_INVALID_VALUE; E_PROVIDER when the server gave it) an execution id that is not one. */
function checkExecutionId(id: string, server?: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(id)) {
    if (server !== undefined) throw new CofferError("E_PROVIDER", `server ${server}: answered with an execution id that is not one`);
    throw new CofferError("E_INVALID_VALUE", `invalid execution id ${JSON.stringify(id.slice(0, 80))}: letters, digits, - and _ (as \`coffer runbook run\` and \`history\` print them)`);
  }
}

function runbookPath(name: string): string {
  checkRunbookName(name);
  return `/v1/runbooks/${encodeURIComponent(name)}`;
}

function executionPath(id: string): string {
  checkExecutionId(id);
  return `/v1/executions/${encodeURIComponent(id)}`;
}

// Names are checked here so that a mistyped one fails before any request, naming the name (never a value).
function checkParams(params: RunbookParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    assertEnvName(k);
    if (typeof v !== "string") throw new CofferError("E_INVALID_VALUE", `the param ${k} is not text`);
    out[k] = v;
  }
  return out;
}

function readError(err: unknown, signal: AbortSignal, where: string, id: string): CofferError {
  if (signal.aborted && signal.reason instanceof CofferError) return signal.reason;
  if (err instanceof CofferError) return err;
  return new CofferError("E_PROVIDER", `${where}: the output stream of execution ${id} broke (${(err as { cause?: { code?: string } })?.cause?.code ?? "network error"}); \`coffer runbook output ${id} --follow\` to go on`);
}

function parseJson(data: string, where: string, id: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new CofferError("E_PROVIDER", `${where}: the output stream of execution ${id} sent an event that is not JSON`);
  }
}

function list(body: unknown, name: string, what: string, url: string): unknown[] {
  const rows = field(body, name);
  if (!Array.isArray(rows)) throw shapeError(url, what, name);
  return rows;
}

function nullable<T>(v: unknown, ok: (x: unknown) => x is T, name: string, what: string, url: string): T | null {
  if (v === null) return null;
  if (!ok(v)) throw shapeError(url, what, name);
  return v;
}

const isString = (x: unknown): x is string => typeof x === "string";
const isWhole = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

function strings(v: unknown, name: string, what: string, url: string): string[] {
  const a = field(v, name);
  if (!Array.isArray(a) || !a.every(isString)) throw shapeError(url, what, name);
  return a;
}

function bool(v: unknown, name: string, what: string, url: string): boolean {
  const b = field(v, name);
  if (typeof b !== "boolean") throw shapeError(url, what, name);
  return b;
}

function stringRecord(v: unknown, name: string, what: string, url: string): Record<string, string> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.values(v).every(isString)) throw shapeError(url, what, name);
  return { ...(v as Record<string, string>) };
}

function status(v: unknown, what: string, url: string): ExecutionStatus {
  const s = field(v, "status");
  if (!(EXECUTION_STATUSES as readonly unknown[]).includes(s)) throw shapeError(url, what, "status");
  return s as ExecutionStatus;
}

function runbookInfo(v: unknown, what: string, url: string): RunbookInfo {
  const name = str(v, "name", what, url);
  const valid = bool(v, "valid", what, url);
  if (!valid) return { name, valid, problems: strings(v, "problems", what, url) };
  const isolation = field(v, "isolation");
  if (isolation !== "tempdir" && isolation !== "sandbox") throw shapeError(url, what, "isolation");
  const description = field(v, "description");
  if (description !== undefined && description !== null && typeof description !== "string") throw shapeError(url, what, "description");
  const params = list(v, "params", what, url).map((p): RunbookParam => ({
    name: str(p, "name", what, url),
    required: bool(p, "required", what, url),
    pattern: nullable(field(p, "pattern"), isString, "pattern", what, url),
    description: nullable(field(p, "description") ?? null, isString, "description", what, url),
    default: nullable(field(p, "default") ?? null, isString, "default", what, url),
  }));
  return {
    name, valid, description: description ?? "", isolation,
    approvals: whole(v, "approvals", what, url),
    timeoutMs: whole(v, "timeoutMs", what, url),
    outputLimit: whole(v, "outputLimit", what, url),
    concurrency: nullable(field(v, "concurrency") ?? null, isWhole, "concurrency", what, url),
    secrets: strings(v, "secrets", what, url),
    files: strings(v, "files", what, url),
    params,
  };
}

function execution(v: unknown, what: string, url: string): Execution {
  const exitCode = field(v, "exitCode");
  return {
    id: str(v, "id", what, url),
    runbook: str(v, "runbook", what, url),
    status: status(v, what, url),
    exitCode: nullable(exitCode, (x): x is number => typeof x === "number" && Number.isSafeInteger(x), "exitCode", what, url),
    signal: nullable(field(v, "signal"), isString, "signal", what, url),
    by: str(v, "by", what, url),
    params: stringRecord(field(v, "params"), "params", what, url),
    createdAt: str(v, "createdAt", what, url),
    startedAt: nullable(field(v, "startedAt"), isString, "startedAt", what, url),
    finishedAt: nullable(field(v, "finishedAt"), isString, "finishedAt", what, url),
    outputBytes: whole(v, "outputBytes", what, url),
    truncated: bool(v, "truncated", what, url),
    approvalsRequired: whole(v, "approvalsRequired", what, url),
    approvals: strings(v, "approvals", what, url),
    expiresAt: nullable(field(v, "expiresAt"), isString, "expiresAt", what, url),
    cancelRequested: bool(v, "cancelRequested", what, url),
  };
}
