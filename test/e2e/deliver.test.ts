import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "dotenv";
import type { TestContext } from "node:test";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, userEnv } from "./run-cli.ts";

interface Project {
  home: string;
  dir: string;
  runtime: string;
  env: Record<string, string>;
}

/** A user with a store and a project dir with .coffer.yml; XDG_RUNTIME_DIR is a private temp dir. */
function project(t: TestContext, yml: string, secrets: Record<string, string | Buffer>): Project {
  const home = tempDir(t);
  const dir = join(home, "proj");
  const runtime = join(home, "run");
  mkdirSync(dir);
  mkdirSync(runtime, { mode: 0o700 });
  assert.equal(coffer(home, ["init"]).code, 0);
  for (const [name, value] of Object.entries(secrets)) assert.equal(coffer(home, ["set", name], { input: value }).code, 0, name);
  writeFileSync(join(dir, ".coffer.yml"), yml);
  return { home, dir, runtime, env: { XDG_RUNTIME_DIR: runtime } };
}

function inProject(p: Project, args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: p.dir,
    env: userEnv(p.home, { ...p.env, ...options.env }),
    input: options.input ?? "",
    encoding: "buffer",
  });
  return { code: r.status ?? 128, out: r.stdout.toString("utf8"), err: r.stderr.toString("utf8"), stdout: r.stdout };
}

const NODE = process.execPath;
const BASIC = `
environments:
  dev:
    env:
      DATABASE_URL: app/db/url
    files:
      TLS_KEY: { secret: app/tls/key, mode: "0400" }
      CA_CERT: app/tls/ca
`;

test("run: env var and files reach the command; the dir is 0700 under XDG_RUNTIME_DIR and gone afterwards; the exit status passes on", (t) => {
  const p = project(t, BASIC, { "app/db/url": "postgres://u:pw-123456@db/app", "app/tls/key": Buffer.from([0, 1, 2, 255]), "app/tls/ca": "CA PEM" });
  const script = `
    const fs = require("fs");
    const dir = process.env.COFFER_RUNTIME_DIR;
    console.log(JSON.stringify({
      url: process.env.DATABASE_URL,
      keyPath: process.env.TLS_KEY,
      key: fs.readFileSync(process.env.TLS_KEY).toString("hex"),
      keyMode: (fs.statSync(process.env.TLS_KEY).mode & 0o777).toString(8),
      ca: fs.readFileSync(process.env.CA_CERT, "utf8"),
      dir, dirMode: (fs.statSync(dir).mode & 0o777).toString(8),
    }));
    process.exit(7);`;
  const r = inProject(p, ["run", "--", NODE, "-e", script]);
  assert.equal(r.code, 7, r.err);
  const seen = JSON.parse(r.out) as Record<string, string>;
  assert.equal(seen.url, "postgres://u:pw-123456@db/app");
  assert.equal(seen.key, "000102ff");
  assert.equal(seen.keyMode, "400");
  assert.equal(seen.ca, "CA PEM");
  assert.equal(seen.dirMode, "700");
  assert.ok(seen.dir!.startsWith(join(p.runtime, "coffer") + "/"), seen.dir);
  assert.equal(existsSync(seen.dir!), false, "the runtime dir is removed after the command ends");
  const audit = JSON.parse(coffer(p.home, ["audit", "--json"]).out) as { action: string; detail: Record<string, unknown> | null }[];
  const last = audit.at(-1)!;
  assert.equal(last.action, "deliver");
  assert.deepEqual(last.detail, { via: "run", environment: "dev", command: "node", env: ["DATABASE_URL"], files: ["TLS_KEY", "CA_CERT"] });
});

test("run: a reference that does not resolve stops everything before the command starts, naming the variable", (t) => {
  const p = project(t, BASIC, { "app/db/url": "x-value", "app/tls/key": "k-value" });
  const marker = join(p.home, "started");
  const r = inProject(p, ["run", "--", NODE, "-e", `require("fs").writeFileSync(${JSON.stringify(marker)}, "")`]);
  assert.equal(r.code, 3);
  assert.match(r.err, /^coffer: cannot resolve CA_CERT \(store:app\/tls\/ca\): no secret "app\/tls\/ca".*nothing was started\n$/);
  assert.equal(existsSync(marker), false);
  assert.equal(existsSync(join(p.runtime, "coffer")), false, "no runtime dir is made before everything resolves");
});

