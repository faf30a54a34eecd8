import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { coffer, serveAppServer, serveCli, teamProjectYaml } from "./run-cli.ts";

async function api(url: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as any };
}

test("server init makes a private data dir and prints the root token once, as the last stdout line", (t) => {
  const home = tempDir(t);
  const data = join(home, "srv");
  const r = coffer(home, ["server", "init", "--data", data], { umask: "000" });
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines.at(-1)!, /^cof_[A-Za-z0-9_-]{43}$/);
  assert.match(r.err, /root token \(shown once\)/);
  assert.equal(statSync(data).mode & 0o777, 0o700);
  assert.equal(statSync(join(data, "master.key")).mode & 0o777, 0o600);
  assert.equal(statSync(join(data, "coffer.db")).mode & 0o777, 0o600);
  const again = coffer(home, ["server", "init", "--data", data]);
  assert.equal(again.code, 4, "a second init refuses to overwrite");
  assert.match(again.err, /already exists/);
});

test("coffer serve: a real server the CLI's `run` reads through the server provider; SIGTERM stops it cleanly", async (t) => {
  const home = tempDir(t);
  const s = await serveAppServer(t, home);
  const root = s.root;
  assert.equal((await api(s.url, "PUT", "/v1/secrets/app/db/password", root, { value: "from-the-server" })).status, 200);
  const token = (await api(s.url, "POST", "/v1/tokens", root, { name: "laptop", roles: ["app"] })).json.token as string;

  const project = join(home, "project");
  coffer(home, ["init", "--name", "dev"]);
  writeFileSync(join(home, ".coffer.yml"), teamProjectYaml(s.url));
  void project;
  const run = coffer(home, ["run", "--config", join(home, ".coffer.yml"), "--", "sh", "-c", 'test "$DB_PASSWORD" = from-the-server && echo matched'], {
    env: { COFFER_TOKEN: token },
  });
  assert.equal(run.code, 0, run.err);
  assert.equal(run.out.trim(), "matched");

  // coffer login saves the token (0600); run then needs no COFFER_TOKEN
  const login = coffer(home, ["login", s.url, "--token-stdin"], { input: `${token}\n` });
  assert.equal(login.code, 0, login.err);
  assert.match(login.err, /logged in to .* as token:[0-9a-f]{16}/);
  assert.ok(!login.err.includes(token) && !login.out.includes(token));
  const saved = coffer(home, ["run", "--config", join(home, ".coffer.yml"), "--", "sh", "-c", 'test "$DB_PASSWORD" = from-the-server']);
  assert.equal(saved.code, 0, saved.err);

  const denied = coffer(home, ["run", "--config", join(home, ".coffer.yml"), "--", "true"], { env: { COFFER_TOKEN: "cof_" + "x".repeat(43) } });
  assert.notEqual(denied.code, 0);
  assert.match(denied.err, /not valid|E_UNAUTHENTICATED|401|log in/i);

  s.child.kill("SIGHUP");
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await fetch(`${s.url}/v1/sys/health`)).status, 200, "SIGHUP without tls: leaves the server running");
  s.child.kill("SIGTERM");
  assert.equal(await s.exited, 0);
  assert.match(s.stderr(), /stopped/);
  assert.ok(!s.stderr().includes("from-the-server") && !s.stderr().includes(token) && !s.stderr().includes(root), "the log holds no value or token");
});

test("the production guard refuses devLogin and plain HTTP on a public address; a default JWT secret is refused in any mode", (t) => {
  const home = tempDir(t);
  const data = join(home, "srv");
  assert.equal(coffer(home, ["server", "init", "--data", data]).code, 0);
  const weak = join(home, "weak.yml");
  writeFileSync(weak, `jwt: { secret: dev-secret-change-me, issuer: https://idp.example, audience: coffer }\n`);
  const r = coffer(home, ["serve", "--data", data, "--config", weak, "--listen", "127.0.0.1:0"]);
  assert.equal(r.code, 7, r.err);
  assert.match(r.err, /jwt\.secret is a known default/);
  assert.match(r.err, /openssl rand -base64 48/);
  const dev = join(home, "dev.yml");
  writeFileSync(dev, "devLogin: true\n");
  const d = coffer(home, ["serve", "--data", data, "--config", dev, "--listen", "127.0.0.1:0"], { env: { COFFER_PRODUCTION: "1" } });
  assert.equal(d.code, 7, d.err);
  assert.match(d.err, /refusing to start in production/);
  assert.match(d.err, /devLogin/);
  const open = coffer(home, ["serve", "--data", data, "--listen", "0.0.0.0:0", "--production"]);
  assert.equal(open.code, 7);
  assert.match(open.err, /behindProxy|TLS|tls/);
  const proxied = join(home, "proxied.yml");
  writeFileSync(proxied, "behindProxy: true\n");
  const p = coffer(home, ["serve", "--data", data, "--config", proxied, "--listen", "0.0.0.0:0", "--production"]);
  assert.equal(p.code, 7, p.err);
  assert.match(p.err, /listen on 127\.0\.0\.1 with the TLS-terminating proxy on the same host/);
});

