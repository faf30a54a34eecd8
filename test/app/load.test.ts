/**
 * The library's `load()` and `import "coffer/config"`: an environment of `.coffer.yml` resolved
 * in the app's own process, as `coffer run` would deliver it to a command.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { fileURLToPath } from "node:url";
import { CofferError, initCoffer, load, openStore, Secret } from "coffer";
import { tempDir } from "../helpers.ts";

const CONFIG_ENTRY = fileURLToPath(import.meta.resolve("coffer/config"));

/** A user with a store holding two secrets, a private runtime dir, and a project dir. */
async function project(t: TestContext, yml: string) {
  const home = tempDir(t, "coffer-load-");
  const runtime = join(home, "run");
  mkdirSync(runtime, { mode: 0o700 });
  const env = { HOME: home, COFFER_HOME: join(home, ".coffer"), XDG_RUNTIME_DIR: runtime, PATH: process.env.PATH ?? "/usr/bin:/bin" };
  await initCoffer({ env, name: "app" });
  const store = await openStore({ env });
  store.set("app/db-url", "postgres://app:pw-load-1@db/app");
  store.set("app/tls-key", "-----KEY load-2-----\n");
  store.close();
  const dir = join(home, "project");
  mkdirSync(dir);
  writeFileSync(join(dir, ".coffer.yml"), yml);
  return { home, dir, env, runtime };
}

const YML = ["environments:", "  dev:", "    env:", "      DATABASE_URL: app/db-url", "    files:", "      TLS_KEY: app/tls-key", "  other:", "    env:", "      MISSING: app/nope", "default: dev", ""].join("\n");

test("load() resolves the default environment: env values as redacting Secrets, files written 0400 in a private runtime dir", async (t) => {
  const p = await project(t, YML);
  const loaded = await load({ cwd: p.dir, env: p.env });
  t.after(() => loaded.dispose());
  assert.equal(loaded.environment, "dev");
  assert.equal(loaded.file, join(p.dir, ".coffer.yml"));
  const url = loaded.env.DATABASE_URL;
  assert.ok(url instanceof Secret);
  assert.equal(url.reveal(), "postgres://app:pw-load-1@db/app");
  assert.ok(!inspect(loaded).includes("pw-load-1"), "no value shows when the result is logged");
  const key = loaded.files.TLS_KEY!;
  assert.equal(readFileSync(key, "utf8"), "-----KEY load-2-----\n");
  assert.equal(statSync(key).mode & 0o777, 0o400);
  assert.ok(loaded.dir !== null && key.startsWith(join(p.runtime, "coffer") + "/"));
  assert.equal(statSync(loaded.dir).mode & 0o777, 0o700);
});

test("dispose() removes the runtime dir and zeroes the values; a second call does nothing", async (t) => {
  const p = await project(t, YML);
  const loaded = await load({ cwd: p.dir, env: p.env, environment: "dev" });
  const dir = loaded.dir!;
  assert.ok(existsSync(dir));
  loaded.dispose();
  loaded.dispose();
  assert.ok(!existsSync(dir));
  assert.throws(() => loaded.env.DATABASE_URL!.reveal());
});

test("load() records the delivery in the local store's audit log, by variable name and never a value", async (t) => {
  const p = await project(t, YML);
  (await load({ cwd: p.dir, env: p.env })).dispose();
  const store = await openStore({ env: p.env });
  t.after(() => store.close());
  const last = store.auditLog().at(-1)!;
  assert.equal(last.action, "deliver");
  assert.deepEqual(last.detail, { via: "library", environment: "dev", env: ["DATABASE_URL"], files: ["TLS_KEY"] });
  assert.ok(!JSON.stringify(store.auditLog()).includes("pw-load-1"));
});

test("load() of an environment with an unresolvable secret throws naming the variable, and leaves no runtime dir", async (t) => {
  const p = await project(t, YML);
  await assert.rejects(load({ cwd: p.dir, env: p.env, environment: "other" }), (err: unknown) => {
    assert.ok(err instanceof CofferError);
    assert.equal(err.code, "E_NOT_FOUND");
    assert.match(err.message, /MISSING \(store:app\/nope\)/);
    return true;
  });
  const base = join(p.runtime, "coffer");
  assert.deepEqual(existsSync(base) ? readdirSync(base) : [], []);
});