test("run: a command that dies of a signal gives 128+n; a missing command exits 127, one that cannot be executed 126", (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  assert.equal(inProject(p, ["run", "--", NODE, "-e", "process.kill(process.pid, 'SIGKILL')"]).code, 137);
  const missing = inProject(p, ["run", "--", "no-such-command-xyz"]);
  assert.equal(missing.code, 127, "as a shell exits for a command it cannot find");
  assert.match(missing.err, /cannot start no-such-command-xyz: no such command/);
  const notExecutable = join(p.home, "not-executable");
  writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
  const denied = inProject(p, ["run", "--", notExecutable]);
  assert.equal(denied.code, 126, "as a shell exits for a command it cannot execute");
  assert.match(denied.err, /cannot start .*not-executable: permission denied/);
  const noDash = inProject(p, ["run", NODE]);
  assert.equal(noDash.code, 2);
  assert.match(noDash.err, /put the command after --/);
});

/** Starts `coffer run` in the background; resolves with the first stdout line and the process. */
function startRun(p: Project, script: string) {
  // detached: coffer leads its own process group (and session), as it does under a shell's job control
  const child = spawn(process.execPath, [CLI, "run", "--", NODE, "-e", script], { cwd: p.dir, env: userEnv(p.home, p.env), detached: true });
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const firstLine = new Promise<string>((resolve) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: () => string; err: () => string }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, out: () => out, err: () => err })),
  );
  return { child, firstLine, exited };
}

test("run: SIGTERM is passed to the command, coffer exits with its status, and the dir is removed", { timeout: 60_000 }, async (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  const { child, firstLine, exited } = startRun(
    p,
    `process.on("SIGTERM", () => { console.log("child got SIGTERM"); process.exit(42); });
     console.log(process.env.COFFER_RUNTIME_DIR); setInterval(() => {}, 1000);`,
  );
  const dir = await firstLine;
  assert.ok(existsSync(dir));
  child.kill("SIGTERM");
  const r = await exited;
  assert.equal(r.code, 42, r.err());
  assert.match(r.out(), /child got SIGTERM/);
  assert.equal(existsSync(dir), false);
});