test("COFFER_ENV=prod without --production refuses to start and names the switch", (t) => {
  const home = tempDir(t);
  const data = join(home, "srv");
  assert.equal(coffer(home, ["server", "init", "--data", data]).code, 0);
  for (const spelling of ["prod", "Production", "PROD"]) {
    const r = coffer(home, ["serve", "--data", data, "--listen", "127.0.0.1:0"], { env: { COFFER_ENV: spelling } });
    assert.equal(r.code, 7, r.err);
    assert.match(r.err, new RegExp(`COFFER_ENV=${spelling} no longer turns on the server's production checks`));
    assert.match(r.err, /COFFER_PRODUCTION=1, or pass --production/);
  }
});

test("coffer serve on a port in use says which port and what to do, not internal error", async (t) => {
  const home = tempDir(t);
  const data = join(home, "srv");
  assert.equal(coffer(home, ["server", "init", "--data", data]).code, 0);
  const blocker = createServer();
  await new Promise<void>((done) => blocker.listen(0, "127.0.0.1", done));
  t.after(() => blocker.close());
  const port = (blocker.address() as AddressInfo).port;
  const r = coffer(home, ["serve", "--data", data, "--listen", `127.0.0.1:${port}`]);
  assert.equal(r.code, 9, r.err);
  assert.match(r.err, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use: stop the other process or choose another address with --listen`));
  assert.doesNotMatch(r.err, /internal error|report it/);
});

test("coffer serve with a missing data dir says to run server init, not internal error", (t) => {
  const home = tempDir(t);
  const data = join(home, "nowhere");
  const r = coffer(home, ["serve", "--data", data, "--listen", "127.0.0.1:0"]);
  assert.equal(r.code, 8, r.err);
  assert.match(r.err, new RegExp(`no data dir at ${data.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: run \`coffer server init --data `));
  assert.doesNotMatch(r.err, /internal error|report it/);
});

test("coffer serve prints the address it is actually bound to", async (t) => {
  const home = tempDir(t);
  const s = await serveAppServer(t, home);
  assert.match(s.url, /^http:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
  assert.equal((await fetch(`${s.url}/v1/sys/health`)).status, 200);
});

test("coffer server root-token prints a new root token once as the last stdout line and revokes the old one", async (t) => {
  const home = tempDir(t);
  const data = join(home, "srv");
  const init = coffer(home, ["server", "init", "--data", data]);
  assert.equal(init.code, 0, init.err);
  const oldRoot = init.out.trimEnd().split("\n").at(-1)!;
  const r = coffer(home, ["server", "root-token", "--data", data]);
  assert.equal(r.code, 0, r.err);
  const newRoot = r.out.trimEnd().split("\n").at(-1)!;
  assert.match(newRoot, /^cof_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(newRoot, oldRoot);
  assert.match(r.err, /revoked the old root token [0-9a-f]{16}; the token \(shown once\) follows/);
  assert.ok(!r.err.includes(newRoot), "the token is on stdout only");
  const s = await serveCli(t, home, ["--data", data]);
  assert.equal((await api(s.url, "GET", "/v1/auth/self", oldRoot)).status, 401);
  assert.equal((await api(s.url, "GET", "/v1/auth/self", newRoot)).status, 200);
  const missing = coffer(home, ["server", "root-token", "--data", join(home, "nowhere")]);
  assert.equal(missing.code, 8, missing.err);
  assert.match(missing.err, /no data dir at .*: run `coffer server init --data /);
});
