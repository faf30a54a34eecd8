import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, serveAppServer, serveCli, teamProjectYaml, userEnv, putSecret } from "./run-cli.ts";

/** A running `coffer run`: its output so far, and waits for patterns in it. */
function start(home: string, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], { env: userEnv(home, env), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  child.stdout.setEncoding("utf8").on("data", (d: string) => ((out += d), wake()));
  child.stderr.setEncoding("utf8").on("data", (d: string) => ((err += d), wake()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const until = (what: () => string, re: RegExp, ms = 8000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (re.test(what())) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${re} within ${ms} ms\nstdout: ${out}\nstderr: ${err}`));
      }, ms);
      waiters.add(check);
      check();
    });
  return { child, exited, out: () => out, err: () => err, untilOut: (re: RegExp, ms?: number) => until(() => out, re, ms), untilErr: (re: RegExp, ms?: number) => until(() => err, re, ms) };
}

test("coffer run --watch restarts the command with the new value when the server says it changed; exits with the command's status", async (t) => {
  const home = tempDir(t);
  const s = await serveAppServer(t, home);
  const root = s.root;
  await putSecret(s.url, root, "app/db/password", "first-value");
  const tokenRes = await fetch(`${s.url}/v1/tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "laptop", roles: ["app"] }),
  });
  const token = ((await tokenRes.json()) as { token: string }).token;
  const yml = join(home, ".coffer.yml");
  writeFileSync(yml, teamProjectYaml(s.url));

  // The command prints its value, then waits (the third value makes it exit 7 by itself).
  const script = 'echo "value=$DB_PASSWORD"; if [ "$DB_PASSWORD" = third-value ]; then exit 7; fi; exec sleep 60';
  const run = start(home, ["run", "--watch", "--restart-grace", "5s", "--config", yml, "--", "sh", "-c", script], { COFFER_TOKEN: token });
  t.after(() => {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  });
  await run.untilOut(/value=first-value\n/);
  // give the event stream a moment to open (a change before it would be caught by its first poll anyway)
  await new Promise((r) => setTimeout(r, 300));

  const changed = Date.now();
  await putSecret(s.url, root, "app/db/password", "second-value");
  await run.untilErr(/coffer: secrets changed \(DB_PASSWORD\): restarting sh\n/, 5000);
  await run.untilOut(/value=second-value\n/, 5000);
  assert.ok(Date.now() - changed < 5000);
  assert.equal(run.child.exitCode, null, "coffer keeps running after a restart");

  await putSecret(s.url, root, "app/db/password", "third-value");
  await run.untilOut(/value=third-value\n/, 5000);
  assert.equal(await run.exited, 7, run.err());
  for (const v of ["first-value", "second-value", "third-value"]) assert.ok(!run.err().includes(v), "no value on stderr");
  assert.ok(!run.err().includes(token));
});

test("coffer run --watch: SIGTERM to coffer goes to the command and ends the watch; nothing to watch is a usage error", async (t) => {
  const home = tempDir(t);
  const data = join(home, "srv");
  const root = coffer(home, ["server", "init", "--data", data]).out.trim().split("\n").at(-1)!;
  const s = await serveCli(t, home, ["--data", data]);
  await putSecret(s.url, root, "app/x", "x-value");
  const yml = join(home, ".coffer.yml");
  writeFileSync(yml, `providers:\n  team: { type: server, url: "${s.url}" }\nenvironments:\n  dev:\n    env:\n      X: { from: team, path: app/x }\n`);
  const run = start(home, ["run", "--watch", "--config", yml, "--", "sh", "-c", 'trap "exit 3" TERM; echo started; while :; do sleep 0.1; done'], { COFFER_TOKEN: root });
  t.after(() => {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  });
  await run.untilOut(/started\n/);
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 3);

  // env secrets cannot be watched: with nothing else, --watch refuses before starting anything
  const envOnly = join(home, "env-only.yml");
  writeFileSync(envOnly, `providers:\n  host: { type: env }\nenvironments:\n  dev:\n    env:\n      Y: { from: host, path: HOME }\n`);
  const r = coffer(home, ["run", "--watch", "--config", envOnly, "--", "sh", "-c", "echo should-not-run"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /nothing to watch/);
  assert.ok(!r.out.includes("should-not-run"));

  const noWatch = coffer(home, ["run", "--restart-grace", "5s", "--config", yml, "--", "true"], { env: { COFFER_TOKEN: root } });
  assert.equal(noWatch.code, 2);
  assert.match(noWatch.err, /--restart-grace goes with --watch/);
});

test("--restart-grace accepts 500ms like --poll-interval (the one duration grammar)", (t) => {
  const home = tempDir(t);
  // an env-only project: a grace that parses gets as far as "nothing to watch", one that does not stops at the flag
  const envOnly = join(home, "env-only.yml");
  writeFileSync(envOnly, `providers:\n  host: { type: env }\nenvironments:\n  dev:\n    env:\n      Y: { from: host, path: HOME }\n`);
  for (const grace of ["500ms", "90s", "1d"]) {
    const r = coffer(home, ["run", "--watch", "--restart-grace", grace, "--config", envOnly, "--", "true"]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /nothing to watch/, grace);
  }
  const bad = coffer(home, ["run", "--watch", "--restart-grace", "soon", "--config", envOnly, "--", "true"]);
  assert.equal(bad.code, 7, bad.err);
  assert.match(bad.err, /invalid --restart-grace "soon": must be a duration: a whole number with a unit ms, s, m, h, d or w/);
  const tooLong = coffer(home, ["run", "--watch", "--restart-grace", "2d", "--config", envOnly, "--", "true"]);
  assert.equal(tooLong.code, 7, tooLong.err);
  assert.match(tooLong.err, /invalid --restart-grace "2d": must be between 1ms and 1d/);
});