test("run: USR1, USR2, ALRM and the other catchable terminating signals reach the command and never end coffer without cleanup", { timeout: 60_000 }, async (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  const sigs: NodeJS.Signals[] = ["SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGXCPU", "SIGXFSZ", "SIGPROF"];
  const { child, firstLine, exited } = startRun(
    p,
    `const got = [];
     for (const s of ${JSON.stringify(sigs)}) process.on(s, () => { got.push(s); console.log("got " + s); });
     process.on("SIGTERM", () => { console.log("all " + got.join(",")); process.exit(42); });
     console.log(process.env.COFFER_RUNTIME_DIR); setInterval(() => {}, 1000);`,
  );
  const dir = await firstLine;
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  for (const sig of sigs) {
    child.kill(sig);
    // Wait for the command to report it before the next: signals of one kind can merge.
    for (let i = 0; i < 400 && !out.includes(`got ${sig}\n`); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(out.includes(`got ${sig}\n`), `${sig} reached the command`);
    assert.ok(existsSync(dir), `coffer and its dir survive ${sig}`);
  }
  child.kill("SIGTERM");
  const r = await exited;
  assert.equal(r.code, 42, r.err());
  assert.match(out, new RegExp(`all ${sigs.join(",")}`));
  assert.equal(existsSync(dir), false);
});

test("run: the not-on-tmpfs warning is printed only when a file is delivered", (t) => {
  const p = project(t, "environments:\n  dev:\n    env:\n      URL: app/db/url\n", { "app/db/url": "u-value", "app/tls/key": "k-value" });
  // The checkout is on a disk (a temp dir may be tmpfs); the dir is removed afterwards.
  const disk = mkdtempSync(join(process.cwd(), ".test-disk-"));
  t.after(() => rmSync(disk, { recursive: true, force: true }));
  chmodSync(disk, 0o700);
  const noXdg = { XDG_RUNTIME_DIR: "" };
  for (const env of [{}, noXdg]) {
    const envOnly = inProject(p, ["run", "--dir", disk, "--", NODE, "-e", "0"], { env });
    assert.equal(envOnly.code, 0, envOnly.err);
    assert.equal(envOnly.err, "", "no file, no warning");
  }
  assert.equal(inProject(p, ["run", "--", NODE, "-e", "0"], { env: noXdg }).err, "", "no file, no word about XDG_RUNTIME_DIR either");
  writeFileSync(join(p.dir, ".coffer.yml"), "environments:\n  dev:\n    files:\n      KEY: app/tls/key\n");
  const withFile = inProject(p, ["run", "--dir", disk, "--", NODE, "-e", "0"]);
  assert.equal(withFile.code, 0, withFile.err);
  assert.match(withFile.err, /is not on tmpfs or ramfs: delivered files may reach a disk/);
});

test("run: a coffer killed with SIGKILL leaves its dir, and the next run sweeps it", { timeout: 60_000 }, async (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  const { child, firstLine, exited } = startRun(p, `console.log(process.env.COFFER_RUNTIME_DIR + " " + process.pid); setInterval(() => {}, 1000);`);
  const [dir, pid] = (await firstLine).split(" ") as [string, string];
  child.kill("SIGKILL");
  await exited;
  process.kill(Number(pid), "SIGKILL"); // the orphaned command
  assert.ok(existsSync(dir), "a SIGKILLed coffer cannot clean up");
  assert.equal(inProject(p, ["run", "--", NODE, "-e", "0"]).code, 0);
  assert.equal(existsSync(dir), false, "swept by the next run");
});

/** True while `pid` runs (not gone, not a zombie nobody reaped). */
function running(pid: string): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

test("after a SIGKILLed coffer run, the next run never sweeps the files its orphaned command still uses", { timeout: 60_000 }, async (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  const { child, firstLine, exited } = startRun(p, `console.log(process.env.COFFER_RUNTIME_DIR + " " + process.pid); setInterval(() => {}, 1000);`);
  const [dir, pid] = (await firstLine).split(" ") as [string, string];
  t.after(() => {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  });
  child.kill("SIGKILL");
  await exited;
  assert.equal(inProject(p, ["run", "--", NODE, "-e", "0"]).code, 0);
  assert.ok(existsSync(join(dir, "TLS_KEY")), "the orphan's group lives: its files stay");
  process.kill(Number(pid), "SIGKILL");
  // Wait for the kill to land: the process is gone, or a zombie nobody reaps.
  for (let i = 0; i < 600 && running(pid); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(inProject(p, ["run", "--", NODE, "-e", "0"]).code, 0);
  assert.equal(existsSync(dir), false, "swept once the whole group is gone");
});

test("run: without XDG_RUNTIME_DIR the dir goes to /dev/shm/coffer-<uid> with a warning", (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  const r = spawnSync(process.execPath, [CLI, "run", "--", NODE, "-e", "console.log(process.env.COFFER_RUNTIME_DIR)"], {
    cwd: p.dir, env: userEnv(p.home), encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /no XDG_RUNTIME_DIR: secrets go to \/dev\/shm\/coffer-\d+ \(tmpfs\)/);
  assert.ok(r.stdout.trim().startsWith(`/dev/shm/coffer-${process.getuid!()}/`), r.stdout);
  assert.equal(statSync(`/dev/shm/coffer-${process.getuid!()}`).mode & 0o777, 0o700);
  assert.equal(existsSync(r.stdout.trim()), false);
});

test("run --mask: values, their base64 and URL-encoded forms are masked, also when split across writes", (t) => {
  const value = "s3cr3t/value+with&chars";
  const p = project(t, "environments:\n  dev:\n    env:\n      TOKEN: app/token\n", { "app/token": value });
  const script = `
    const v = process.env.TOKEN;
    const w = (s) => require("fs").writeSync(1, s);
    w("plain: " + v.slice(0, 5)); setTimeout(() => {
      w(v.slice(5) + "\\n");
      w("b64: " + Buffer.from(v).toString("base64") + "\\n");
      w("url: " + encodeURIComponent(v) + "\\n");
      process.stderr.write("err: " + v + "\\n");
    }, 100);`;
  const r = inProject(p, ["run", "--mask", "--", NODE, "-e", script]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "plain: ***\nb64: ***\nurl: ***\n");
  assert.match(r.err, /err: \*\*\*\n/);
  assert.ok(!r.out.includes(value) && !r.err.includes(value));
});

test("run: an empty secret is delivered as an empty variable and an empty file", (t) => {
  const yml = "environments:\n  dev:\n    env:\n      FLAG: app/flag\n    files:\n      EMPTY_FILE: app/flag\n";
  const p = project(t, yml, { "app/flag": "" });
  const script = `console.log(JSON.stringify({ set: "FLAG" in process.env, flag: process.env.FLAG, file: require("fs").readFileSync(process.env.EMPTY_FILE).length }))`;
  const r = inProject(p, ["run", "--", NODE, "-e", script]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { set: true, flag: "", file: 0 });
});

const TRICKY: Record<string, string> = {
  NEWLINES: "line1\nline2\n",
  CRLF: "a\r\nb",
  QUOTES: `it's "quoted"`,
  DOLLAR: "$HOME ${PATH} `id`",
  HASH: "value # not a comment",
  EQUALS: "a=b=c",
  BACKSLASH: "C:\\path\\n\\t",
  TAB: "a\tb",
  UNICODE: "héllo ✓ 日本",
  SPACES: "  padded  ",
};

/** TRICKY without what dotenv cannot carry for all of dotenv, dotenvx and sh (a ' with ", a CR). */
const DOTENV_SAFE: Record<string, string> = Object.fromEntries(Object.entries(TRICKY).filter(([k]) => k !== "CRLF" && k !== "QUOTES"));

function trickyProject(t: TestContext, values: Record<string, string> = TRICKY): Project {
  const yml = `environments:\n  dev:\n    env:\n${Object.keys(values).map((k) => `      ${k}: t/${k}`).join("\n")}\n`;
  return project(t, yml, Object.fromEntries(Object.entries(values).map(([k, v]) => [`t/${k}`, v])));
}

test("load: dotenv output is read back exactly by the dotenv package", (t) => {
  const p = trickyProject(t, DOTENV_SAFE);
  const r = inProject(p, ["load"]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(parse(Buffer.from(r.out)), DOTENV_SAFE);
});

test("load: a value such as $(touch …) in a .env is never run by dotenvx run or by a shell sourcing it, and reads back exactly", (t) => {
  const marker = (n: number) => join(tempDir(t), `ran-${n}`);
  const m1 = marker(1);
  const m2 = marker(2);
  const values = { ...DOTENV_SAFE, CMD: `$(touch ${m1})`, BACKTICK: `\`touch ${m2}\``, APOSTROPHE: "it's", BRACES: "${HOME}x" };
  const p = trickyProject(t, values);
  const r = inProject(p, ["load"]);
  assert.equal(r.code, 0, r.err);
  const envFile = join(p.dir, ".env");
  writeFileSync(envFile, r.stdout);
  const names = Object.keys(values);
  const dump = join(p.home, "seen.json");
  const printer = `require("fs").writeFileSync(${JSON.stringify(dump)}, JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((n) => [n, process.env[n]]))))`;
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: p.home };
  const dotenvx = spawnSync(join(process.cwd(), "node_modules/.bin/dotenvx"), ["run", "-f", envFile, "--", NODE, "-e", printer], { cwd: p.dir, env, encoding: "utf8" });
  assert.equal(dotenvx.status, 0, dotenvx.stderr);
  assert.deepEqual(JSON.parse(readFileSync(dump, "utf8")), values, "dotenvx run");
  rmSync(dump);
  const sh = spawnSync("sh", ["-c", `set -a; . ./.env; exec "$0" -e '${printer.replaceAll("'", "'\\''")}'`, NODE], { cwd: p.dir, env, encoding: "utf8" });
  assert.equal(sh.status, 0, sh.stderr);
  assert.deepEqual(JSON.parse(readFileSync(dump, "utf8")), values, "set -a; . ./.env");
  assert.equal(existsSync(m1) || existsSync(m2), false, "nothing in a value ran");
});

test("load: a value dotenv cannot carry safely is refused naming the variable, never the value", (t) => {
  const p = trickyProject(t, { OK: "fine", QUOTES: `it's "quoted"` });
  const r = inProject(p, ["load"]);
  assert.equal(r.code, 7);
  assert.match(r.err, /^coffer: variable QUOTES cannot be written as dotenv: its value holds a single quote and a double quote.*--format shell or json/);
  assert.ok(!r.err.includes("quoted") && r.out === "");
});

test("load --format docker: raw NAME=value lines; a value with a line break is refused naming the variable", (t) => {
  const p = trickyProject(t, { A: `it's "q" $(id) # x`, B: "ü" });
  const r = inProject(p, ["load", "--format", "docker"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `A=it's "q" $(id) # x\nB=ü\n`);
  const multi = trickyProject(t, { OK: "x", NEWLINES: "l1\nl2" });
  const refused = inProject(multi, ["load", "--format", "docker"]);
  assert.equal(refused.code, 7);
  assert.match(refused.err, /^coffer: variable NEWLINES cannot be written as a Docker env file: its value holds a line break/);
  assert.ok(!refused.err.includes("l1"));
});

test("load --format shell: bash source gives back every byte", (t) => {
  const p = trickyProject(t);
  const r = inProject(p, ["load", "--format", "shell"]);
  assert.equal(r.code, 0, r.err);
  const file = join(p.home, "env.sh");
  writeFileSync(file, r.out);
  const names = Object.keys(TRICKY);
  const b = spawnSync("bash", ["-c", `source "$1"; for n in ${names.join(" ")}; do printf '%s\\0' "\${!n}"; done`, "x", file], { encoding: "utf8" });
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(b.stdout.split("\0").slice(0, -1), Object.values(TRICKY));
});

test("load --format json and github; -s LINK points into the runtime dir", (t) => {
  const p = trickyProject(t);
  assert.deepEqual(JSON.parse(inProject(p, ["load", "--format", "json"]).out), TRICKY);
  const ghEnv = join(p.home, "github_env");
  writeFileSync(ghEnv, "EXISTING=1\n");
  const gh = inProject(p, ["load", "--format", "github"], { env: { GITHUB_ENV: ghEnv } });
  assert.equal(gh.code, 0, gh.err);
  assert.match(gh.out, /^::add-mask::line1$/m);
  assert.match(gh.out, /^::add-mask::C:\\path\\n\\t$/m);
  const envFile = readFileSync(ghEnv, "utf8");
  assert.ok(envFile.startsWith("EXISTING=1\n"));
  assert.match(envFile, /^NEWLINES<<(ghadelimiter_[0-9a-f]+)\nline1\nline2\n\n\1$/m);
  assert.equal(inProject(p, ["load", "--format", "github"]).code, 2, "needs GITHUB_ENV");

  const q = trickyProject(t, DOTENV_SAFE);
  const r = inProject(q, ["load", "-s", ".env"]);
  assert.equal(r.code, 0, r.err);
  const link = join(q.dir, ".env");
  assert.ok(lstatSync(link).isSymbolicLink());
  const target = readlinkSync(link);
  assert.ok(target.startsWith(join(q.runtime, "coffer") + "/"));
  assert.equal(statSync(target).mode & 0o777, 0o400);
  assert.deepEqual(parse(readFileSync(link)), DOTENV_SAFE);
  assert.equal(inProject(q, ["load", "-s", ".env"]).code, 0, "a second load -s replaces its own link");
  assert.equal(existsSync(target), false, "and removes the old file");
  rmSync(link);
  writeFileSync(link, "MINE=1\n");
  const refused = inProject(q, ["load", "-s", ".env"]);
  assert.equal(refused.code, 4);
  assert.equal(readFileSync(link, "utf8"), "MINE=1\n", "a real .env is never overwritten");
});

test(".coffer.yml errors name the file and line; 1BAD is refused by name; config check shows the plan without values", (t) => {
  const p = project(t, "environments:\n  dev:\n    env:\n      1BAD: app/x\n      GOOD: app/x\n", { "app/x": "the-value-x" });
  const r = inProject(p, ["run", "--", NODE, "-e", "0"]);
  assert.equal(r.code, 7);
  assert.match(r.err, /\.coffer\.yml:4: .*"1BAD"/);
  writeFileSync(join(p.dir, ".coffer.yml"), "environments:\n  dev:\n    env:\n      GOOD: app/x\n    files:\n      KEY: { secret: app/x, mode: \"0600\" }\n");
  const check = inProject(p, ["config", "check"]);
  assert.equal(check.code, 0, check.err);
  assert.match(check.out, /^VARIABLE +AS +FROM +LINE\nGOOD +env +store:app\/x +4\nKEY +file 0600 +store:app\/x +6\n$/);
  assert.ok(!check.out.includes("the-value-x") && !check.err.includes("the-value-x"));
  const schema = JSON.parse(inProject(p, ["config", "schema"]).out) as { $schema: string };
  assert.match(schema.$schema, /json-schema\.org/);
});

test("run with a Vault reference: KV v2 over HTTP with the token from VAULT_TOKEN; a 403 stops the run naming the variable", { timeout: 60_000 }, async (t) => {
  const { startFakeVault } = await import("../providers/fake-vault.ts");
  const vault = await startFakeVault();
  t.after(() => vault.close());
  vault.put("payments/stripe", { api_key: "sk_live_from_vault", other: "x" });
  const yml = `providers:\n  vault: { type: vault, address: ${vault.address}, mount: secret }\nenvironments:\n  dev:\n    env:\n      DATABASE_URL: app/db/url\n      STRIPE_KEY: { from: vault, path: payments/stripe, key: api_key }\n`;
  const p = project(t, yml, { "app/db/url": "db-url-value" });
  const runAsync = (env: Record<string, string>) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, "run", "--", NODE, "-e", "console.log(process.env.STRIPE_KEY + ' ' + process.env.DATABASE_URL)"], {
        cwd: p.dir, env: userEnv(p.home, { ...p.env, ...env }),
      });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("close", (code) => resolve({ code, out, err }));
    });
  const ok = await runAsync({ VAULT_TOKEN: vault.token });
  assert.equal(ok.code, 0, ok.err);
  assert.equal(ok.out, "sk_live_from_vault db-url-value\n");
  assert.equal(vault.requests.at(-1)?.headers["x-vault-token"], vault.token);
  const denied = await runAsync({ VAULT_TOKEN: "s.wrong" });
  assert.equal(denied.code, 5, denied.err);
  assert.match(denied.err, /cannot resolve STRIPE_KEY \(vault:payments\/stripe#api_key\): vault denied/);
  assert.ok(!denied.err.includes("s.wrong") && !denied.err.includes(vault.token));
  const noToken = await runAsync({});
  assert.notEqual(noToken.code, 0);
  assert.match(noToken.err, /VAULT_TOKEN/);
});

/** A project whose runtime base already exists (as after a first run), with a `bus` beside it. */
function attackedProject(t: TestContext) {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  const base = join(p.runtime, "coffer");
  mkdirSync(base, { mode: 0o700 });
  writeFileSync(join(p.runtime, "bus"), "the session bus");
  return { p, base, link: join(p.dir, ".env") };
}

test("a committed .env link pointing outside coffer's base never makes load delete anything", (t) => {
  const { p, base, link } = attackedProject(t);
  const targets = [
    `${base}/../bus`,
    `${base}/0123456789abcdef/../../bus`,
    `${base}/0123456789abcdef/../0123456789abcdef/.env`,
    `${base}/./0123456789abcdef/.env`,
    "coffer/0123456789abcdef/.env",
    "/nonexistent/dangling/.env",
    join(p.runtime, "bus"),
  ];
  mkdirSync(join(base, "0123456789abcdef"), { mode: 0o700 });
  for (const target of targets) {
    if (lstatSync(link, { throwIfNoEntry: false }) !== undefined) unlinkSync(link);
    symlinkSync(target, link);
    const r = inProject(p, ["load", "-s", ".env"]);
    assert.equal(r.code, 4, `${target}: ${r.err}`);
    assert.match(r.err, /^coffer: .*\.env is a link coffer did not make \(it points to .*\); remove it yourself/);
    assert.equal(r.err.split("\n").length, 2, "one line");
    assert.equal(readlinkSync(link), target, "the link is left as it was");
    assert.equal(readFileSync(join(p.runtime, "bus"), "utf8"), "the session bus");
    assert.ok(existsSync(join(base, "0123456789abcdef")));
  }
  assert.deepEqual(readdirSync(base), ["0123456789abcdef"], "nothing was made either");
});

test("a link into coffer's base to a dir coffer did not record is replaced, and that dir is never removed", (t) => {
  const { p, base, link } = attackedProject(t);
  const foreign = join(base, "0123456789abcdef");
  mkdirSync(foreign, { mode: 0o700 });
  writeFileSync(join(foreign, "keep"), "x");
  symlinkSync(join(foreign, ".env"), link);
  const r = inProject(p, ["load", "-s", ".env"]);
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(foreign, "keep")), "an unrecorded dir is not coffer's to remove");
  assert.notEqual(dirname(readlinkSync(link)), foreign);
  // A link left dangling by a reboot (its dir gone) is coffer's form: it is replaced.
  rmSync(link);
  symlinkSync(join(base, "fedcba9876543210", ".env"), link);
  assert.equal(inProject(p, ["load", "-s", ".env"]).code, 0);
  assert.ok(existsSync(readlinkSync(link)));
});

