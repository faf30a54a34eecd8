/**
 * The runbook executor with real processes (issue 13, "Running"): masking, the environment from
 * nothing, the execution dir's life, the process group on timeout and stop, exit statuses, one
 * ordered output stream with its limit and bounded memory, files, runAs.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { join } from "node:path";
import { test } from "node:test";
import { startExecution, type ExecutionSpec } from "../../src/runbooks/executor.ts";
import { sweepExecutionDirs } from "../../src/runbooks/workdir.ts";
import { tempDir } from "../helpers.ts";
import { baseFor, eventually, gone, groupMembers, run, start } from "./exec-helpers.ts";

const SECRET = "hunter2-correct-horse";
const execFileP = promisify(execFile);

/** A script that prints its dir, then waits until the test creates `go` in it, then exits with $CODE. */
const WAIT_FOR_GO = 'echo "dir=$PWD"; while [ ! -e go ]; do sleep 0.05; done; exit "${CODE:-0}"';

test("a param is printed as it is and a secret as *** (and its base64 and URL forms too)", async (t) => {
  const baseDir = baseFor(t);
  const { result, output } = await run({
    baseDir,
    script: 'echo "region=$REGION token=$TOKEN"; printf %s "$TOKEN" | base64; printf "%s\\n" "$TOKEN" | od -An -c | tr -d " \\n"; echo',
    params: { REGION: "eu-west-1" },
    secrets: { TOKEN: Buffer.from(SECRET) },
  });
  assert.equal(result.status, "succeeded");
  assert.match(output, /^region=eu-west-1 token=\*\*\*\n\*\*\*\n/);
  assert.ok(!output.includes(SECRET));
  assert.ok(!output.includes(Buffer.from(SECRET).toString("base64")));
  assert.equal(result.outputBytes, Buffer.byteLength(output));
  assert.equal(result.truncated, false);
});

test("the server's environment never reaches a script (a canary variable is absent)", async (t) => {
  process.env.COFFER_CANARY_EXEC = "canary-value-5ee1";
  t.after(() => delete process.env.COFFER_CANARY_EXEC);
  const baseDir = baseFor(t);
  const { output, dir } = await run({ baseDir, script: "env", params: { P: "v" } });
  assert.ok(!output.includes("canary"), output);
  const names = output.trim().split("\n").map((l) => l.slice(0, l.indexOf("=")));
  // what the executor sets, the param, and what the shell itself adds (PWD)
  assert.deepEqual(names.filter((n) => n !== "PWD" && n !== "OLDPWD" && n !== "SHLVL" && n !== "_").sort(), ["COFFER_EXECUTION_ID", "HOME", "LANG", "P", "PATH", "TMPDIR"]);
  assert.ok(output.includes("PATH=/usr/local/bin:/usr/bin:/bin\n"));
  assert.ok(output.includes(`HOME=${dir}\n`) && output.includes(`TMPDIR=${dir}\n`));
  assert.ok(output.includes("COFFER_EXECUTION_ID=0193e7a2-0000-7000-8000-000000000001\n"));
});

test("a secret never appears on a command line (/proc/PID/cmdline of every process of the execution)", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ baseDir, script: `echo started; sleep 600`, secrets: { TOKEN: Buffer.from(SECRET) }, files: { KEY: Buffer.from("file-secret-9f8e") } });
  await r.waitFor("started");
  await eventually(() => groupMembers(r.exec.pid).length >= 2, "the script and its sleep run");
  const members = groupMembers(r.exec.pid);
  for (const m of members) {
    assert.ok(!m.cmdline.includes(SECRET) && !m.cmdline.includes("file-secret-9f8e"), m.cmdline.toString());
  }
  // the script runs from a file: its text is not on the command line either
  assert.ok(members.some((m) => m.cmdline.toString().endsWith("/.runbook/script\0")));
  r.exec.stop("cancelled");
  assert.equal((await r.done).status, "cancelled");
});

