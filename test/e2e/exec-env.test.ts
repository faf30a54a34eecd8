import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { formatSecretsEnv } from "../../src/deliver/formats/secrets-env.ts";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, userEnv } from "./run-cli.ts";

const PRINT_VARS = "for (const n of process.argv.slice(1)) process.stdout.write((process.env[n] ?? '<unset>') + '\\0')";

function secretsFile(dir: string, text: string, mode = 0o600): string {
  const file = join(dir, "secrets.env");
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

/** Accepted values that exercise both quote forms, line breaks, backslashes and Unicode. */
function trickyVars(): [string, string][] {
  const pieces = ["a", " ", "\t", "\n", "'", '"', "`", "$", "$(id)", "${HOME}", "#", "\\", "\\n", "=", "ü", "🔑", "\u2028", "!", "*", "~"];
  const candidates = [
    "", "plain", " lead and trail ", "it's", "line1\nline2\n", "$HOME `id` \"q\" #c", "C:\\dir\\", "C:\\dir\\x", "a\\nb", "ünï 🔑",
    ...Array.from({ length: 300 }, () => {
      let s = "";
      for (let n = randomInt(1, 7); n > 0; n--) s += pieces[randomInt(pieces.length)];
      return s;
    }),
  ];
  const vars: [string, string][] = [];
  for (const v of candidates) {
    try {
      formatSecretsEnv([["X", v]]);
      vars.push([`SECRET_${vars.length}`, v]);
    } catch {
      // refused values are secrets-env.test.ts's business
    }
  }
  return vars;
}

test("exec-env: CMD sees every value exactly, on top of coffer's own environment, with the user's umask", (t) => {
  const home = tempDir(t);
  const vars = trickyVars();
  assert.ok(vars.length > 100);
  const file = secretsFile(home, formatSecretsEnv(vars));
  const names = vars.map(([n]) => n);
  const r = coffer(home, ["exec-env", file, "--", process.execPath, "-e", PRINT_VARS, ...names, "HOME"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, "");
  const got = r.stdout.toString("utf8").split("\0");
  assert.equal(got.pop(), "");
  assert.deepEqual(got, [...vars.map(([, v]) => v), home]);

  const u = coffer(home, ["exec-env", file, "--", process.execPath, "-e", "process.stdout.write(process.umask().toString(8))"], { umask: "027" });
  assert.equal(u.out, "27", u.err);
  // A file variable replaces an inherited one; flags after -- belong to CMD.
  const o = coffer(home, ["exec-env", secretsFile(home, "HOME='/from/file'\n"), "--", "/bin/sh", "-c", 'printf "%s|%s" "$HOME" "$1"', "sh", "--help"]);
  assert.equal(o.out, "/from/file|--help", o.err);
});

test("exec-env: CMD's exit status is coffer's; a signal death is passed on as the same signal", (t) => {
  const home = tempDir(t);
  const file = secretsFile(home, "A='1'\n");
  assert.equal(coffer(home, ["exec-env", file, "--", process.execPath, "-e", "process.exit(42)"]).code, 42);
  assert.equal(coffer(home, ["exec-env", file, "--", process.execPath, "-e", ""]).code, 0);
  const r = spawnSync(process.execPath, [CLI, "exec-env", file, "--", process.execPath, "-e", "process.kill(process.pid, 'SIGTERM')"], { env: userEnv(home) });
  assert.equal(r.signal, "SIGTERM", `status ${r.status} ${r.stderr.toString()}`);
  // Through a shell, that reads as 128+15.
  const sh = spawnSync("/bin/sh", ["-c", `"$0" "$1" exec-env "$2" -- "$0" -e "process.kill(process.pid, 'SIGTERM')"; echo "status $?"`, process.execPath, CLI, file], { env: userEnv(home) });
  assert.equal(sh.stdout.toString().trim(), "status 143");
});

test("exec-env: SIGTERM and SIGHUP sent to coffer reach CMD", async (t) => {
  const home = tempDir(t);
  const file = secretsFile(home, "A='1'\n");
  for (const [sig, status] of [["SIGTERM", 42], ["SIGHUP", 43]] as const) {
    const script = `process.on('${sig}', () => { process.stdout.write('got ${sig}'); process.exit(${status}); }); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, [CLI, "exec-env", file, "--", process.execPath, "-e", script], { env: userEnv(home), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; stdout ${out} stderr ${err}`)), 10_000);
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out === "ready\n") child.kill(sig);
      });
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(out, `ready\ngot ${sig}`, err);
    assert.equal(code, status, err);
  }
});

