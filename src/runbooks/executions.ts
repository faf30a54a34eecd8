/**
 * The life of runbook executions on one server instance (docs/design.md §10): a request becomes a
 * history row (running, or pending approval), a running one becomes a process (executor.ts) whose
 * masked output is appended to the database in chunks as it comes, and its end becomes the row's
 * final status. Every start, approval, cancel and finish is on the audit chain with the runbook,
 * the non-secret params, the status and the exit code; never a value.
 *
 * Several instances share one database: a row changes only from the statuses a step expects (of
 * two racing approvals or cancels, one wins); a cancel asked on another instance is seen by the
 * one running it within {@link CANCEL_POLL_MS}; each instance beats every {@link HEARTBEAT_MS}, and
 * the executions left `running` by an instance that is gone (silent for {@link DEAD_AFTER_MS}, or a
 * dead process of this host) end `interrupted`. Pending executions end `expired` after an hour.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { CofferError } from "../errors.ts";
import type { AuditInput, ExecutionChange, ExecutionStatus, InstanceBeat, ServerStorage, StoredExecution } from "../storage/types.ts";
import { FINAL_STATUSES } from "../storage/types.ts";
import { MIN_MASK_LENGTH, tooShortToMask } from "../core/mask.ts";
import { envValueProblem } from "../core/names.ts";
import { runbookEnvNameRule, type Runbook } from "./definition.ts";
import { startExecution, type ExecutionResult, type RunningExecution } from "./executor.ts";

/** How often an instance records that it is alive. */
export const HEARTBEAT_MS = 5_000;
/** An instance silent this long is gone: its running executions end `interrupted`. */
export const DEAD_AFTER_MS = 30_000;
/** How often an instance looks for cancels of its executions asked on other instances. */
export const CANCEL_POLL_MS = 1_000;
/** How long an execution waits for its approvals before it ends `expired`. */
export const PENDING_TTL_MS = 60 * 60 * 1000;
/** Output is written to the database in chunks of at most this many bytes… */
const CHUNK_BYTES = 64 * 1024;
/** …or after this long, whichever comes first. */
const FLUSH_MS = 100;

/** Who asks, as the routes worked it out. */
export interface Requester {
  /** `token:<id>`, `jwt:<sub>`, `cert:<cn>` */
  subject: string;
  /** the principal behind the subject (a token's first maker), see server/lineage.ts */
  principal: string;
  /** request id, source address, certificate: what every audit record of the request carries */
  detail: Record<string, unknown>;
}

