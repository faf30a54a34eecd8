/**
 * Issue 11 item 5 through the CLI: a rolled-back store is refused until `coffer audit accept`
 * takes it knowingly (recorded in the chain); a store from before signed heads gets one and says so.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { coffer } from "./run-cli.ts";

const STORE = (home: string) => join(home, ".local", "share", "coffer", "store.db");
const HEADS = (home: string) => join(home, ".config", "coffer", "heads");

test("coffer audit accept takes a rolled-back store knowingly and records it", (t) => {
  const home = tempDir(t);
  const saved = join(tempDir(t), "old.db");
  assert.equal(coffer(home, ["init", "--name", "alice"]).code, 0);
  assert.equal(coffer(home, ["set", "api/key"], { input: "old-value-before-rotation" }).code, 0);
  copyFileSync(STORE(home), saved);
  assert.equal(coffer(home, ["set", "api/key"], { input: "new-value-after-rotation" }).code, 0);
  copyFileSync(saved, STORE(home));

  const refused = coffer(home, ["get", "api/key"]);
  assert.equal(refused.code, 6);
  assert.equal(refused.out, "");
  assert.match(refused.err, /^coffer: the store .* is not the one last written: .*`coffer audit accept`\n/);
  assert.equal(coffer(home, ["audit", "verify"]).code, 6);

  const accept = coffer(home, ["audit", "accept"]);
  assert.equal(accept.code, 0, accept.err);
  assert.match(accept.err, /accepted the store as it is: \d+ records where \d+ were signed on .*recorded as audit record \d+/);
  assert.equal(coffer(home, ["get", "api/key"]).out, "old-value-before-rotation");
  const records = JSON.parse(coffer(home, ["audit", "--json"]).out) as { action: string; detail: Record<string, unknown> | null }[];
  const accepted = records.find((r) => r.action === "accept");
  assert.ok(accepted !== undefined);
  assert.ok(typeof accepted.detail?.signed_count === "number" && typeof accepted.detail.found_count === "number");
  assert.equal(coffer(home, ["audit", "verify"]).code, 0);
  // Nothing more to accept.
  const again = coffer(home, ["audit", "accept"]);
  assert.equal(again.code, 0);
  assert.match(again.err, /nothing to accept/);
});

test("a store from before the signed head opens with a one-line notice and gets a head", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init", "--name", "alice"]).code, 0);
  assert.equal(coffer(home, ["set", "k"], { input: "v" }).code, 0);
  rmSync(HEADS(home), { recursive: true });
  const first = coffer(home, ["get", "k"]);
  assert.equal(first.code, 0);
  assert.equal(first.out, "v");
  assert.match(first.err, /^the store .* had no signed head .*signed one now at record \d+, kept in .*heads\/[0-9a-f]{32}\n$/);
  const second = coffer(home, ["get", "k"]);
  assert.equal(second.err, "");
});

test("a world-writable data dir is refused by the CLI with one line that gives the fix", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init", "--name", "alice"]).code, 0);
  const data = join(home, ".local", "share", "coffer");
  chmodSync(data, 0o777);
  const r = coffer(home, ["list"]);
  assert.equal(r.code, 5);
  assert.equal(r.err, `coffer: the directory ${data} above the store is writable by others (mode 0777), so they could replace the store; run \`chmod go-w ${data}\`\n`);
  chmodSync(data, 0o700);
  assert.equal(coffer(home, ["list"]).code, 0);
});
