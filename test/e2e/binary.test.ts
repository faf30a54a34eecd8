/**
 * The single executable (dist/binary/coffer, `npm run build:binary`) on a machine without Node:
 * every run is `env -i PATH=<dir> HOME=<temp>`, where the dir holds only the few programs the
 * commands start (sh, env, printenv, true, cat) and no `node`, so nothing the binary does can
 * lean on a Node or a node_modules. It goes through init, set, get, run and load with a
 * .coffer.yml, export/import between two homes, an agent run, and `serve` on SQLite and on
 * PostgreSQL with an authenticated read and the console's and API docs' embedded files.
 *
 * The binary is built here (10 to 40 s) when it is missing or older than src/ or web/.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir, waitFor } from "../helpers.ts";
import { freshDatabase } from "../services.ts";
import { whenServing } from "./run-cli.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BINARY = join(ROOT, "dist", "binary", "coffer");
/** What the commands under test start; `node` is deliberately not among them. */
const TOOLS = ["sh", "env", "printenv", "true", "cat"];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

if (!existsSync(BINARY) || statSync(BINARY).mtimeMs < Math.max(newestMtime(join(ROOT, "src")), newestMtime(join(ROOT, "web")))) {
  for (const script of ["scripts/bundle-ui.ts", "scripts/bundle-binary.ts"]) {
    const r = spawnSync(process.execPath, [script], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0) throw new Error(`${script} failed (exit ${r.status ?? r.signal}); the binary tests need dist/binary/coffer`);
  }
}

/** A home with a bin dir holding only {@link TOOLS}. */
function home(t: TestContext, parent = tempDir(t)): string {
  const bin = join(parent, "bin");
  mkdirSync(bin, { recursive: true });
  for (const tool of TOOLS) {
    const found = ["/usr/bin", "/bin"].map((d) => join(d, tool)).find((p) => existsSync(p));
    if (found === undefined) throw new Error(`${tool} is not in /usr/bin or /bin; the binary tests need it`);
    symlinkSync(found, join(bin, tool));
  }
  return parent;
}

/** `env -i PATH=<home>/bin HOME=<home> dist/binary/coffer ARGS…`. */
function argv(h: string, args: string[]): [string, string[]] {
  return ["/usr/bin/env", ["-i", `PATH=${join(h, "bin")}`, `HOME=${h}`, BINARY, ...args]];
}