test("files are written mode 0400 in the execution dir, their env var holds the path, and their content is masked", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ baseDir, script: 'echo "key=$KEY"; cat "$KEY"; echo; echo ready; sleep 600', files: { KEY: Buffer.from("-----BEGIN KEY-----\nabc123def\n-----END KEY-----") } });
  await r.waitFor("ready");
  const path = join(r.exec.dir, ".runbook", "KEY");
  assert.ok(r.output().startsWith(`key=${path}\n`));
  assert.equal(statSync(path).mode & 0o777, 0o400);
  assert.ok(!r.output().includes("abc123def") && !r.output().includes("BEGIN KEY"), r.output());
  r.exec.stop("cancelled");
  await r.done;
  assert.ok(!existsSync(path));
});

test("timeout: sleep 600 with a 2 s timeout ends timed-out, and no process of its group is left (a background child too)", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ baseDir, script: 'sleep 600 & echo "bg=$!"; echo "main=$$"; sleep 600', timeoutMs: 2000 });
  await r.waitFor("main=");
  const pids = [...r.output().matchAll(/(?:bg|main)=(\d+)/g)].map((m) => Number(m[1]));
  assert.equal(pids.length, 2);
  const result = await r.done;
  assert.equal(result.status, "timed-out");
  assert.equal(result.exitCode, null);
  assert.equal(result.signal, "SIGTERM");
  await eventually(() => pids.every(gone), `the processes ${pids.join(", ")} are gone`);
  await eventually(() => groupMembers(r.exec.pid).every((m) => gone(m.pid)), "the group is empty");
});

test("a script that ignores SIGTERM gets SIGKILL after the grace", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ baseDir, script: "trap '' TERM; echo ready; while :; do sleep 0.1; done", timeoutMs: 500, killGraceMs: 500 });
  const result = await r.done;
  assert.equal(result.status, "timed-out");
  assert.equal(result.signal, "SIGKILL");
});

test("cancel: stop('cancelled') gives SIGTERM (the script may clean up) and ends cancelled", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ baseDir, script: 'trap "echo cleaning up; exit 5" TERM; echo ready; while :; do sleep 0.1; done' });
  await r.waitFor("ready");
  r.exec.stop("cancelled");
  r.exec.stop("interrupted"); // the first reason stays
  const result = await r.done;
  assert.equal(result.status, "cancelled");
  assert.equal(result.exitCode, 5);
  assert.ok(r.output().includes("cleaning up"));
});

test("background processes left by a script that exited are killed with it", async (t) => {
  const baseDir = baseFor(t);
  const { result, output } = await run({ baseDir, script: 'sleep 600 >/dev/null 2>&1 & echo "bg=$!"; exit 0' });
  assert.equal(result.status, "succeeded");
  const bg = Number(/bg=(\d+)/.exec(output)?.[1]);
  await eventually(() => gone(bg), "the background sleep is gone");
});

test("tempdir: a process that leaves the group with setsid escapes (documented), yet the execution ends and its dir is removed", async (t) => {
  const baseDir = baseFor(t);
  const { result, output, dir } = await run({ baseDir, script: 'setsid sleep 600 & p=$!; while [ "$(ps -o sid= -p $p | tr -d " ")" != "$p" ]; do sleep 0.02; done; echo "escaped=$p"' });
  const escaped = Number(/escaped=(\d+)/.exec(output)?.[1]);
  t.after(() => {
    try {
      process.kill(escaped, "SIGKILL");
    } catch {
      // gone
    }
  });
  assert.equal(result.status, "succeeded");
  assert.ok(!existsSync(dir));
  assert.ok(!gone(escaped), "outside the process group: only a sandbox's PID namespace reaches it");
});

