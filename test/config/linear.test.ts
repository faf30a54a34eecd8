import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Alias } from "yaml";
import { loadAgentConfig } from "../../src/agent/config.ts";
import { loadConfig, parseConfig } from "../../src/config/load.ts";
import { MAX_CONFIG_BYTES } from "../../src/config/read.ts";
import { YAML_PARSE_OPTIONS, nameList } from "../../src/config/yaml-checker.ts";
import type { WorkMeter } from "../../src/config/yaml-checker.ts";
import { tempDir } from "../helpers.ts";

/** The shapes of file that were (or could be) quadratic, with n entries. */
const SHAPES: Record<string, (n: number) => string> = {
  "one big env map": (n) => {
    let s = "environments:\n  dev:\n    env:\n";
    for (let i = 0; i < n; i++) s += `      V${i}: app/secret/${i}\n`;
    return s;
  },
  "a long extends chain": (n) => {
    let s = "environments:\n  e0: {}\n";
    for (let i = 1; i < n; i++) s += `  e${i}: { extends: e${i - 1} }\n`;
    return s;
  },
  "many aliases": (n) => {
    let s = "environments:\n  dev:\n    env: { A: &a app/a }\n";
    for (let i = 0; i < n; i++) s += `  e${i}: { env: { A: *a } }\n`;
    return s;
  },
  "many bad references, each listing the providers": (n) => {
    let s = "providers:\n";
    for (let i = 0; i < n; i++) s += `  p${i}: { type: env }\n`;
    s += "environments:\n  dev:\n    env:\n";
    for (let i = 0; i < n; i++) s += `      V${i}: { from: q${i}, path: X }\n`;
    return s;
  },
  "self-cycles": (n) => {
    let s = "environments:\n";
    for (let i = 0; i < n; i++) s += `  e${i}: { extends: e${i} }\n`;
    return s;
  },
};

function work(text: string): { steps: number; message: string } {
  const meter: WorkMeter = { steps: 0 };
  let message = "";
  try {
    parseConfig(text, ".coffer.yml", meter);
  } catch (err) {
    message = (err as Error).message;
  }
  return { steps: meter.steps, message };
}

test("parsing a 1 MiB project file is linear: work and message size grow with the file, not its square", (t) => {
  const resolves = t.mock.method(Alias.prototype, "resolve");
  for (const [shape, make] of Object.entries(SHAPES)) {
    const small = work(make(2000));
    const large = work(make(4000));
    assert.ok(small.steps > 0, shape);
    // Twice the entries: at most a little over twice the work (quadratic would be 4x).
    assert.ok(large.steps <= small.steps * 2.2, `${shape}: ${small.steps} steps for 2000 entries, ${large.steps} for 4000`);
    assert.ok(large.message.length <= Math.max(small.message.length * 2.2, 20_000), `${shape}: message ${small.message.length} → ${large.message.length}`);
  }
  // The yaml package's Alias.resolve walks the whole document per alias; coffer resolves them in one pass.
  assert.equal(resolves.mock.callCount(), 0);
  // Its duplicate-key check compares every key with every earlier one; coffer checks duplicates itself.
  assert.equal(YAML_PARSE_OPTIONS.uniqueKeys, false);
  assert.match(work("environments:\n  dev: {}\n  dev: {}\n").message, /^\.coffer\.yml:3: YAML: Map keys must be unique$/);

  // A file near the cap: the work is a small multiple of its entries.
  const big = SHAPES["one big env map"]!(34_000);
  assert.ok(big.length > 900_000 && big.length <= MAX_CONFIG_BYTES, String(big.length));
  const bigWork = work(big);
  assert.equal(bigWork.message, "");
  assert.ok(bigWork.steps <= 34_000 * 3, String(bigWork.steps));
});

test("aliases that repeat a large part of the file are refused, not walked again and again", () => {
  let s = "environments:\n  dev: &d\n    env:\n";
  for (let i = 0; i < 3000; i++) s += `      V${i}: app/s/${i}\n`;
  for (let i = 0; i < 100; i++) s += `  e${i}: *d\n`;
  const { steps, message } = work(s);
  assert.match(message, /aliases repeat too much of the file; write the entries out or use extends:/);
  assert.ok(steps < 3000 * 20, String(steps));
  // A few aliases of a small map are fine.
  assert.equal(work("environments:\n  dev: &d { env: { A: a } }\n  ci: *d\n  qa: *d\n").message, "");
});

test("a message lists at most 20 names and shows at most 50 problems", () => {
  assert.equal(nameList([]), "(none)");
  assert.equal(nameList(["a", "b"]), "a, b");
  assert.match(nameList(Array.from({ length: 30 }, (_, i) => `e${i}`)), /^e0, e1, .*, e19, … \(30 in all\)$/);
  const { message } = work(SHAPES["self-cycles"]!(60));
  assert.match(message, /^\.coffer\.yml: 60 problems:\n[^]*\n  … and 10 more$/);
});

test("a project file over 1 MiB is refused with one line naming the file and the limit", (t) => {
  const dir = tempDir(t);
  const file = join(dir, ".coffer.yml");
  writeFileSync(file, `environments: { dev: {} }\n${"#".repeat(MAX_CONFIG_BYTES)}\n`);
  assert.throws(() => loadConfig(file), { code: "E_CONFIG", message: `${file}: the config file is larger than the limit of 1048576 bytes (1 MiB); split it or remove what it does not need` });
  truncateSync(file, 64 * 1024 * 1024 * 1024); // sparse: refused by its size, never read
  assert.throws(() => loadConfig(file), { code: "E_CONFIG", message: /larger than the limit of 1048576 bytes/ });
  const agent = join(dir, "agent.yml");
  writeFileSync(agent, "#".repeat(MAX_CONFIG_BYTES + 1));
  assert.throws(() => loadAgentConfig(agent, "web"), { code: "E_CONFIG", message: `${agent}: the agent config file is larger than the limit of 1048576 bytes (1 MiB); split it or remove what it does not need` });
  writeFileSync(file, `environments: { dev: {} }\n${"#".repeat(MAX_CONFIG_BYTES - 40)}\n`);
  loadConfig(file);
});

test("a project file that is a FIFO or a device is refused without hanging", (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, "fifo.yml");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
  assert.throws(() => loadConfig(fifo), { code: "E_CONFIG", message: `${fifo}: the config file is not a regular file` });
  assert.throws(() => loadConfig("/dev/zero"), { code: "E_CONFIG", message: "/dev/zero: the config file is not a regular file" });
});
