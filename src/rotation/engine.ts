/**
 * The rotation engine (docs/design.md §12): rotates one secret, safely by construction.
 *
 *   claim the lease (one conditional UPDATE in the database; writes to the secret get 409 while
 *   it is held) → generate → seal the candidate for the version it will become and store it →
 *   apply it at the target (none: skipped) → write it as the new version (audited
 *   `secret.rotate`, never the value) and clear it, state ok, next = now + every, lease released,
 *   in one transaction → publish the change event (as a PUT does).
 *
 * A failure writes no version: the candidate is dropped, the state is `failing` with a one-line
 * error (never a value), the failure counted, and it is retried with backoff. A candidate left
 * behind by a crash (its lease expired) is recovered: an idempotent target (or none) is applied
 * again and the rotation finished; a runbook is marked `unknown` for a person, never guessed.
 */
import { randomBytes } from "node:crypto";
import { CofferError } from "../errors.ts";
import { generateValue, type Charset } from "../crypto/generate.ts";
import type { RotationFailure, SealedValue, ServerStorage, StoredRotation } from "../storage/types.ts";
import type { RotationApply } from "../client/wire.ts";
import type { ApplyTarget, TargetFactory } from "./apply.ts";

/** Seals and opens values as the server does (server/keys.ts ValueSealer). */
export interface Sealer {
  seal(name: string, version: number, value: Uint8Array): SealedValue;
  open(name: string, version: number, sealed: SealedValue): Buffer;
}

/** What the engine tells the server's metrics. */
export interface RotationObserver {
  rotated(name: string): void;
  failed(name: string, state: RotationFailure["state"]): void;
}

/** What {@link RotationEngine} needs. */
export interface EngineDeps {
  storage: ServerStorage;
  sealer: Sealer;
  /** makes apply targets (the server's: rotation/targets.ts; tests pass fakes) */
  targets: TargetFactory;
  /** this server instance (part of every lease holder id) */
  instanceId: string;
  /** how long a lease lasts before another instance may take it over; renewed at a third of it (default 60 s) */
  leaseMs?: number;
  /** tells watchers of the new version (as a PUT does) */
  publish: (name: string, version: number, at: string) => void;
  observe?: RotationObserver;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** The default lease. */
export const DEFAULT_LEASE_MS = 60_000;
/** The first retry after a failure; each further failure doubles it. */
export const RETRY_BASE_MS = 30_000;
/** The longest wait between retries (and never longer than the period). */
export const RETRY_MAX_MS = 3_600_000;

/** When a rotation that has failed `failures` times in a row is tried again, from `now`. */
export function retryAt(now: number, failures: number, everyMs: number | null): string {
  const cap = Math.min(everyMs ?? RETRY_MAX_MS, RETRY_MAX_MS);
  const backoff = Math.min(RETRY_BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 20), cap);
  return new Date(now + backoff).toISOString();
}

/** An error's one-line message that can hold no value: ours are written so; anything else says only its kind. */
export function failureMessage(err: unknown): string {
  const text = err instanceof CofferError ? err.message : `${(err as Error | undefined)?.name ?? "Error"} (unexpected; see the server log)`;
  return text.replace(/\s+/g, " ").trim().slice(0, 300);
}

/** A successful rotation. */
export interface Rotated {
  name: string;
  version: number;
  rotatedAt: string;
}

