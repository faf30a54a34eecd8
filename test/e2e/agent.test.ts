import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "dotenv";
import type { TestContext } from "node:test";
import { tempDir } from "../helpers.ts";
import { CLI, userEnv } from "./run-cli.ts";

// A real AF_UNIX datagram socket as $NOTIFY_SOCKET (Node has none). For each message it prints
// the text and whether each expected file exists, non-empty, at the moment the message arrives.
const LISTENER = `
import socket, sys, json, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
files = sys.argv[2:]
while True:
    data = s.recv(65536).decode()
    print(json.dumps({"msg": data, "exists": [os.path.exists(f) and os.path.getsize(f) > 0 for f in files]}), flush=True)
`;

// Reads a file as fast as it can for a while and reports every distinct content it saw.
const READER = `
import sys, time, json
path, seconds = sys.argv[1], float(sys.argv[2])
seen = {}
end = time.time() + seconds
while time.time() < end:
    try:
        with open(path, "rb") as f:
            seen[f.read().decode("utf-8", "replace")] = True
    except FileNotFoundError:
        seen["<missing>"] = True
print(json.dumps(list(seen)), flush=True)
`;

interface Lines {
  child: ChildProcess;
  lines: string[];
  /** resolves with the first line matching `re` (waits for it) */
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

function lines(child: ChildProcess, stream: "stdout" | "stderr" = "stdout"): Lines {
  const all: string[] = [];
  let buf = "";
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  child[stream]!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      all.push(line);
      for (const w of [...waiters]) if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  return {
    child,
    lines: all,
    waitFor(re, ms = 15_000) {
      const found = all.find((l) => re.test(l));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; saw: ${all.join(" | ").slice(0, 500)}`)), ms);
        waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
  };
}

function replaceAtomically(path: string, value: string): void {
  writeFileSync(`${path}.new`, value, { mode: 0o600 });
  renameSync(`${path}.new`, path);
}

async function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function setup(t: TestContext) {
  const root = tempDir(t);
  const src = join(root, "src");
  const out = join(root, "out");
  mkdirSync(src, { mode: 0o700 });
  mkdirSync(join(src, "db"), { mode: 0o700 });
  writeFileSync(join(src, "db", "password"), "first-db-password$HOME", { mode: 0o600 });
  writeFileSync(join(src, "api_key"), "api key with 'quote' and spaces", { mode: 0o600 });
  return { root, src, out, home: join(root, "home") };
}

test("agent: READY=1 only after the files exist; files and secrets.env are right; a change is picked up atomically; SIGTERM removes the files; no value in its output", { timeout: 90_000 }, async (t) => {
  const { root, src, out, home } = setup(t);
  mkdirSync(home);
  const socket = join(root, "notify.sock");
  const { fileNameOf } = await import("../../src/agent/config.ts");
  const dbFile = join(out, fileNameOf("db/password"));
  const listener = lines(spawn("python3", ["-c", LISTENER, socket, dbFile, join(out, "api_key"), join(out, "secrets.env")]));
  t.after(() => listener.child.kill());
  await listener.waitFor(/listening/);

  const agentProc = spawn(process.execPath, [CLI, "agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "db/password=DB_PASSWORD,api_key", "--watch", "--on-change", "none"], {
    env: userEnv(home, { NOTIFY_SOCKET: socket }),
  });
  t.after(() => agentProc.kill("SIGKILL"));
  let agentOutput = "";
  agentProc.stdout.on("data", (d: Buffer) => (agentOutput += d.toString()));
  agentProc.stderr.on("data", (d: Buffer) => (agentOutput += d.toString()));

  const ready = JSON.parse(await listener.waitFor(/READY=1/)) as { msg: string; exists: boolean[] };
  assert.deepEqual(ready.exists, [true, true, true], "every file exists when READY=1 arrives");
  assert.match(ready.msg, /STATUS=serving 2 secrets/);
  assert.equal(readFileSync(dbFile, "utf8"), "first-db-password$HOME");
  assert.equal(readFileSync(join(out, "api_key"), "utf8"), "api key with 'quote' and spaces");
  const envText = readFileSync(join(out, "secrets.env"));
  assert.deepEqual(parse(envText), { DB_PASSWORD: "first-db-password$HOME", API_KEY: "api key with 'quote' and spaces" });
  const bash = spawnSync("bash", ["-c", 'set -a; source "$1"; printf "%s\\0%s" "$DB_PASSWORD" "$API_KEY"', "x", join(out, "secrets.env")], { encoding: "utf8" });
  assert.equal(bash.stdout, "first-db-password$HOME\0api key with 'quote' and spaces");

  // A reader polls the file the whole time the value changes five times.
  const reader = lines(spawn("python3", ["-c", READER, dbFile, "2.5"]));
  const values = ["second-value", "third-longer-value-" + "x".repeat(500), "4th", "fifth-value", "final-db-password"];
  for (const v of values) {
    replaceAtomically(join(src, "db", "password"), v);
    await new Promise((r) => setTimeout(r, 300));
  }
  const seen = JSON.parse(await reader.waitFor(/^\[/, 20_000)) as string[];
  for (const s of seen) assert.ok(["first-db-password$HOME", ...values].includes(s), `a reader saw a partial or empty file (${s.length} bytes)`);
  assert.equal(readFileSync(dbFile, "utf8"), "final-db-password");
  assert.equal(parse(readFileSync(join(out, "secrets.env"))).DB_PASSWORD, "final-db-password");

  agentProc.kill("SIGTERM");
  assert.equal(await exited(agentProc), 0);
  for (const f of [dbFile, join(out, "api_key"), join(out, "secrets.env")]) assert.equal(existsSync(f), false, `${f} is removed on SIGTERM`);
  for (const v of ["first-db-password", "api key with", ...values]) assert.ok(!agentOutput.includes(v), "no value in the agent's output");
});

test("agent: a fetch failure at start exits non-zero and writes nothing; --on-change exit ends the agent after rewriting", { timeout: 60_000 }, async (t) => {
  const { src, out, home } = setup(t);
  mkdirSync(home);
  const bad = spawnSync(process.execPath, [CLI, "agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "db/password,missing/one"], {
    env: userEnv(home), encoding: "utf8",
  });
  assert.equal(bad.status, 3, bad.stderr);
  assert.match(bad.stderr, /cannot fetch missing\/one: .*nothing was written/);
  assert.equal(existsSync(out), false);

  const agentProc = spawn(process.execPath, [CLI, "agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "api_key", "--watch"], { env: userEnv(home) });
  t.after(() => agentProc.kill("SIGKILL"));
  const err = lines(agentProc, "stderr");
  await err.waitFor(/wrote 1 secrets/);
  replaceAtomically(join(src, "api_key"), "rotated-key");
  assert.equal(await exited(agentProc), 0);
  assert.equal(readFileSync(join(out, "api_key"), "utf8"), "rotated-key", "the new value is written before exiting");
  await err.waitFor(/a secret changed: exiting/);
});

test("agent: SIGALRM, SIGUSR2, SIGHUP and the other catchable terminating signals remove the files before the agent exits", { timeout: 120_000 }, async (t) => {
  const { src, out, home } = setup(t);
  mkdirSync(home);
  for (const sig of ["SIGALRM", "SIGUSR2", "SIGHUP", "SIGVTALRM", "SIGXCPU", "SIGUSR1"] as const) {
    const agentProc = spawn(process.execPath, [CLI, "agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "api_key", "--watch", "--on-change", "none"], { env: userEnv(home) });
    t.after(() => agentProc.kill("SIGKILL"));
    const err = lines(agentProc, "stderr");
    await err.waitFor(/wrote 1 secrets/);
    assert.ok(existsSync(join(out, "api_key")));
    agentProc.kill(sig);
    assert.equal(await exited(agentProc), 0, sig);
    assert.equal(existsSync(join(out, "api_key")) || existsSync(join(out, "secrets.env")), false, `${sig}: the files are removed`);
  }
});

test("agent: an --owner that is no user name or uid (an option for id(1), a path, a colon) is refused with a one-line usage error, nothing written", (t) => {
  const { src, out, home } = setup(t);
  mkdirSync(home);
  for (const bad of ["--help", "-u", "../root", "web:web", "web user", ""]) {
    const r = spawnSync(process.execPath, [CLI, "agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "api_key", `--owner=${bad}`], {
      env: userEnv(home), encoding: "utf8",
    });
    assert.equal(r.status, 2, `--owner=${bad}: ${r.stderr}`);
    assert.match(r.stderr, /^coffer: .*invalid owner .*a user name .* or a numeric uid\n/, `--owner=${bad}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, "one line");
    assert.equal(existsSync(out), false, "nothing written");
  }
});