/** What the manager needs from the server. */
export interface ExecutionDeps {
  storage: ServerStorage;
  /** the value of secret `name` in the server's store (a copy the manager zeroes), or undefined when there is none */
  readSecret(name: string): Promise<Buffer | undefined>;
  /** where execution directories are made (private; created when missing) */
  baseDir: string;
  /** tempdir scripts run as this user (when the server runs as root) */
  runAs?: { uid: number; gid: number };
  /** paths a sandboxed script must not see (the data directory) */
  hide: string[];
  /** told of every execution that starts, ends or is truncated (metrics) */
  observe?: ExecutionObserver;
  /** the server's log */
  log?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/** Options of {@link ExecutionManager.request}. */
export interface RequestOptions {
  /**
   * Values given to the script as secrets besides the runbook's own (a rotation's `OLD_VALUE` and
   * `NEW_VALUE`): env name → value. The manager copies them (and zeroes its copies when the
   * execution ends); they are masked in the output like the runbook's secrets and stored nowhere
   * else. Refused for a runbook that needs approvals: a pending execution could not hold them.
   */
  extraSecrets?: Readonly<Record<string, Uint8Array>>;
}

/** What the server's metrics hear about. */
export interface ExecutionObserver {
  finished(runbook: string, status: ExecutionStatus, seconds: number | null): void;
  truncated(runbook: string): void;
}

/** An execution this instance runs. */
interface Local {
  process: RunningExecution | undefined;
  /** set when a stop was asked before the process was there */
  stopping: "cancelled" | "interrupted" | undefined;
  done: Promise<void>;
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter (RFC 9562's method 1, so
 * ids this process makes within one millisecond still sort in order), then random bits. Ids
 * made later sort after earlier ones, so `before=ID` pages the history.
 */
export function newExecutionId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else if (++counter > 0xfff) {
    lastMs++; // 4096 ids in one millisecond: borrow the next one
    counter = 0;
  }
  const rand = randomBytes(8);
  rand[0] = 0x80 | (rand[0]! & 0x3f);
  const h = `${lastMs.toString(16).padStart(12, "0")}7${counter.toString(16).padStart(3, "0")}${rand.toString("hex")}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
let lastMs = 0;
let counter = 0;

/** The audit record of an execution's step: runbook, id, status, non-secret params, exit code. */
function auditOf(actor: string, action: string, e: Pick<StoredExecution, "id" | "runbook" | "params">, extra: Record<string, unknown>): AuditInput {
  return { actor, action, name: null, version: null, detail: { runbook: e.runbook, execution: e.id, params: e.params, ...extra } };
}

/** Runs and tracks the executions of one server instance. */
export class ExecutionManager {
  readonly instance: InstanceBeat;
  readonly #deps: ExecutionDeps;
  readonly #local = new Map<string, Local>();
  readonly #outputListeners = new Map<string, Set<() => void>>();
  #timers: NodeJS.Timeout[] = [];
  #closed = false;

  constructor(deps: ExecutionDeps) {
    this.#deps = deps;
    const now = new Date().toISOString();
    this.instance = { id: randomBytes(8).toString("hex"), host: hostname(), pid: process.pid, startedAt: now, heartbeatAt: now };
  }

  /** Beats once, ends what dead instances left running, then beats, sweeps and polls for cancels on timers. */
  async start(): Promise<void> {
    await this.#beat();
    await this.sweep();
    const every = (ms: number, fn: () => Promise<void>): void => {
      let busy = false;
      const t = setInterval(() => {
        if (busy || this.#closed) return;
        busy = true;
        fn().catch((err: unknown) => this.#deps.log?.warn({ err: (err as Error).message }, "runbook executions: background step failed")).finally(() => (busy = false));
      }, ms);
      t.unref();
      this.#timers.push(t);
    };
    every(HEARTBEAT_MS, () => this.#beat());
    every(DEAD_AFTER_MS / 3, () => this.sweep());
    every(CANCEL_POLL_MS, () => this.#pollCancels());
  }

  /** The executions this instance runs now. */
  get running(): number {
    return this.#local.size;
  }

  /**
   * Asks for an execution of `runbook` with checked `params` (checkParams): pending approval when
   * it needs approvals, else started here at once.
   * @throws CofferError E_CONFLICT when its concurrency is full or a secret it needs is missing;
   *   E_INVALID_VALUE for `extraSecrets` on a runbook that needs approvals, or whose names clash
   *   with the runbook's variables or break the env-name rule, or whose values no environment can carry
   */
  async request(runbook: Runbook, params: Record<string, string>, by: Requester, options: RequestOptions = {}): Promise<StoredExecution> {
    if (this.#closed) throw new CofferError("E_UNAVAILABLE", "the server is shutting down; retry on another instance or later");
    const pending = runbook.approvals > 0;
    const extra = options.extraSecrets ?? {};
    checkExtraSecrets(runbook, extra);
    if (!pending) await this.#assertSecrets(runbook); // a missing secret refuses the request, not a failed run later
    const now = new Date();
    const id = newExecutionId(now.getTime());
    const status = pending ? "pending-approval" : "running";
    const execution = await this.#deps.storage.createExecution(
      {
        id, runbook: runbook.name, status, requestedBy: by.subject, principal: by.principal, params,
        approvalsRequired: runbook.approvals, createdAt: now.toISOString(),
        expiresAt: pending ? new Date(now.getTime() + PENDING_TTL_MS).toISOString() : null,
        instance: pending ? null : this.instance.id,
      },
      auditOf(by.subject, "runbook.run", { id, runbook: runbook.name, params }, { ...by.detail, status, approvalsRequired: runbook.approvals }),
      pending ? undefined : (runbook.concurrency ?? undefined),
    );
    if (!pending) {
      // Copies the run zeroes at its end: the caller's buffers stay the caller's.
      const copies = Object.fromEntries(Object.entries(extra).map(([env, v]) => [env, Buffer.from(v)]));
      this.#launch(execution, runbook, copies);
    }
    return execution;
  }

  /**
   * The row of execution `id` once it has ended, when this instance runs it (its end recorded);
   * otherwise the row as it is now.
   * @throws CofferError E_NOT_FOUND when there is no such execution
   */
  async whenEnded(id: string): Promise<StoredExecution> {
    await this.#local.get(id)?.done;
    return this.#get(id);
  }

  /**
   * Records `by`'s approval; the approval that completes the count starts the execution here.
   * @throws CofferError E_DENIED for the requester's own principal, E_CONFLICT when it is not pending
   *   (or its concurrency is full: the approval stays, approve again to start it)
   */
  async approve(id: string, runbook: Runbook, by: Requester): Promise<StoredExecution> {
    const current = await this.#get(id);
    if (current.principal === by.principal) {
      throw new CofferError("E_DENIED", "you may not approve your own request: an approval counts only from another person (not the requester, nor a token made by the requester)");
    }
    const approved = await this.#deps.storage.approveExecution(id, by.principal, auditOf(by.subject, "runbook.approve", current, { ...by.detail, principal: by.principal }));
    if (approved === undefined) throw this.#notPending(await this.#get(id));
    const { execution } = approved;
    if (execution.approvals.length < execution.approvalsRequired) return execution;
    await this.#assertSecrets(runbook);
    const started = await this.#deps.storage.updateExecution(
      id,
      { from: ["pending-approval"], status: "running", startedAt: new Date().toISOString(), instance: this.instance.id, ...(runbook.concurrency !== null && { concurrency: runbook.concurrency }) },
      auditOf(by.subject, "runbook.start", execution, { ...by.detail, status: "running", approvals: execution.approvals }),
    );
    if (started === undefined) return this.#get(id); // another approval started it first
    this.#launch(started, runbook);
    return started;
  }

  /**
   * Cancels an execution: a pending one ends at once (`cancelled` when the requester's principal
   * asks, `rejected` when someone else does); a running one is stopped by the instance that runs it.
   * @throws CofferError E_CONFLICT when it has already ended
   */
  async cancel(id: string, by: Requester): Promise<StoredExecution> {
    const current = await this.#get(id);
    if (current.status === "pending-approval") {
      const status = current.principal === by.principal ? "cancelled" : "rejected";
      const done = await this.#deps.storage.updateExecution(
        id, { from: ["pending-approval"], status, finishedAt: new Date().toISOString() },
        auditOf(by.subject, "runbook.cancel", current, { ...by.detail, status }),
      );
      if (done !== undefined) {
        this.#deps.observe?.finished(current.runbook, status, null);
        return done;
      }
      return this.cancel(id, by); // it was approved (or expired) meanwhile: go again
    }
    if (current.status !== "running") throw this.#notPending(current, "cancel");
    const asked = await this.#deps.storage.updateExecution(
      id, { from: ["running"], cancelRequested: true },
      auditOf(by.subject, "runbook.cancel", current, { ...by.detail, status: "cancelling" }),
    );
    if (asked === undefined) throw this.#notPending(await this.#get(id), "cancel");
    this.#stop(id, "cancelled");
    return asked;
  }

  /** Calls `listener` whenever output of `id` was written by this instance (streams wake early). */
  onOutput(id: string, listener: () => void): () => void {
    let set = this.#outputListeners.get(id);
    if (set === undefined) this.#outputListeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#outputListeners.delete(id);
    };
  }

  /**
   * Ends what is left behind: executions `running` on instances that are gone, and pending ones
   * past their hour.
   */
  async sweep(): Promise<void> {
    const { storage } = this.#deps;
    const now = Date.now();
    const gone = (await storage.instances()).filter((i) => i.id !== this.instance.id && this.#isGone(i, now));
    const goneIds = new Set(gone.map((i) => i.id));
    for (const e of await storage.runningExecutions()) {
      if (e.instance === null || !goneIds.has(e.instance)) continue;
      const changed = await storage.updateExecution(
        e.id, { from: ["running"], status: "interrupted", finishedAt: new Date().toISOString() },
        auditOf("server", "runbook.finish", e, { status: "interrupted", reason: "its server instance stopped" }),
      );
      if (changed !== undefined) this.#deps.observe?.finished(e.runbook, "interrupted", seconds(e));
    }
    for (const i of gone) if ((await storage.runningExecutions(i.id)).length === 0) await storage.retireInstance(i.id);
    for (const e of await storage.expiredExecutions(new Date(now).toISOString())) {
      const changed = await storage.updateExecution(
        e.id, { from: ["pending-approval"], status: "expired", finishedAt: new Date().toISOString() },
        auditOf("server", "runbook.finish", e, { status: "expired", approvals: e.approvals }),
      );
      if (changed !== undefined) this.#deps.observe?.finished(e.runbook, "expired", null);
    }
  }

  /** Stops this instance's executions (group killed, status `interrupted`), waits for their rows, and retires the instance. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    const ends = [...this.#local.entries()].map(([id, l]) => {
      this.#stop(id, "interrupted");
      return l.done;
    });
    await Promise.allSettled(ends);
    await this.#deps.storage.retireInstance(this.instance.id).catch(() => {});
  }

  /** An instance is gone when silent too long, or when it is a dead process of this host (or this process's former self). */
  #isGone(i: InstanceBeat, now: number): boolean {
    if (now - Date.parse(i.heartbeatAt) > DEAD_AFTER_MS) return true;
    if (i.host !== this.instance.host) return false;
    if (i.pid === process.pid) return true; // same host and pid, another id: this process before a restart (a container's pid 1)
    try {
      process.kill(i.pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ESRCH";
    }
  }

  async #beat(): Promise<void> {
    this.instance.heartbeatAt = new Date().toISOString();
    await this.#deps.storage.heartbeat(this.instance);
  }

  async #pollCancels(): Promise<void> {
    if (this.#local.size === 0) return;
    for (const e of await this.#deps.storage.runningExecutions(this.instance.id)) {
      if (e.cancelRequested && this.#local.has(e.id)) this.#stop(e.id, "cancelled");
    }
  }

  #stop(id: string, why: "cancelled" | "interrupted"): void {
    const l = this.#local.get(id);
    if (l === undefined) return;
    l.stopping ??= why;
    l.process?.stop(why);
  }

  async #get(id: string): Promise<StoredExecution> {
    const e = await this.#deps.storage.getExecution(id);
    if (e === undefined) throw new CofferError("E_NOT_FOUND", `no execution ${id}`);
    return e;
  }

  #notPending(e: StoredExecution, what = "approve"): CofferError {
    return new CofferError("E_CONFLICT", `execution ${e.id} is ${e.status}: only a ${what === "approve" ? "pending" : "pending or running"} execution can be ${what === "approve" ? "approved" : "cancelled"}`);
  }

  /** @throws CofferError E_CONFLICT naming the first secret of `runbook` the store does not hold */
  async #assertSecrets(runbook: Runbook): Promise<void> {
    // Only whether each is there: its value is opened once, when the script starts.
    for (const name of [...Object.values(runbook.secrets), ...Object.values(runbook.files)]) {
      if ((await this.#deps.storage.readCurrent(name)) === undefined) {
        throw new CofferError("E_CONFLICT", `runbook "${runbook.name}" needs secret "${name}", which the server does not hold; write it first`);
      }
    }
  }

  /** Starts the process of a running execution row; its end is recorded whatever happens. */
  #launch(execution: StoredExecution, runbook: Runbook, extra: Record<string, Buffer> = {}): void {
    const local: Local = { process: undefined, stopping: undefined, done: Promise.resolve() };
    this.#local.set(execution.id, local);
    local.done = this.#run(execution, runbook, local, extra)
      .catch((err: unknown) => this.#deps.log?.error({ err: (err as Error).message, execution: execution.id }, "runbook execution: recording its end failed"))
      .finally(() => this.#local.delete(execution.id));
  }

  async #run(execution: StoredExecution, runbook: Runbook, local: Local, extra: Record<string, Buffer>): Promise<void> {
    const { storage } = this.#deps;
    const values: Buffer[] = Object.values(extra);
    const output = new OutputWriter(storage, execution.id, () => this.#notify(execution.id));
    let result: ExecutionResult;
    try {
      const secrets: Record<string, Buffer> = { ...extra };
      const files: Record<string, Buffer> = {};
      const envs: string[] = Object.keys(extra);
      for (const [target, from] of [[secrets, runbook.secrets], [files, runbook.files]] as const) {
        for (const [env, name] of Object.entries(from)) {
          const v = await this.#deps.readSecret(name);
          if (v === undefined) throw new CofferError("E_NOT_FOUND", `secret "${name}" (${env}) is not in the server's store`);
          values.push(v);
          envs.push(env);
          target[env] = v;
        }
      }
      const unmasked = tooShortToMask(values).map((i) => envs[i]!);
      if (unmasked.length > 0) {
        // Said where the reader of the output will see it (and in the log), never the value.
        const warning = `coffer: ${unmasked.join(", ")}: shorter than ${MIN_MASK_LENGTH} bytes, so not masked in this output\n`;
        this.#deps.log?.warn({ execution: execution.id, runbook: runbook.name, unmasked }, "runbook secrets too short to mask");
        await output.write(Buffer.from(warning));
      }
      const proc = await startExecution(
        {
          id: execution.id, script: runbook.run, shell: runbook.shell, params: execution.params, secrets, files,
          timeoutMs: runbook.timeoutMs, outputLimit: runbook.outputLimit, isolation: runbook.isolation,
          baseDir: this.#deps.baseDir, hide: this.#deps.hide,
          ...(this.#deps.runAs !== undefined && { runAs: this.#deps.runAs }),
        },
        { output: (chunk) => output.write(chunk) },
      );
      local.process = proc;
      if (local.stopping !== undefined) proc.stop(local.stopping);
      result = await proc.done;
    } catch (err) {
      // It never ran (a secret vanished, the sandbox failed to start): say why in its output.
      const why = err instanceof CofferError ? err.message : "the script could not be started";
      this.#deps.log?.warn({ err: why, execution: execution.id }, "runbook execution could not start");
      await output.write(Buffer.from(`coffer: ${why}\n`));
      result = { status: local.stopping ?? "failed", exitCode: null, signal: null, outputBytes: output.bytes, truncated: false };
    } finally {
      for (const v of values) v.fill(0);
    }
    await output.close();
    if (output.failure !== undefined) {
      this.#deps.log?.error({ err: (output.failure as Error).message, execution: execution.id }, "runbook execution: storing its output failed; the rest was dropped");
    }
    if (result.truncated) this.#deps.observe?.truncated(runbook.name);
    const status: ExecutionStatus = result.status;
    const change: ExecutionChange = {
      from: ["running"], status, finishedAt: new Date().toISOString(), exitCode: result.exitCode, signal: result.signal,
      outputBytes: output.bytes, truncated: result.truncated, cancelRequested: false,
    };
    const done = await storage.updateExecution(
      execution.id, change,
      auditOf("server", "runbook.finish", execution, { status, exitCode: result.exitCode, signal: result.signal, truncated: result.truncated, outputBytes: output.bytes }),
    );
    if (done !== undefined) this.#deps.observe?.finished(runbook.name, status, seconds(done));
    this.#notify(execution.id);
  }

  #notify(id: string): void {
    for (const l of this.#outputListeners.get(id) ?? []) l();
  }
}

