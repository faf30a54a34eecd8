/**
 * Backups stream: making and restoring one holds a chunk or two in memory, not the store.
 * Proved structurally: the peak resident memory of a child process that backs up (and one that
 * restores) a store of about 100 MB grows by far less than the store's size.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import { initCoffer, openStore } from "../../src/index.ts";
import { tempDir } from "../helpers.ts";

const CHILD = join(import.meta.dirname, "backup-memory-child.ts");
const VALUES = 96;
const VALUE_BYTES = 1024 * 1024 - 64;

// V8's young generation grows to tens of MiB under any steady allocation, whatever the data's
// size (a constant, but one as large as the margin here); capped so that the peak shows what
// the code itself holds.
function child(args: string[]): { before: number; after: number } & Record<string, unknown> {
  const out = execFileSync(process.execPath, ["--no-warnings", "--max-semi-space-size=1", CHILD, ...args], { encoding: "utf8", maxBuffer: 1024 * 1024 });
  return JSON.parse(out.trim().split("\n").at(-1)!) as { before: number; after: number };
}

test("a backup of a store larger than memory limits streams: peak memory stays bounded", async (t) => {
  const home = tempDir(t);
  await initCoffer({ env: { COFFER_HOME: home }, name: "alice" });
  const store = await openStore({ env: { COFFER_HOME: home } });
  for (let i = 0; i < VALUES; i++) store.set(`big/value-${i}`, randomBytes(VALUE_BYTES));
  store.close();
  const storeBytes = statSync(join(home, "store.db")).size;
  assert.ok(storeBytes > 96 * 1024 * 1024, `the store is ${storeBytes} bytes`);
  const limitKiB = storeBytes / 2 / 1024;

  const out = join(tempDir(t), "big.backup");
  const made = child(["backup", home, out]);
  assert.equal(made.verified, "decrypted");
  assert.ok(statSync(out).size > storeBytes, "the whole store is in the backup");
  t.diagnostic(`backup: peak memory +${made.after - made.before} KiB; store ${Math.round(storeBytes / 1024)} KiB`);
  assert.ok(made.after - made.before < limitKiB, `backup: peak memory grew by ${made.after - made.before} KiB for a store of ${storeBytes / 1024} KiB`);

  const fresh = tempDir(t);
  const restored = child(["restore", fresh, out, join(home, "identity")]);
  assert.equal(restored.restoredCount, VALUES);
  t.diagnostic(`restore: peak memory +${restored.after - restored.before} KiB`);
  assert.ok(restored.after - restored.before < limitKiB, `restore: peak memory grew by ${restored.after - restored.before} KiB for a store of ${storeBytes / 1024} KiB`);
  const back = await openStore({ env: { COFFER_HOME: fresh } });
  t.after(() => back.close());
  assert.equal(back.get("big/value-7").bytes().length, VALUE_BYTES);
});
