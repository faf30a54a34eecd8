/** Shared test helpers: temp dirs that clean themselves up. */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

/** A fresh 0700 temp dir, removed after the test. */
export function tempDir(t: TestContext, prefix = "coffer-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every regular file below `dir`. */
export function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

/** The E_CONFIG message `fn` throws. */
export function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.equal((err as { code?: string }).code, "E_CONFIG", String(err));
    return (err as Error).message;
  }
  assert.fail("expected an E_CONFIG error");
}

/**
 * Polls `probe` every 100 ms until it gives a value, for at most `ms` (a generous deadline: a
 * correctness bound, never a timing assertion).
 * @throws Error "timed out waiting for WHAT" when it gave none in time
 */
export async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