/**
 * Checks the extra secrets of a request (see {@link RequestOptions.extraSecrets}).
 * @throws CofferError E_INVALID_VALUE naming the variable, never its value
 */
function checkExtraSecrets(runbook: Runbook, extra: Readonly<Record<string, Uint8Array>>): void {
  const names = Object.keys(extra);
  if (names.length === 0) return;
  if (runbook.approvals > 0) {
    throw new CofferError("E_INVALID_VALUE", `runbook "${runbook.name}" needs ${runbook.approvals} approval(s); values given with a request (${names.join(", ")}) cannot wait for approvals`);
  }
  const taken = new Set([...Object.keys(runbook.params), ...Object.keys(runbook.secrets), ...Object.keys(runbook.files)]);
  for (const [env, v] of Object.entries(extra)) {
    const rule = runbookEnvNameRule(env);
    if (rule !== undefined) throw new CofferError("E_INVALID_VALUE", `the variable ${env} given with the request: ${rule}`);
    if (taken.has(env)) throw new CofferError("E_INVALID_VALUE", `runbook "${runbook.name}" already sets ${env} (a param, secret or file); it cannot also be given with the request`);
    const problem = envValueProblem(v);
    if (problem !== undefined) throw new CofferError("E_INVALID_VALUE", `the variable ${env} given with the request: ${problem}`);
  }
}

