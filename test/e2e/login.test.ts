import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { startFakeCofferServer } from "../providers/fake-coffer-server.ts";
import { CLI, onTerminal, userEnv, type RunResult } from "./run-cli.ts";

const TOKENS = (home: string) => join(home, ".config", "coffer", "tokens.json");

// run-cli's coffer() blocks on spawnSync, which would also block the fake server in this
// process; this runs the CLI asynchronously instead.
function cofferAsync(home: string, args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: userEnv(home, options.env) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code: code ?? 128, stdout, out: stdout.toString("utf8"), err: Buffer.concat(err).toString("utf8") });
    });
    child.stdin.end(options.input ?? "");
  });
}

test("login --token-stdin checks the token, saves it 0600, and the server provider's token file has it; logout removes it", async (t) => {
  const home = tempDir(t);
  const server = await startFakeCofferServer({ roles: ["reader", "writer"] });
  t.after(() => server.close());

  const login = await cofferAsync(home, ["login", `${server.url}/`, "--token-stdin"], { input: `${server.token}\n` });
  assert.equal(login.code, 0, login.err);
  assert.equal(login.out, "");
  assert.equal(login.err, `logged in to ${server.url} as ${server.subject} (roles: reader, writer)\n`);
  assert.ok(!login.err.includes(server.token));
  const self = server.requests.find((r) => r.url === "/v1/auth/self");
  assert.equal(self?.headers.authorization, `Bearer ${server.token}`);
  assert.equal(statSync(TOKENS(home)).mode & 0o777, 0o600);
  assert.equal(statSync(join(home, ".config", "coffer")).mode & 0o777, 0o700);
  const doc = JSON.parse(readFileSync(TOKENS(home), "utf8"));
  assert.equal(doc.version, 1);
  assert.equal(doc.servers[server.url].token, server.token);

  const json = await cofferAsync(home, ["login", server.url, "--token-stdin", "--json"], { input: server.token });
  assert.equal(json.code, 0, json.err);
  assert.deepEqual(JSON.parse(json.out), { subject: server.subject, kind: "token", roles: ["reader", "writer"], expiresAt: null });

  const logout = await cofferAsync(home, ["logout", server.url]);
  assert.equal(logout.code, 0, logout.err);
  assert.match(logout.err, new RegExp(`^logged out of ${server.url} \\(its token was removed from ${TOKENS(home)}\\)\n$`));
  assert.deepEqual(JSON.parse(readFileSync(TOKENS(home), "utf8")).servers, {});
  const again = await cofferAsync(home, ["logout", server.url]);
  assert.equal(again.code, 0);
  assert.equal(again.err, `no token was saved for ${server.url}; nothing to do\n`);
});

test("login with a bad token: exit 5, one clear line, nothing saved, the token not echoed", async (t) => {
  const home = tempDir(t);
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  const bad = `cof_${"B".repeat(43)}`;
  const r = await cofferAsync(home, ["login", server.url, "--token-stdin"], { input: bad });
  assert.equal(r.code, 5, r.err);
  assert.equal(r.out, "");
  assert.match(r.err, new RegExp(`^coffer: server ${server.url}: the token is missing, invalid, expired or revoked \\(.*\\); nothing was saved\n$`));
  assert.equal(r.err.split("\n").length, 2, "one line");
  assert.ok(!r.err.includes(bad));
  assert.equal(existsSync(TOKENS(home)), false);
});

test("login reads COFFER_TOKEN when set; usage errors are exit 2 and 7", async (t) => {
  const home = tempDir(t);
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  const r = await cofferAsync(home, ["login", server.url], { env: { COFFER_TOKEN: server.token } });
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(readFileSync(TOKENS(home), "utf8")).servers[server.url].token, server.token);
  assert.equal((await cofferAsync(home, ["login"])).code, 2);
  const creds = await cofferAsync(home, ["login", "https://u:hunter2@coffer.example.com", "--token-stdin"], { input: "x" });
  assert.equal(creds.code, 7);
  assert.ok(!creds.err.includes("hunter2"));
  const empty = await cofferAsync(home, ["login", server.url, "--token-stdin"], { input: "\n" });
  assert.equal(empty.code, 7);
  assert.match(empty.err, /the token is empty; nothing was saved/);
});

test("login asks for the token on a terminal without echo", async (t) => {
  const home = tempDir(t);
  const server = await startFakeCofferServer();
  t.after(() => server.close());
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} login ${server.url}`;
  const r = await onTerminal(home, cmd, [[/API token for http:\/\/127\.0\.0\.1:\d+: /, `${server.token}\r`]]);
  assert.equal(r.code, 0, r.screen);
  assert.ok(!r.screen.includes(server.token), "the token is not echoed");
  assert.match(r.screen, /logged in to http:\/\/127\.0\.0\.1:\d+ as token:/);
  assert.equal(statSync(TOKENS(home)).mode & 0o777, 0o600);
});

test("login and logout --help show an example", async (t) => {
  const home = tempDir(t);
  for (const cmd of ["login", "logout"]) {
    const r = await cofferAsync(home, [cmd, "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`Examples:\n  coffer ${cmd} https://coffer.example.com`));
  }
});