test("a committed link to another project's load dir never makes load delete that dir", (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  assert.equal(inProject(p, ["load", "-s", ".env"]).code, 0);
  const mine = readlinkSync(join(p.dir, ".env"));
  const other = join(p.home, "other");
  mkdirSync(other);
  writeFileSync(join(other, ".coffer.yml"), BASIC);
  symlinkSync(mine, join(other, ".env"));
  const r = spawnSync(process.execPath, [CLI, "load", "-s", ".env"], { cwd: other, env: userEnv(p.home, p.env), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.notEqual(readlinkSync(join(other, ".env")), mine);
  assert.ok(existsSync(mine), "the dir was made for another LINK: it stays");
  assert.equal(readlinkSync(join(p.dir, ".env")), mine);
});

test("load dirs do not pile up: one whose link is gone, or whose session ended, is swept by the next run", (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  assert.equal(inProject(p, ["load", "-s", ".env"]).code, 0);
  const linked = dirname(readlinkSync(join(p.dir, ".env")));
  const kept = inProject(p, ["load", "--format", "shell"]);
  assert.equal(kept.code, 0, kept.err);
  const keptDir = dirname(/TLS_KEY='([^']+)'/.exec(kept.out)![1]!);
  // A load in a session that ends at once (as a closed terminal's).
  const gone = spawnSync("setsid", [process.execPath, CLI, "load", "--format", "shell"], { cwd: p.dir, env: userEnv(p.home, p.env), encoding: "utf8" });
  assert.equal(gone.status, 0, gone.stderr);
  const goneDir = dirname(/TLS_KEY='([^']+)'/.exec(gone.stdout)![1]!);
  rmSync(join(p.dir, ".env"));
  assert.equal(inProject(p, ["run", "--", NODE, "-e", "0"]).code, 0);
  assert.equal(existsSync(linked), false, "its link is gone");
  assert.equal(existsSync(goneDir), false, "its session is gone");
  assert.ok(existsSync(keptDir), "this session still lives: its files stay");
});