/** Seconds from start to finish, when both are known. */
function seconds(e: StoredExecution): number | null {
  if (e.startedAt === null) return null;
  const end = e.finishedAt === null ? Date.now() : Date.parse(e.finishedAt);
  return Math.max(0, (end - Date.parse(e.startedAt)) / 1000);
}

/**
 * Masked output on its way to the database: gathered into chunks of up to {@link CHUNK_BYTES},
 * written at most {@link FLUSH_MS} after it came, one write at a time and in order. A writer
 * that gets ahead of the database waits (the executor stops reading the pipe meanwhile), so
 * memory stays bounded whatever the script writes.
 */
class OutputWriter {
  readonly #storage: ServerStorage;
  readonly #id: string;
  readonly #written: () => void;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #seq = 0;
  /** bytes handed to the database so far */
  bytes = 0;
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #failed: unknown;

  /** why storing output failed, if it did */
  get failure(): unknown {
    return this.#failed;
  }

  constructor(storage: ServerStorage, id: string, written: () => void) {
    this.#storage = storage;
    this.#id = id;
    this.#written = written;
  }

  write(chunk: Buffer): Promise<void> | void {
    if (chunk.length === 0) return;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes >= CHUNK_BYTES) return this.#flush();
    this.#timer ??= setTimeout(() => void this.#flush(), FLUSH_MS);
  }

  /** Writes what is left (the execution's final row records `truncated`). */
  async close(): Promise<void> {
    await this.#flush();
  }

  #flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const data = Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    const previous = this.#flushing;
    this.#flushing = (async () => {
      await previous;
      // After one failure (logged at the end) the rest is dropped: the row says how much was kept.
      if (data.length === 0 || this.#failed !== undefined) return;
      for (let at = 0; at < data.length; at += CHUNK_BYTES) {
        const piece = data.subarray(at, at + CHUNK_BYTES);
        try {
          await this.#storage.appendOutput(this.#id, this.#seq, piece, this.bytes + piece.length, false);
        } catch (err) {
          this.#failed = err;
          return;
        }
        this.#seq++;
        this.bytes += piece.length;
      }
      this.#written();
    })();
    return this.#flushing;
  }
}

/** Whether a status is final. */
export function isFinal(status: ExecutionStatus): boolean {
  return FINAL_STATUSES.has(status);
}