test("load() takes the environment from COFFER_ENV when none is given, and refuses an unknown one", async (t) => {
  const p = await project(t, YML);
  await assert.rejects(load({ cwd: p.dir, env: { ...p.env, COFFER_ENV: "other" } }), /MISSING/);
  await assert.rejects(load({ cwd: p.dir, env: p.env, environment: "nope" }), (err: unknown) => err instanceof CofferError && err.code === "E_CONFIG");
});

/** Runs a Node program that imports coffer/config first (as `node --import coffer/config app.js`). */
function withConfig(p: { dir: string; env: Record<string, string> }, program: string, extra: Record<string, string> = {}) {
  return spawnSync(process.execPath, ["--import", CONFIG_ENTRY, "-e", program], { cwd: p.dir, env: { ...p.env, ...extra }, encoding: "utf8" });
}

const PRINT = `const pick = (n) => process.env[n] ?? null; console.log(JSON.stringify({ db: pick("DATABASE_URL"), key: pick("TLS_KEY"), dir: pick("COFFER_RUNTIME_DIR") }))`;

test("import \"coffer/config\" sets the environment's variables before the app runs, and removes its files when the app exits", async (t) => {
  const p = await project(t, YML);
  const r = withConfig(p, PRINT);
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { db: string; key: string; dir: string };
  assert.equal(got.db, "postgres://app:pw-load-1@db/app");
  assert.ok(got.key.startsWith(got.dir + "/"));
  assert.ok(!existsSync(got.dir), "the runtime dir went with the process");
});

test("import \"coffer/config\" never overrides a variable already set, unless COFFER_OVERRIDE=1", async (t) => {
  const p = await project(t, YML);
  const kept = withConfig(p, PRINT, { DATABASE_URL: "from-the-platform" });
  assert.equal(kept.status, 0, kept.stderr);
  assert.equal((JSON.parse(kept.stdout) as { db: string }).db, "from-the-platform");
  const replaced = withConfig(p, PRINT, { DATABASE_URL: "from-the-platform", COFFER_OVERRIDE: "1" });
  assert.equal(replaced.status, 0, replaced.stderr);
  assert.equal((JSON.parse(replaced.stdout) as { db: string }).db, "postgres://app:pw-load-1@db/app");
});

test("import \"coffer/config\" throws at import when a secret cannot be resolved: the app never starts", async (t) => {
  const p = await project(t, YML);
  const r = withConfig(p, `require("fs").writeFileSync("started", "")`, { COFFER_ENV: "other" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /cannot resolve MISSING \(store:app\/nope\)/);
  assert.ok(!existsSync(join(p.dir, "started")));
  assert.ok(!r.stderr.includes("pw-load-1"));
});

test("load() never prompts for a passphrase-protected identity: it says to set COFFER_PASSPHRASE_FILE, and takes `passphrase`", async (t) => {
  const home = tempDir(t, "coffer-load-");
  const env = { HOME: home, COFFER_HOME: join(home, ".coffer"), PATH: process.env.PATH ?? "/usr/bin:/bin" };
  await initCoffer({ env, name: "app", newPassphrase: "correct horse load", logN: 10 });
  const store = await openStore({ env, passphrase: "correct horse load" });
  store.set("app/db-url", "postgres://app:pw-load-3@db/app");
  store.close();
  writeFileSync(join(home, ".coffer.yml"), "environments:\n  dev:\n    env:\n      DATABASE_URL: app/db-url\n");
  await assert.rejects(load({ cwd: home, env }), /COFFER_PASSPHRASE_FILE/);
  const loaded = await load({ cwd: home, env, passphrase: "correct horse load" });
  t.after(() => loaded.dispose());
  assert.equal(loaded.env.DATABASE_URL!.reveal(), "postgres://app:pw-load-3@db/app");
});