test("load --clean removes this project's load dirs and the links coffer made to them, saying what it removed", (t) => {
  const p = project(t, BASIC, { "app/db/url": "u-value", "app/tls/key": "k-value", "app/tls/ca": "c-value" });
  assert.equal(inProject(p, ["load", "-s", ".env"]).code, 0);
  const linked = dirname(readlinkSync(join(p.dir, ".env")));
  const printed = dirname(/TLS_KEY='([^']+)'/.exec(inProject(p, ["load", "--format", "shell"]).out)![1]!);
  const other = join(p.home, "other");
  mkdirSync(other);
  writeFileSync(join(other, ".coffer.yml"), BASIC);
  const otherLoad = spawnSync(process.execPath, [CLI, "load", "--format", "shell"], { cwd: other, env: userEnv(p.home, p.env), encoding: "utf8" });
  const otherDir = dirname(/TLS_KEY='([^']+)'/.exec(otherLoad.stdout)![1]!);
  const r = inProject(p, ["load", "--clean"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, new RegExp(`removed ${linked} and the link ${join(p.dir, ".env")}`));
  assert.match(r.err, new RegExp(`removed ${printed}\n`));
  assert.equal(existsSync(linked) || existsSync(printed) || existsSync(join(p.dir, ".env")), false);
  assert.ok(existsSync(otherDir), "another project's dir stays");
  assert.match(inProject(p, ["load", "--clean"]).err, /nothing to remove/);
  assert.equal(inProject(p, ["load", "--clean", "--all"]).code, 0);
  assert.equal(existsSync(otherDir), false, "--all: every project's");
});
