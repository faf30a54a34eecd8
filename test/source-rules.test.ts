/**
 * Rules of the source that no type checker sees (docs/design.md §4): every random number in
 * src/ comes from node:crypto, so none that becomes a key, token, nonce, temp name or password
 * can come from Math.random by mistake.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

test("src/ never calls Math.random: random numbers come from node:crypto", () => {
  const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  assert.ok(files.length > 100, "src/ was read");
  const found = files.filter((f) => /\bMath\.random\s*\(/.test(readFileSync(join(SRC, f), "utf8")));
  assert.deepEqual(found, []);
});