test("login --ca --cert --key reaches a mutual-TLS server with a private CA, and run reads through the saved settings", async (t) => {
  const { chmodSync } = await import("node:fs");
  const { makeCa, makeCert } = await import("../server/certs.ts");
  const { parseServerConfig } = await import("../../src/server/config.ts");
  const { initServer, startServer } = await import("../../src/server/server.ts");
  const { tlsFetch } = await import("../../src/client/http.ts");
  const { teamProjectYaml } = await import("./run-cli.ts");
  const home = tempDir(t);
  const pki = tempDir(t);
  const ca = makeCa(pki, "coffer-private-ca");
  const serverCert = makeCert(pki, ca, { cn: "coffer-server", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  const me = makeCert(pki, ca, { cn: "laptop", client: true });
  chmodSync(ca.cert, 0o644); // certificates are public; only the key must be private
  chmodSync(me.cert, 0o644);
  const config = parseServerConfig(
    `roles:\n  app: [ { path: "app/**", capabilities: [read, list] } ]\ntls: { cert: ${serverCert.cert}, key: ${serverCert.key}, clientCa: ${ca.cert} }\n`,
    "mtls.yml", {}, { listen: "127.0.0.1:0" },
  );
  const data = join(pki, "data");
  const { rootToken } = await initServer(data, config);
  const s = await startServer({ dataDir: data, config, logger: false });
  t.after(() => s.close());
  const asMe = tlsFetch({ ca: readFileSync(ca.cert), cert: readFileSync(me.cert), key: readFileSync(me.key) });
  const put = await asMe(`${s.url}/v1/secrets/app/db/password`, {
    method: "PUT", headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ value: "over-mutual-tls" }),
  });
  assert.equal(put.status, 200, await put.text());
  const minted = await asMe(`${s.url}/v1/tokens`, {
    method: "POST", headers: { authorization: `Bearer ${rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ name: "laptop", roles: ["app"] }),
  });
  const token = ((await minted.json()) as { token: string }).token;

  // Without the CA and certificate the handshake fails, and nothing is saved.
  const bare = await cofferAsync(home, ["login", s.url, "--token-stdin"], { input: token });
  assert.notEqual(bare.code, 0);
  assert.match(bare.err, /cannot reach it: .*coffer login .* --ca FILE/);
  assert.equal(existsSync(TOKENS(home)), false);

  // A key others can read is refused before anything is sent.
  chmodSync(me.key, 0o644);
  const open = await cofferAsync(home, ["login", s.url, "--token-stdin", "--ca", ca.cert, "--cert", me.cert, "--key", me.key], { input: token });
  assert.equal(open.code, 5, open.err);
  assert.match(open.err, /client key file .* is accessible by group or others/);
  chmodSync(me.key, 0o600);

  const login = await cofferAsync(home, ["login", s.url, "--token-stdin", "--ca", ca.cert, "--cert", me.cert, "--key", me.key], { input: token });
  assert.equal(login.code, 0, login.err);
  assert.match(login.err, /logged in to .* as token:[0-9a-f]{16}/);
  const saved = JSON.parse(readFileSync(TOKENS(home), "utf8")).servers[s.url];
  assert.deepEqual(saved.tls, { ca: ca.cert, cert: me.cert, key: me.key });
  assert.equal(statSync(TOKENS(home)).mode & 0o777, 0o600);

  assert.equal((await cofferAsync(home, ["init", "--name", "dev"])).code, 0);
  const { writeFileSync } = await import("node:fs");
  writeFileSync(join(home, ".coffer.yml"), teamProjectYaml(s.url));
  const run = await cofferAsync(home, ["run", "--config", join(home, ".coffer.yml"), "--", "sh", "-c", 'test "$DB_PASSWORD" = over-mutual-tls && echo matched']);
  assert.equal(run.code, 0, run.err);
  assert.equal(run.out.trim(), "matched");
});

test("login never sends a token over plain http to a remote host", async (t) => {
  const home = tempDir(t);
  const token = `cof_${"C".repeat(43)}`;
  // 192.0.2.1 is TEST-NET-1: nothing answers there, and the refusal comes before any request.
  const r = await cofferAsync(home, ["login", "http://192.0.2.1:8200", "--token-stdin"], { input: token });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^coffer: http:\/\/192\.0\.2\.1:8200: coffer would send its token over plain http:\/\/ to 192\.0\.2\.1:8200, .*use https:\/\//);
  assert.equal(r.err.split("\n").length, 2, "one line");
  assert.ok(!r.err.includes(token));
  assert.equal(existsSync(TOKENS(home)), false);
});