for (const end of ["succeeded", "failed", "timed-out", "cancelled", "interrupted"] as const) {
  test(`the execution dir is private during the run and gone after it ends ${end}`, async (t) => {
    const baseDir = baseFor(t);
    const r = await start({ baseDir, script: WAIT_FOR_GO, params: { CODE: end === "failed" ? "3" : "0" }, timeoutMs: end === "timed-out" ? 1500 : 60_000 });
    await r.waitFor("dir=");
    const dir = r.exec.dir;
    assert.equal(r.output(), `dir=${dir}\n`);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.ok(dir.startsWith(`${baseDir}/`));
    if (end === "succeeded" || end === "failed") writeFileSync(join(dir, "go"), "");
    if (end === "cancelled" || end === "interrupted") r.exec.stop(end);
    const result = await r.done;
    assert.equal(result.status, end);
    if (end === "failed") assert.equal(result.exitCode, 3);
    assert.ok(!existsSync(dir), `${dir} is gone`);
    assert.deepEqual(readdirSync(baseDir), []);
  });
}

test("exit codes and signals: exit 0 succeeded, exit 3 failed with 3, killed by a signal failed with the signal", async (t) => {
  const baseDir = baseFor(t);
  assert.deepEqual((await run({ baseDir, script: "exit 0" })).result, { status: "succeeded", exitCode: 0, signal: null, outputBytes: 0, truncated: false });
  const three = (await run({ baseDir, script: "exit 3" })).result;
  assert.equal(three.status, "failed");
  assert.equal(three.exitCode, 3);
  const killed = (await run({ baseDir, script: "kill -KILL $$" })).result;
  assert.equal(killed.status, "failed");
  assert.equal(killed.signal, "SIGKILL");
  assert.equal(killed.exitCode, null);
  // a shell that does not exist here is refused before anything runs
  await assert.rejects(run({ baseDir, script: "true", shell: "/bin/no-such-shell" }), { code: "E_INVALID_VALUE" });
  await assert.rejects(run({ baseDir, script: "true", shell: "sh" }), { code: "E_INVALID_VALUE" });
  await assert.rejects(run({ baseDir, script: "true", shell: "/usr" }), { code: "E_INVALID_VALUE" });
});

test("stdout and stderr share one stream and keep their order", async (t) => {
  const baseDir = baseFor(t);
  const { output } = await run({ baseDir, script: 'i=0; while [ $i -lt 200 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done' });
  const expected = Array.from({ length: 200 }, (_, i) => `out ${i}\nerr ${i}\n`).join("");
  assert.equal(output, expected);
});

test("output is kept in order when the sink is slow (backpressure), none lost", async (t) => {
  const baseDir = baseFor(t);
  const chunks: Buffer[] = [];
  const exec = await startExecution(spec(baseDir, { script: "seq 1 100000" }), {
    async output(chunk) {
      chunks.push(chunk);
      await new Promise((r) => setImmediate(r));
    },
  });
  await exec.done;
  const expected = Array.from({ length: 100000 }, (_, i) => `${i + 1}\n`).join("");
  assert.equal(Buffer.concat(chunks).toString(), expected);
});