test("exec-env: a missing, unsafe or malformed file is one clear line and an exit code; CMD does not start", (t) => {
  const home = tempDir(t);
  const marker = join(home, "started");
  const cmd = ["--", "/bin/sh", "-c", `touch ${marker}`];
  const oneLine = (err: string, re: RegExp) => {
    assert.equal(err.split("\n").length, 2, err);
    assert.match(err, re);
  };

  let r = coffer(home, ["exec-env", join(home, "nope.env"), ...cmd]);
  assert.equal(r.code, 3);
  oneLine(r.err, /^coffer: secrets file .*nope\.env does not exist/);

  const file = secretsFile(home, "A='hunter2-secret'\n", 0o620);
  r = coffer(home, ["exec-env", file, ...cmd]);
  assert.equal(r.code, 5);
  oneLine(r.err, /^coffer: secrets file .* is writable by group or others \(mode 0620\); run `chmod go-w /);

  chmodSync(file, 0o602);
  assert.equal(coffer(home, ["exec-env", file, ...cmd]).code, 5);

  const link = join(home, "link.env");
  chmodSync(file, 0o600);
  symlinkSync(file, link);
  r = coffer(home, ["exec-env", link, ...cmd]);
  assert.equal(r.code, 5);
  oneLine(r.err, /symbolic link/);

  r = coffer(home, ["exec-env", home, ...cmd]);
  assert.equal(r.code, 2);
  oneLine(r.err, /is not a regular file/);

  const bad = secretsFile(home, "A='hunter2-secret'\nB=hunter2-unquoted\n");
  r = coffer(home, ["exec-env", bad, ...cmd]);
  assert.equal(r.code, 7);
  oneLine(r.err, /^coffer: .*secrets\.env line 2: the value of B must be in '…' or "…"\n$/);
  assert.ok(!r.err.includes("hunter2"));

  secretsFile(home, "A='ok'\nB='hunter2\\'\n");
  r = coffer(home, ["exec-env", bad, ...cmd]);
  assert.equal(r.code, 7);
  oneLine(r.err, /line 2: B: a value with a trailing backslash/);
  assert.ok(!r.err.includes("hunter2"));

  writeFileSync(bad, Buffer.from([0x41, 0x3d, 0x27, 0xff, 0x27, 0x0a]));
  r = coffer(home, ["exec-env", bad, ...cmd]);
  assert.equal(r.code, 7);
  oneLine(r.err, /not valid UTF-8/);

  secretsFile(home, "A='1'\n");
  r = coffer(home, ["exec-env", bad, "--", join(home, "no-such-command")]);
  assert.equal(r.code, 127, "as a shell exits for a command it cannot find");
  oneLine(r.err, /cannot start .*no-such-command: no such command/);

  r = coffer(home, ["exec-env", bad]);
  assert.equal(r.code, 2);
  oneLine(r.err, /no command after the secrets file/);

  assert.equal(spawnSync("test", ["-e", marker]).status, 1, "CMD must not have started");

  // Readable by others is allowed (the side-car's PrivateTmp case), writable is not.
  chmodSync(bad, 0o644);
  assert.equal(coffer(home, ["exec-env", bad, ...cmd]).code, 0);
});
