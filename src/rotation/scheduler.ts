/**
 * The rotation scheduler of one server instance (docs/design.md §12): it sleeps until the earliest
 * `nextAt` of the stored policies (to the second), or at most {@link POLL_MS} (other instances
 * may have changed a policy), then recovers what crashed rotations left and rotates every due
 * secret it can claim. Which instance rotates a secret is decided by the database lease, never
 * here: several schedulers may wake together, and only one claim wins. `replan()` wakes it at
 * once (a policy changed on this instance).
 */
import type { StoredRotation } from "../storage/types.ts";
import { failureMessage, type RotationEngine } from "./engine.ts";

/** The longest sleep: how soon a policy changed on another instance is seen. */
export const POLL_MS = 5_000;
/** A rotation is overdue when its time passed this long ago (or it is failing or unknown). */
export const OVERDUE_GRACE_MS = 60_000;

/** Whether a rotation is overdue at `now`. */
export function isOverdue(r: StoredRotation, now: number): boolean {
  if (r.state === "failing" || r.state === "unknown") return true;
  return r.nextAt !== null && Date.parse(r.nextAt) + OVERDUE_GRACE_MS < now;
}

/** What {@link RotationScheduler} needs. */
export interface SchedulerDeps {
  engine: RotationEngine;
  /** the stored policies (storage.listRotations) */
  list: () => Promise<StoredRotation[]>;
  /** the longest sleep (default {@link POLL_MS}) */
  pollMs?: number;
  /** told how many rotations are overdue after each pass (the gauge and health) */
  overdue?: (count: number) => void;
  log?: { warn(obj: object, msg: string): void };
}

/** Wakes at the earliest due rotation and runs the due ones. */
export class RotationScheduler {
  readonly #deps: SchedulerDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
  }

  /** Starts: a first pass at once (recovering what a crash left). */
  start(): void {
    this.replan();
  }

  /** Runs a pass now (a policy changed); a pass in progress is followed by another. */
  replan(): void {
    if (this.#closed) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.#pass().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.replan();
      }
    });
  }

  /** Stops; waits for the pass in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  async #pass(): Promise<void> {
    const { engine, log } = this.#deps;
    let next = Date.now() + (this.#deps.pollMs ?? POLL_MS);
    try {
      await engine.recover();
      const now = Date.now();
      const rotations = await this.#deps.list();
      const due = rotations.filter((r) => r.candidate === null && r.nextAt !== null && Date.parse(r.nextAt) <= now);
      await Promise.all(due.map((r) => engine.rotate(r.name, "rotation-scheduler", { due: true }).catch((err: unknown) => {
        log?.warn({ name: r.name, err: failureMessage(err) }, "scheduled rotation failed");
      })));
      const after = due.length > 0 ? await this.#deps.list() : rotations;
      const at = Date.now();
      this.#deps.overdue?.(after.filter((r) => isOverdue(r, at)).length);
      for (const r of after) {
        if (r.nextAt === null || r.candidate !== null) continue;
        // to the second; a rotation another instance holds is looked at again when its lease ends
        const t = Math.max(Date.parse(r.nextAt), r.leaseUntil === null ? 0 : Date.parse(r.leaseUntil));
        if (t < next) next = t;
      }
    } catch (err) {
      log?.warn({ err: failureMessage(err) }, "rotation scheduler pass failed; retrying");
    }
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.replan(), Math.max(0, Math.min(next - Date.now(), this.#deps.pollMs ?? POLL_MS)) + 5);
    this.#timer.unref();
  }
}