test("a script writing 200 MB with a 1 MiB limit: truncated, 1 MiB kept, memory grows by less than 50 MB", async (t) => {
  const baseDir = baseFor(t);
  let kept = 0;
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  const exec = await startExecution(spec(baseDir, { script: "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 209715200", secrets: { S: Buffer.from(SECRET) } }), {
    output(chunk) {
      kept += chunk.length;
    },
  });
  const result = await exec.done;
  const grown = process.memoryUsage().rss - before;
  assert.equal(result.status, "succeeded");
  assert.equal(result.truncated, true);
  assert.equal(result.outputBytes, 1024 * 1024);
  assert.equal(kept, 1024 * 1024);
  assert.ok(grown < 50 * 1024 * 1024, `RSS grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
});

test("truncation never shows part of a secret, wherever the limit cuts", async (t) => {
  const baseDir = baseFor(t);
  const text = `abc${SECRET}xyz`;
  for (let limit = 0; limit <= text.length + 2; limit += 3) {
    const { result, output } = await run({ baseDir, script: `printf %s "abc\${S}xyz"`, secrets: { S: Buffer.from(SECRET) }, outputLimit: limit });
    const full = "abc***xyz";
    assert.equal(output, full.slice(0, limit));
    assert.equal(result.truncated, limit < full.length);
    assert.ok(!output.includes(SECRET.slice(0, 4)), `limit ${limit}: ${output}`);
  }
});

test("an output limit of exactly the output's size does not truncate", async (t) => {
  const baseDir = baseFor(t);
  const { result, output } = await run({ baseDir, script: "printf 0123456789", outputLimit: 10 });
  assert.equal(output, "0123456789");
  assert.equal(result.truncated, false);
});

test("runAs: a tempdir script runs as that user (nobody), owner of its dir, and can read its files", async (t) => {
  assert.equal(process.getuid?.(), 0, "this test runs as root");
  const baseDir = baseFor(t);
  const r = await start({ baseDir, script: 'id -u; id -g; cat "$KEY" >/dev/null && echo read-ok; touch "$HOME/x" && echo write-ok; echo ready; sleep 600', runAs: { uid: 65534, gid: 65534 }, files: { KEY: Buffer.from("k-e-y-v") } });
  await r.waitFor("ready");
  assert.equal(r.output(), "65534\n65534\nread-ok\nwrite-ok\nready\n");
  const st = statSync(r.exec.dir);
  assert.equal(st.uid, 65534);
  assert.equal(statSync(join(r.exec.dir, ".runbook", "KEY")).uid, 65534);
  // the base lets the user pass, lists nothing
  assert.equal(statSync(baseDir).mode & 0o777, 0o711);
  r.exec.stop("cancelled");
  await r.done;
  assert.ok(!existsSync(r.exec.dir));
});

test("an execution base others can read is refused", async (t) => {
  const baseDir = baseFor(t);
  mkdirSync(baseDir, { mode: 0o755 });
  await assert.rejects(run({ baseDir, script: "true" }), { code: "E_PERMISSIONS" });
});

test("dangerous, reserved and repeated env names are refused, and nothing is left behind", async (t) => {
  const baseDir = baseFor(t);
  for (const [what, names] of [["params", ["LD_PRELOAD", "PATH", "HOME", "BASH_ENV", "COFFER_EXECUTION_ID", "1BAD", "A-B"]], ["secrets", ["NODE_OPTIONS", "TMPDIR"]], ["files", ["LD_LIBRARY_PATH", "LANG"]]] as const) {
    for (const n of names) {
      const value = what === "params" ? "x" : Buffer.from("x");
      await assert.rejects(run({ baseDir, script: "true", [what]: { [n]: value } }), { code: "E_INVALID_NAME" }, `${what} ${n}`);
    }
  }
  await assert.rejects(run({ baseDir, script: "true", params: { A: "1" }, secrets: { A: Buffer.from("2") } }), { code: "E_INVALID_NAME" });
  assert.ok(!existsSync(baseDir) || readdirSync(baseDir).length === 0);
});

test("a secret that no environment can carry is refused without its value in the message", async (t) => {
  const baseDir = baseFor(t);
  for (const bad of [Buffer.from("top\0secret-nul"), Buffer.from([0x74, 0x6f, 0x70, 0xff, 0xfe, 0x73])]) {
    await assert.rejects(run({ baseDir, script: "true", secrets: { TOKEN: bad } }), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_INVALID_VALUE");
      assert.match(err.message, /TOKEN/);
      assert.ok(!err.message.includes("secret-nul") && !err.message.includes("top"), err.message);
      return true;
    });
  }
});

test("removing the dir never follows a link a script left in it", async (t) => {
  const baseDir = baseFor(t);
  const outside = join(baseDir, "..", "outside");
  mkdirSync(outside);
  writeFileSync(join(outside, "keep"), "x");
  const { result } = await run({ baseDir, script: `ln -s ${outside} link; ln -s ${outside}/keep file; mkdir -p d/e; touch d/e/f; chmod 000 d/e d` });
  assert.equal(result.status, "succeeded");
  assert.ok(existsSync(join(outside, "keep")));
  assert.deepEqual(readdirSync(baseDir), []);
});

test("a server that is not root removes what its script made unreadable (tempdir and sandbox)", async (t) => {
  // The executor in a node run as nobody: no root to bypass the modes a script left.
  const home = tempDir(t, "coffer-nonroot-");
  chownSync(home, 65534, 65534);
  const code = `
    const { startExecution } = await import(${JSON.stringify(new URL("../../src/runbooks/executor.ts", import.meta.url).pathname)});
    const { existsSync, readdirSync } = await import("node:fs");
    const out = {};
    for (const isolation of ["tempdir", "sandbox"]) {
      const base = ${JSON.stringify(home)} + "/base-" + isolation;
      const r = await startExecution({ id: "x", script: "id -u; mkdir -p a/b; echo x > a/b/f; chmod 000 a/b a", shell: "/bin/sh", params: {}, secrets: {}, files: {},
        timeoutMs: 60000, outputLimit: 4096, isolation, baseDir: base }, { output() {} });
      const result = await r.done;
      out[isolation] = { status: result.status, left: readdirSync(base), dirExists: existsSync(r.dir) };
    }
    console.log(JSON.stringify(out));
  `;
  const { stdout } = await execFileP(process.execPath, ["--input-type=module", "-e", code], { uid: 65534, gid: 65534, cwd: home, env: {} });
  assert.deepEqual(JSON.parse(stdout), {
    tempdir: { status: "succeeded", left: [], dirExists: false },
    sandbox: { status: "succeeded", left: [], dirExists: false },
  });
});

test("a failing sink ends the execution at once: its group is killed, the dir removed, done rejects with the sink's error", async (t) => {
  const baseDir = baseFor(t);
  const exec = await startExecution(spec(baseDir, { script: 'sleep 600 & echo "bg=$!"; while :; do echo more; sleep 0.01; done' }), {
    output(chunk) {
      const bg = /bg=(\d+)/.exec(chunk.toString())?.[1];
      if (bg !== undefined) bgPid = Number(bg);
      throw new Error("database down");
    },
  });
  let bgPid: number | undefined;
  await assert.rejects(exec.done, /database down/);
  assert.ok(!existsSync(exec.dir));
  await eventually(() => bgPid === undefined || gone(bgPid), "the background sleep is gone");
  await eventually(() => gone(exec.pid), "the script is gone");
});

test("sweepExecutionDirs removes the dirs of servers that are gone, keeps live ones and anything it did not make", async (t) => {
  const baseDir = baseFor(t);
  mkdirSync(baseDir, { mode: 0o700 });
  const dead = join(baseDir, `999999999-${"a".repeat(32)}`);
  const other = join(baseDir, `1-${"b".repeat(32)}`); // pid 1 runs
  const foreign = join(baseDir, "not-ours");
  for (const d of [dead, other, foreign]) mkdirSync(join(d, "sub"), { recursive: true });
  const r = await start({ baseDir, script: "echo ready; sleep 600" });
  await r.waitFor("ready");
  assert.deepEqual(await sweepExecutionDirs(baseDir), [dead]);
  assert.ok(existsSync(other) && existsSync(foreign) && existsSync(r.exec.dir));
  r.exec.stop("interrupted");
  await r.done;
});

test("a script reads its own script file but cannot find the server's data in its env or cwd", async (t) => {
  const baseDir = baseFor(t);
  const { output } = await run({ baseDir, script: "cat \"$HOME/.runbook/script\" | head -c 20; echo; ls -A", secrets: { S: Buffer.from(SECRET) } });
  assert.equal(output, 'cat "$HOME/.runbook/\n.runbook\n');
  assert.ok(!readFileSync("/proc/self/environ").includes(SECRET)); // the server's own env stays as it was
});

function spec(baseDir: string, s: Partial<ExecutionSpec> & { script: string }): ExecutionSpec {
  return { id: "0193e7a2-0000-7000-8000-000000000002", shell: "/bin/sh", params: {}, secrets: {}, files: {}, timeoutMs: 60_000, outputLimit: 1024 * 1024, isolation: "tempdir", baseDir, ...s };
}
