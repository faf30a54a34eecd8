/** Helpers of the executor and sandbox tests: start an execution, watch its output, wait for processes to end. */
import assert from "node:assert/strict";
import { chmodSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { tempDir } from "../helpers.ts";
import { startExecution, type ExecutionResult, type ExecutionSpec, type RunningExecution } from "../../src/runbooks/executor.ts";

/** A fresh execution base whose parent others may pass through (for scripts run as another user). */
export function baseFor(t: TestContext): string {
  const dir = tempDir(t, "coffer-exec-");
  chmodSync(dir, 0o711);
  return join(dir, "base");
}

/** A started execution, its output so far, and a way to wait for some of it. */
export interface Run {
  readonly exec: RunningExecution;
  readonly done: Promise<ExecutionResult>;
  output(): string;
  outputBytes(): Buffer;
  /** resolves once the output contains `text` (fails after `ms`) */
  waitFor(text: string, ms?: number): Promise<void>;
}

/** The spec of a test execution: the script and the base; the rest defaults. */
export type TestSpec = Partial<ExecutionSpec> & { script: string; baseDir: string };

/** Starts an execution with defaults (tempdir, /bin/sh, 60 s, 1 MiB), collecting its output. */
export async function start(spec: TestSpec): Promise<Run> {
  const chunks: Buffer[] = [];
  let waiters: (() => void)[] = [];
  const exec = await startExecution(
    {
      id: "0193e7a2-0000-7000-8000-000000000001",
      shell: "/bin/sh",
      params: {},
      secrets: {},
      files: {},
      timeoutMs: 60_000,
      outputLimit: 1024 * 1024,
      isolation: "tempdir",
      ...spec,
    },
    {
      output(chunk) {
        chunks.push(Buffer.from(chunk));
        const w = waiters;
        waiters = [];
        for (const f of w) f();
      },
    },
  );
  const outputBytes = (): Buffer => Buffer.concat(chunks);
  const output = (): string => outputBytes().toString("utf8");
  let finished = false;
  const done = exec.done.finally(() => {
    finished = true;
    for (const f of waiters) f();
  });
  done.catch(() => undefined);
  return {
    exec,
    done,
    output,
    outputBytes,
    async waitFor(text, ms = 30_000) {
      const deadline = Date.now() + ms;
      while (!output().includes(text)) {
        if (finished) assert.fail(`the execution ended without printing ${JSON.stringify(text)}; output: ${output().slice(0, 2000)}`);
        if (Date.now() > deadline) assert.fail(`no ${JSON.stringify(text)} in the output within ${ms} ms; output: ${output().slice(0, 2000)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

/** Runs a script to its end. */
export async function run(spec: TestSpec): Promise<{ result: ExecutionResult; output: string; dir: string }> {
  const r = await start(spec);
  const result = await r.done;
  return { result, output: r.output(), dir: r.exec.dir };
}

/** True when no process `pid` runs (gone, or a zombie nobody reaped yet). */
export function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

/** Waits until `check()` holds, failing with `what` after `ms`. */
export async function eventually(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`still not true after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The host pids of running (not zombie) processes whose command line contains `needle`. */
export function pidsWithCmdline(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmd.includes(needle) && !gone(Number(p))) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The host pids of the processes of group `pgid`, and their command lines. */
export function groupMembers(pgid: number): { pid: number; cmdline: Buffer; environ: Buffer | undefined }[] {
  const out: { pid: number; cmdline: Buffer; environ: Buffer | undefined }[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) !== pgid) continue;
      let environ: Buffer | undefined;
      try {
        environ = readFileSync(`/proc/${p}/environ`);
      } catch {
        environ = undefined;
      }
      out.push({ pid: Number(p), cmdline: readFileSync(`/proc/${p}/cmdline`), environ });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
