/**
 * How a rotation's new value reaches its target before it is stored (docs/design.md §12): the
 * one interface the engine calls and each kind of `apply` implements (a runbook, PostgreSQL).
 * An apply target never sees the store: it gets the old and new values, and a way to read the
 * one other secret its settings name (PostgreSQL's admin connection string).
 */

import type { RotationApply } from "../client/wire.ts";

/** What an apply target is given for one rotation. The buffers are the engine's: it zeroes them after. */
export interface ApplyContext {
  /** the secret being rotated */
  name: string;
  /** its current value, or undefined when it has none yet */
  oldValue: Buffer | undefined;
  /** the candidate: stored as the new version only when apply (and its test) succeeded */
  newValue: Buffer;
  /** reads the current value of another secret of the server (the caller zeroes it) */
  readSecret: (name: string) => Promise<Buffer>;
  /** aborted when the server shuts down: stop and throw */
  signal: AbortSignal;
}

/** One kind of target. */
export interface ApplyTarget {
  /** for messages, metrics and the audit: `runbook:NAME`, `postgres:ROLE` */
  readonly label: string;
  /**
   * True when applying the same value twice is harmless (PostgreSQL: the same password again), so
   * that a server restarting with a sealed candidate may apply it again and finish. A runbook is
   * not: such a rotation is marked `unknown` for a person to resolve.
   */
  readonly idempotent: boolean;
  /**
   * Puts `newValue` in place at the target and checks it works there.
   * @throws CofferError E_ROTATION with a one-line reason that holds no value
   */
  apply(ctx: ApplyContext): Promise<void>;
}

/** Builds the target of a policy's non-null `apply` (the server's: rotation/targets.ts). */
export type TargetFactory = (apply: NonNullable<RotationApply>) => ApplyTarget;
