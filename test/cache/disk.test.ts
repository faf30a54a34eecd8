/** The outage cache's disk level (src/cache/disk.ts): what it writes, and what it refuses to read. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, copyFileSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { cacheKeyFor, cacheScope, diskCache } from "../../src/cache/disk.ts";

const VALUE = "cache-DISK-value-3f1a";

async function written(t: Parameters<typeof tempDir>[0]) {
  const home = tempDir(t, "coffer-disk-cache-");
  const dir = join(home, "cache");
  const key = await cacheKeyFor({ HOME: home, COFFER_HOME: join(home, "coffer") }, dir);
  assert.ok(key !== undefined && key.source === "key file");
  const cache = diskCache(dir, cacheScope("https://coffer.test", "cof_token_a"), key);
  await cache.write("app/db", { name: "app/db", version: 3, updatedAt: "2026-12-06T00:00:00.000Z", fetchedAt: 1, value: Buffer.from(VALUE) });
  const [file] = readdirSync(join(dir, "secrets")).map((f) => join(dir, "secrets", f));
  return { cache, file: file!, dir, key };
}

test("the disk cache writes one 0600 file per entry, encrypted (no value, no name), and reads it back", async (t) => {
  const { cache, file } = await written(t);
  const bytes = readFileSync(file);
  for (const needle of [VALUE, Buffer.from(VALUE).toString("base64"), "app/db"]) assert.equal(bytes.indexOf(needle), -1);
  assert.equal((await cache.read("app/db"))?.value.toString(), VALUE);
});

test("a cache file others can read, or one that is not the user's, is not believed (a planted or loosened file)", async (t) => {
  const { cache, file } = await written(t);
  chmodSync(file, 0o644);
  assert.equal(await cache.read("app/db"), undefined);
  chmodSync(file, 0o600);
  assert.equal((await cache.read("app/db"))?.version, 3);
  if (process.getuid?.() === 0) {
    chownSync(file, 65534, 65534);
    assert.equal(await cache.read("app/db"), undefined);
  }
});

test("another token's scope reads nothing from the same dir, and a file moved to another entry's name is not used", async (t) => {
  const { dir, key, file } = await written(t);
  const other = diskCache(dir, cacheScope("https://coffer.test", "cof_token_b"), key);
  assert.equal(await other.read("app/db"), undefined);
  const same = diskCache(dir, cacheScope("https://coffer.test", "cof_token_a"), key);
  await same.write("app/other", { name: "app/other", version: 1, updatedAt: "2026-12-06T00:00:00.000Z", fetchedAt: 1, value: Buffer.from("x") });
  const otherFile = readdirSync(join(dir, "secrets")).map((f) => join(dir, "secrets", f)).find((f) => f !== file)!;
  copyFileSync(file, otherFile);
  assert.equal(await same.read("app/other"), undefined);
});
