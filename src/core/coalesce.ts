/**
 * The one watch loop (docs/design.md §2): change signals in a burst become one run of a task,
 * two runs never overlap, a signal during a run earns exactly one more run after it, and `stop`
 * ends it all. `run --watch`, the agent, and the folder, server and vault providers' watches
 * are each this loop around their own task.
 */

/** A coalesced task; see {@link coalesce}. */
export interface Coalescer {
  /**
   * A change signal: the task runs once `delayMs` (default: the coalescer's) pass without
   * another signal, or once more after the run in progress (after the smallest delay asked).
   */
  trigger(delayMs?: number): void;
  /** Also runs the task every `ms` (a tick during a run is dropped; the timer does not keep Node up); returns its stop. */
  every(ms: number): () => void;
  /** No more runs (the one in progress finishes); safe to call twice. */
  stop(): void;
}

/** Wraps `task` in the coalescing loop; `delayMs` is how long a burst of signals must settle (0: run at once). */
export function coalesce(task: () => unknown, delayMs = 0): Coalescer {
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again: number | undefined;
  let stopped = false;
  const ticks = new Set<NodeJS.Timeout>();

  const run = async (): Promise<void> => {
    timer = undefined;
    running = true;
    try {
      await task();
    } finally {
      running = false;
      const next = again;
      again = undefined;
      if (next !== undefined) trigger(next);
    }
  };
  const trigger = (ms = delayMs): void => {
    if (stopped) return;
    if (running) {
      again = again === undefined ? ms : Math.min(again, ms);
      return;
    }
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (ms <= 0) void run();
    else timer = setTimeout(() => void run(), ms);
  };
  return {
    trigger,
    every(ms) {
      if (stopped) return () => {};
      const tick = setInterval(() => running || trigger(0), ms).unref();
      ticks.add(tick);
      return () => {
        clearInterval(tick);
        ticks.delete(tick);
      };
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      for (const tick of ticks) clearInterval(tick);
      ticks.clear();
    },
  };
}