test("agent: a missing or empty vault tokenFile is a one-line config error naming the file, not an internal error", (t) => {
  const { root, out, home } = setup(t);
  mkdirSync(home);
  const tokenFile = join(root, "no-such-token");
  const config = join(root, "agent.yml");
  writeFileSync(config, `backends:\n  v: { type: vault, address: "https://vault.invalid:8200", tokenFile: "${tokenFile}" }\nservices:\n  web: { backend: v, secrets: [app/db] }\n`, { mode: 0o600 });
  const run = () => spawnSync(process.execPath, [CLI, "agent", "--config", config, "--service", "web", "--dir", out], { env: userEnv(home), encoding: "utf8" });
  const missing = run();
  assert.equal(missing.status, 7, missing.stderr);
  assert.equal(missing.stderr, `coffer: ${tokenFile}: cannot read the Vault token file named by tokenFile (ENOENT); check the path, and that the agent's user may read it\n`);
  writeFileSync(tokenFile, "\n", { mode: 0o600 });
  const empty = run();
  assert.equal(empty.status, 7, empty.stderr);
  assert.match(empty.stderr, new RegExp(`^coffer: ${tokenFile}: the Vault token file named by tokenFile is empty\\n$`));
  assert.equal(existsSync(out), false, "nothing written");
});