function bin(h: string, args: string[], o: { input?: string; cwd?: string } = {}) {
  const [file, rest] = argv(h, args);
  const r = spawnSync(file, rest, { input: o.input ?? "", cwd: o.cwd ?? h, encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status ?? 128, out: r.stdout, err: r.stderr };
}

function ok(h: string, args: string[], o: { input?: string; cwd?: string } = {}): string {
  const r = bin(h, args, o);
  assert.equal(r.code, 0, `coffer ${args.join(" ")}: ${r.err}`);
  return r.out;
}

test("the binary prints its version, like the bundle", () => {
  const r = spawnSync(BINARY, ["--version"], { env: {}, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  assert.equal(r.stdout, `coffer ${pkg.version}\n`);
  assert.equal(r.stderr, "", "no experimental-feature warning");
});

test("without any node on PATH: init, set, get, run and load with a .coffer.yml; files 0600 and dirs 0700 under umask 000", (t) => {
  const h = home(t);
  assert.notEqual(spawnSync(join(h, "bin", "sh"), ["-c", "command -v node"], { env: { PATH: join(h, "bin") } }).status, 0, "no node on the test's PATH");
  // umask 000 through sh: coffer makes its files private whatever the umask
  const [file, rest] = argv(h, ["init", "--name", "solo"]);
  const init = spawnSync(join(h, "bin", "sh"), ["-c", 'umask 000 && exec "$0" "$@"', file, ...rest], { env: {}, encoding: "utf8" });
  assert.equal(init.status, 0, init.stderr);
  for (const f of readdirSync(h, { recursive: true, withFileTypes: true })) {
    const path = join(f.parentPath, f.name);
    if (path.startsWith(join(h, "bin"))) continue;
    if (f.isFile()) assert.equal(statSync(path).mode & 0o777, 0o600, path);
    if (f.isDirectory() && path !== join(h, "bin")) assert.equal(statSync(path).mode & 0o777, 0o700, path);
  }

  ok(h, ["set", "app/db/password"], { input: "binary-db-pw" });
  for (let i = 0; i < 3; i++) ok(h, ["set", `app/key${i}`], { input: `value ${i}` });
  assert.equal(ok(h, ["get", "app/db/password"]), "binary-db-pw");

  const proj = join(h, "proj");
  mkdirSync(proj);
  writeFileSync(join(proj, ".coffer.yml"), "environments:\n  dev:\n    env:\n      DB_PASSWORD: app/db/password\n      KEY1: app/key1\n");
  const run = bin(h, ["run", "--", "sh", "-c", 'test "$DB_PASSWORD" = binary-db-pw && printenv KEY1 && command -v node || echo no-node'], { cwd: proj });
  assert.equal(run.code, 0, run.err);
  assert.equal(run.out, "value 1\nno-node\n");
  const status = bin(h, ["run", "--", "sh", "-c", "exit 7"], { cwd: proj });
  assert.equal(status.code, 7, "run exits with its command's status");

  assert.equal(ok(h, ["load"], { cwd: proj }), "DB_PASSWORD='binary-db-pw'\nKEY1='value 1'\n");
  assert.deepEqual(JSON.parse(ok(h, ["load", "--format", "json"], { cwd: proj })), { DB_PASSWORD: "binary-db-pw", KEY1: "value 1" });
});

test("export from one home and import in another, both with the binary", (t) => {
  const root = tempDir(t);
  const [alice, bob] = ["alice", "bob"].map((n) => home(t, join(root, n))) as [string, string];
  ok(alice, ["init", "--name", "alice"]);
  ok(bob, ["init", "--name", "bob"]);
  ok(alice, ["set", "app/one"], { input: "shared-one" });
  ok(alice, ["set", "db/other"], { input: "not-shared" });
  ok(alice, ["users", "add", "bob", "--card", ok(bob, ["card"]).trim()]);
  ok(alice, ["grant", "bob", "app/*"]);
  const bundle = join(root, "bob.coffer");
  ok(alice, ["export", "bob", "--out", bundle]);
  const fp = ok(alice, ["card", "--fingerprint"]).trim().split("\n")[1]!;
  ok(bob, ["import", bundle, "--trust", fp]);
  assert.equal(ok(bob, ["get", "app/one"]), "shared-one");
  assert.equal(bin(bob, ["get", "db/other"]).code, 3);
});

test("agent: writes a folder provider's secrets into a dir, and removes them on SIGTERM", { timeout: 60_000 }, async (t) => {
  const h = home(t);
  const src = join(h, "src");
  mkdirSync(join(src, "db"), { recursive: true });
  writeFileSync(join(src, "db", "password"), "agent-pw");
  const out = join(h, "out");
  const [file, rest] = argv(h, ["agent", "--provider", `folder:${src}`, "--dir", out, "--secrets", "db/password=DB_PASSWORD"]);
  const agent = spawn(file, rest, { cwd: h, stdio: ["ignore", "ignore", "pipe"] });
  t.after(() => {
    if (agent.exitCode === null) agent.kill("SIGKILL");
  });
  let err = "";
  agent.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => agent.on("exit", (code) => resolve(code)));
  const env = join(out, "secrets.env");
  await waitFor("the agent's files", 30_000, async () => (existsSync(env) ? true : undefined));
  assert.equal(readFileSync(join(out, "db_password"), "utf8"), "agent-pw");
  assert.match(readFileSync(env, "utf8"), /^DB_PASSWORD=/m);
  agent.kill("SIGTERM");
  assert.equal(await exited, 0, err);
  assert.equal(existsSync(env), false, "SIGTERM removes the files");
});

test("units: the units' command line is the binary itself, not a node and a script", (t) => {
  const h = home(t);
  const out = join(h, "units");
  ok(h, ["units", "--name", "web", "--exec", "/bin/true", "--secrets", "api_key", "--provider", "folder:/etc/web", "--out", out]);
  const execStart = (unit: string) => readFileSync(join(out, unit), "utf8").split("\n").find((l) => l.startsWith("ExecStart="));
  assert.equal(execStart("web-secrets.service")?.startsWith(`ExecStart=${BINARY} agent `), true);
  assert.equal(execStart("web.service")?.startsWith(`ExecStart=${BINARY} exec-env `), true);
});

test("an error from the server's part of the binary is coffer's one-line error, not an internal error", (t) => {
  const h = home(t);
  const r = bin(h, ["serve", "--data", join(h, "missing"), "--listen", "127.0.0.1:0"]);
  assert.notEqual(r.code, 0);
  assert.notEqual(r.code, 1, r.err);
  assert.match(r.err, /^coffer: no data dir at .*: run `coffer server init --data /);
  assert.doesNotMatch(r.err, /internal error/);
});

/** `coffer serve` from the binary (env -i); resolves with its URL once it listens. */
async function serve(t: TestContext, h: string, args: string[]): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const [file, rest] = argv(h, ["serve", "--listen", "127.0.0.1:0", ...args]);
  const served = await whenServing(t, spawn(file, rest, { cwd: h, stdio: ["ignore", "ignore", "pipe"] }), "the binary's coffer serve");
  return { url: served.url, stop: () => (served.child.kill("SIGTERM"), served.exited) };
}

/** server init + serve + a write and an authenticated read, the console and the API docs. */
async function serveAndRead(t: TestContext, config: string): Promise<void> {
  const h = home(t);
  const data = join(h, "srv");
  const configFile = join(h, "server.yml");
  writeFileSync(configFile, config);
  const root = ok(h, ["server", "init", "--data", data, "--config", configFile]).trim().split("\n").at(-1)!;
  assert.match(root, /^cof_/);
  const s = await serve(t, h, ["--data", data, "--config", configFile]);
  const auth = { authorization: `Bearer ${root}`, "content-type": "application/json" };
  const put = await fetch(`${s.url}/v1/secrets/app/served`, { method: "PUT", headers: auth, body: JSON.stringify({ value: "served-value" }) });
  assert.equal(put.status, 200, await put.text());
  const read = await fetch(`${s.url}/v1/secrets/app/served`, { headers: auth });
  assert.equal(read.status, 200);
  assert.equal(((await read.json()) as { value: string }).value, "served-value");
  assert.equal((await fetch(`${s.url}/v1/secrets/app/served`)).status, 401, "no token, no read");

  // The console's files, embedded in the binary.
  const page = await fetch(`${s.url}/ui/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<html/i);
  const script = /src="([^"]+\.js)"/.exec(html)?.[1];
  assert.ok(script !== undefined, "the page names its script");
  const js = await fetch(new URL(script, `${s.url}/ui/`));
  assert.equal(js.status, 200);
  assert.match(js.headers.get("content-type") ?? "", /javascript/);
  // The API docs' page and swagger-ui's own files, embedded too.
  const docs = await fetch(`${s.url}/docs/`);
  assert.equal(docs.status, 200);
  assert.match(await docs.text(), /swagger-ui-bundle\.js/);
  for (const [file, type] of [["swagger-ui-bundle.js", /javascript/], ["swagger-ui.css", /css/], ["favicon-32x32.png", /png/]] as const) {
    const r = await fetch(`${s.url}/docs/static/${file}`);
    assert.equal(r.status, 200, file);
    assert.match(r.headers.get("content-type") ?? "", type, file);
    assert.ok((await r.arrayBuffer()).byteLength > 0, file);
  }
  assert.equal((await fetch(`${s.url}/docs/static/..%2f..%2fpackage.json`)).status, 404);
  const initializer = await fetch(`${s.url}/docs/static/swagger-initializer.js`);
  assert.equal(initializer.status, 200, "the logo (read from the package folder outside the binary) is embedded");
  assert.equal((await fetch(`${s.url}/docs/json`)).status, 200);

  assert.equal(await s.stop(), 0, "SIGTERM stops it cleanly");
}

test("serve on SQLite from the binary: an authenticated read, the console and the API docs from embedded files", async (t) => {
  await serveAndRead(t, "roles:\n  app: [ { path: \"app/**\", capabilities: [read, list] } ]\n");
});

test("serve on PostgreSQL from the binary: an authenticated read", async (t) => {
  const url = await freshDatabase(t);
  await serveAndRead(t, `database: ${JSON.stringify(url)}\nroles:\n  app: [ { path: "app/**", capabilities: [read, list] } ]\n`);
});
