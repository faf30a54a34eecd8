/**
 * The Node floor (src/floor.ts): on a Node older than coffer needs, every `coffer` command says
 * so in one line and exits 1, and importing or requiring the library throws that line, without
 * exiting the host. Run twice over: under the machine's own `node` (20 on the dev machine), and
 * under this Node 24 with a preload that makes it report 20, so the test means the same on a
 * machine whose own node is new (there, its own node must run coffer).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLOOR } from "../../src/floor.ts";
import { tempDir } from "../helpers.ts";
import { CLI, userEnv } from "./run-cli.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const MACHINE_NODE = "/usr/bin/node";

/** Preloads (node --require) that make this Node look older. */
const STUBS = {
  /** a Node 20 that has process.getBuiltinModule (20.16 and later) */
  "20.0.0": 'Object.defineProperty(process, "versions", { value: { ...process.versions, node: "20.0.0" } });',
  /** a Node from before process.getBuiltinModule: the check must not call what is missing */
  "20.10.0 without getBuiltinModule": 'Object.defineProperty(process, "versions", { value: { ...process.versions, node: "20.10.0" } });\ndelete process.getBuiltinModule;',
} as const;

/** What a user runs: a first command on a fresh machine, a read, the version, no command at all, a server. */
const COMMANDS = [["--version"], ["init", "--name", "x"], ["get", "app/a"], [], ["serve", "--help"]];

function stubFile(dir: string, name: keyof typeof STUBS): string {
  const file = join(dir, `${name.replaceAll(" ", "-")}.cjs`);
  writeFileSync(file, STUBS[name]);
  return file;
}

function run(home: string, argv: string[], cwd = home) {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd!, args, { cwd, env: userEnv(home), input: "", encoding: "utf8" });
  if (r.error) throw r.error;
  return r;
}

/** A script for `node -e` that imports or requires coffer by its package name and prints what happened. */
const LIBRARY_PROBE = {
  require: `let out; try { require("coffer"); out = "loaded"; } catch (e) { out = "threw: " + e.message; } console.log(out + " | host alive");`,
  import: `import("coffer").then(() => console.log("loaded | host alive"), (e) => console.log("threw: " + e.message + " | host alive"));`,
};

for (const name of Object.keys(STUBS) as (keyof typeof STUBS)[]) {
  const version = name.split(" ")[0]!;
  const message = `coffer needs Node ${NODE_FLOOR} or newer; this is Node ${version}`;

  test(`on a Node reporting ${name}, every coffer command prints only "${message}" and exits 1`, (t) => {
    const home = tempDir(t);
    const stub = stubFile(home, name);
    for (const args of COMMANDS) {
      const r = run(home, [process.execPath, "--require", stub, CLI, ...args]);
      assert.equal(r.stderr, `${message}\n`, `coffer ${args.join(" ")}`);
      assert.equal(r.stdout, "");
      assert.equal(r.status, 1);
    }
    assert.ok(!existsSync(join(home, ".config", "coffer")), "init did nothing");
  });

  test(`on a Node reporting ${name}, require("coffer"), import("coffer") and import("coffer/config") throw the message and leave the host running`, (t) => {
    const home = tempDir(t);
    const stub = stubFile(home, name);
    const config = `import("coffer/config").then(() => console.log("loaded | host alive"), (e) => console.log("threw: " + e.message + " | host alive"));`;
    for (const [how, probe] of Object.entries({ ...LIBRARY_PROBE, config })) {
      // cwd is the package itself: "coffer" resolves through its own package.json "exports"
      const r = run(home, [process.execPath, "--require", stub, "-e", probe], REPO);
      assert.equal(r.stdout, `threw: ${message} | host alive\n`, `${how}: ${r.stderr}`);
      assert.equal(r.status, 0);
    }
  });
}

test(`under the machine's own node (${MACHINE_NODE}), coffer runs if it is Node ${NODE_FLOOR}+, else says the floor and exits 1`, (t) => {
  const home = tempDir(t);
  const own = run(home, [MACHINE_NODE, "-p", "process.versions.node"]);
  assert.equal(own.status, 0, `${MACHINE_NODE} runs: ${own.stderr}`);
  const version = own.stdout.trim();
  const tooOld = Number.parseInt(version, 10) < NODE_FLOOR;
  for (const args of COMMANDS) {
    const r = run(home, [MACHINE_NODE, CLI, ...args]);
    if (tooOld) {
      assert.equal(r.stderr, `coffer needs Node ${NODE_FLOOR} or newer; this is Node ${version}\n`, `coffer ${args.join(" ")}`);
      assert.equal(r.status, 1);
    } else {
      assert.doesNotMatch(r.stderr, /internal error|needs Node/, `coffer ${args.join(" ")}`);
    }
  }
  for (const [how, probe] of Object.entries(LIBRARY_PROBE)) {
    const r = run(home, [MACHINE_NODE, "-e", probe], REPO);
    const expected = tooOld ? `threw: coffer needs Node ${NODE_FLOOR} or newer; this is Node ${version}` : "loaded";
    assert.equal(r.stdout, `${expected} | host alive\n`, `${how}: ${r.stderr}`);
  }
});

test(`on Node ${NODE_FLOOR}, require("coffer") returns the library (its entry has no top-level await) and import("coffer") the same functions`, (t) => {
  const home = tempDir(t);
  const probe = `const c = require("coffer"); import("coffer").then((m) => console.log(typeof c.openStore, typeof c.initCoffer, m.openStore === c.openStore));`;
  const r = run(home, [process.execPath, "--no-warnings", "-e", probe], REPO);
  assert.equal(r.stdout, "function function true\n", r.stderr);
  assert.equal(r.status, 0);
});