/** Rotates secrets by their stored policies, through the database lease. */
export class RotationEngine {
  readonly #deps: EngineDeps;
  readonly #leaseMs: number;
  readonly #abort = new AbortController();
  #attempt = 0;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#leaseMs = deps.leaseMs ?? DEFAULT_LEASE_MS;
  }

  /** The lease length in ms. */
  get leaseMs(): number {
    return this.#leaseMs;
  }

  /** Stops: applies in flight see their signal aborted. */
  close(): void {
    this.#abort.abort();
  }

  /**
   * Rotates `name` now (`due`: only when its next time has passed, as the scheduler does).
   * @param by - the audit actor (`token:…`, `rotation-scheduler`)
   * @returns the new version, or undefined when `due` and it was not due or another instance had it
   * @throws CofferError E_NOT_FOUND without a policy, E_CONFLICT while another rotation holds it,
   *   E_ROTATION when it failed (recorded: no version was written)
   */
  async rotate(name: string, by: string, options: { due?: boolean; auditDetail?: Record<string, unknown> } = {}): Promise<Rotated | undefined> {
    const { storage } = this.#deps;
    const holder = this.#holder();
    const claimed = await storage.claimRotation(name, holder, this.#until(), options.due === true ? "due" : "now");
    if (claimed === undefined) {
      if (options.due === true) return undefined;
      if ((await storage.getRotation(name)) === undefined) throw new CofferError("E_NOT_FOUND", `secret ${name} has no rotation policy; set one with PUT /v1/rotation/${name}`);
      throw new CofferError("E_CONFLICT", `secret ${name}: rotation in progress; retry when it ends`);
    }
    return this.#run(claimed, holder, by, options.auditDetail ?? {}, false);
  }

  /**
   * Finishes or reports what crashed rotations left (a candidate whose lease expired): an
   * idempotent target (or none) is applied again and the candidate stored; a runbook's rotation
   * is marked `unknown`. Returns how many it handled.
   */
  async recover(): Promise<number> {
    const { storage } = this.#deps;
    const now = new Date().toISOString();
    const left = (await storage.listRotations()).filter((r) => r.candidate !== null && (r.leaseUntil === null || r.leaseUntil < now));
    let handled = 0;
    for (const r of left) {
      const holder = this.#holder();
      const claimed = await storage.claimRotation(r.name, holder, this.#until(), "recover");
      if (claimed === undefined) continue;
      handled++;
      const target = this.#target(claimed);
      if (target instanceof Error || (target !== null && !target.idempotent)) {
        const error = target instanceof Error ? target.message
          : `interrupted during ${target.label} apply (the server stopped); check the target, then rotate again`;
        await this.#fail(claimed, holder, "rotation-recovery", { recovered: true }, error, "unknown");
        continue;
      }
      await this.#run(claimed, holder, "rotation-recovery", { recovered: true }, true).catch((err: unknown) => {
        this.#deps.log?.warn({ name: r.name, err: failureMessage(err) }, "rotation recovery failed");
      });
    }
    return handled;
  }

  async #run(r: StoredRotation, holder: string, by: string, detail: Record<string, unknown>, recovering: boolean): Promise<Rotated> {
    const { storage, sealer } = this.#deps;
    const name = r.name;
    const renew = setInterval(() => void storage.renewRotation(name, holder, this.#until()).catch(() => {}), Math.max(100, this.#leaseMs / 3));
    renew.unref();
    let value: Buffer | undefined;
    let old: Buffer | undefined;
    let label = "none";
    try {
      const target = this.#target(r);
      if (target instanceof Error) throw target;
      label = target?.label ?? "none";
      if (recovering && r.candidate !== null) {
        value = sealer.open(name, r.candidate.version, r.candidate);
      } else {
        const st = await storage.state(name);
        if (st?.deletedAt !== null && st !== undefined) {
          throw new CofferError("E_ROTATION", `secret ${name} is deleted; restore it (or remove its rotation policy) first`);
        }
        value = Buffer.from(await generateValue(r.generate.charset as Charset, r.generate.length), "utf8");
        const v = value;
        await storage.storeRotationCandidate(name, holder, (version) => sealer.seal(name, version, v));
      }
      if (target !== null) {
        const current = await storage.readCurrent(name);
        old = current === undefined ? undefined : sealer.open(name, current.version, current);
        await target.apply({
          name, oldValue: old, newValue: value, signal: this.#abort.signal,
          readSecret: async (other) => {
            const row = await storage.readCurrent(other);
            if (row === undefined) throw new CofferError("E_ROTATION", `secret ${other}, named by the apply of ${name}, does not exist`);
            return sealer.open(other, row.version, row);
          },
        });
      }
      const done = await storage.finishRotation(name, holder, by, { ...detail, result: "ok", target: label });
      this.#deps.observe?.rotated(name);
      this.#deps.publish(name, done.version, done.rotatedAt);
      this.#deps.log?.info({ name, version: done.version, target: label }, "secret rotated");
      return { name, version: done.version, rotatedAt: done.rotatedAt };
    } catch (err) {
      const message = failureMessage(err);
      await this.#fail(r, holder, by, { ...detail, target: label }, message, "failing");
      throw err instanceof CofferError && err.code === "E_ROTATION" ? err : new CofferError("E_ROTATION", `rotation of ${name} failed: ${message}`, { cause: err });
    } finally {
      clearInterval(renew);
      value?.fill(0);
      old?.fill(0);
    }
  }

  async #fail(r: StoredRotation, holder: string, by: string, detail: Record<string, unknown>, error: string, state: "failing" | "unknown"): Promise<void> {
    const failures = r.failures + 1;
    const nextAt = state === "unknown" ? null : r.everyMs === null ? null : retryAt(Date.now(), failures, r.everyMs);
    await this.#deps.storage.failRotation(r.name, holder, { state, error, nextAt, audit: { actor: by, detail } }).catch((e: unknown) => {
      this.#deps.log?.warn({ name: r.name, err: failureMessage(e) }, "could not record a failed rotation; its lease runs out");
    });
    this.#deps.observe?.failed(r.name, state);
    this.#deps.log?.warn({ name: r.name, state, err: error }, "rotation failed");
  }

  /** The target of a rotation's `apply`: null for none, an Error when it cannot be made. */
  #target(r: StoredRotation): ApplyTarget | null | Error {
    const apply = r.apply as RotationApply;
    if (apply === null || apply === undefined) return null;
    try {
      return this.#deps.targets(apply);
    } catch (err) {
      return new CofferError("E_ROTATION", `apply target of ${r.name}: ${failureMessage(err)}`);
    }
  }

  #holder(): string {
    return `${this.#deps.instanceId}:${++this.#attempt}:${randomBytes(4).toString("hex")}`;
  }

  #until(): string {
    return new Date(Date.now() + this.#leaseMs).toISOString();
  }
}
