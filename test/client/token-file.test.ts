import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadToken, normaliseServerUrl, removeToken, saveToken, tokenFilePath } from "../../src/client/token-file.ts";
import { tempDir } from "../helpers.ts";

const TOKEN = `cof_${"A1b2C3d4_-".repeat(4)}xyz`;

test("token file: save, load, replace and remove, keyed by the normalised URL", (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: join(home, "c") };
  assert.equal(loadToken("https://coffer.example.com", env), undefined, "no file yet: no token");
  const path = saveToken("https://Coffer.Example.com:443/", TOKEN, env);
  assert.equal(path, join(home, "c", "tokens.json"));
  assert.equal(loadToken("https://coffer.example.com", env), TOKEN);
  assert.equal(loadToken("https://coffer.example.com/team", env), undefined);
  saveToken("https://coffer.example.com/team/", "cof_team", env);
  saveToken("https://coffer.example.com", "cof_replaced", env);
  const doc = JSON.parse(readFileSync(path, "utf8"));
  assert.equal(doc.version, 1);
  assert.deepEqual(Object.keys(doc.servers), ["https://coffer.example.com", "https://coffer.example.com/team"]);
  assert.equal(doc.servers["https://coffer.example.com"].token, "cof_replaced");
  assert.ok(!Number.isNaN(Date.parse(doc.servers["https://coffer.example.com"].savedAt)));
  assert.equal(removeToken("https://coffer.example.com/", env), true);
  assert.equal(removeToken("https://coffer.example.com/", env), false);
  assert.equal(loadToken("https://coffer.example.com", env), undefined);
  assert.equal(loadToken("https://coffer.example.com/team", env), "cof_team");
});

test("token file: 0600 in a 0700 dir under umask 0", (t) => {
  const home = tempDir(t);
  const env = { HOME: home };
  const old = process.umask(0);
  try {
    const path = saveToken("http://127.0.0.1:8443", TOKEN, env);
    assert.equal(path, join(home, ".config", "coffer", "tokens.json"));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, ".config", "coffer")).mode & 0o777, 0o700);
    assert.equal(statSync(join(home, ".config")).mode & 0o777, 0o700);
    saveToken("http://127.0.0.1:8443", "cof_again", env);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    process.umask(old);
  }
});

test("token file: refuses a group/world-readable file with the chmod to run", (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  const path = saveToken("https://coffer.example.com", TOKEN, env);
  chmodSync(path, 0o644);
  const expected = { code: "E_PERMISSIONS", message: new RegExp(`token file ${path} is accessible by group or others \\(mode 0644\\); run \`chmod 600 ${path}\``) };
  assert.throws(() => loadToken("https://coffer.example.com", env), expected);
  assert.throws(() => saveToken("https://coffer.example.com", TOKEN, env), expected);
  assert.throws(() => removeToken("https://coffer.example.com", env), expected);
});

test("token file: a malformed file is E_CONFIG naming it, without its contents", (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  const path = join(home, "tokens.json");
  for (const [text, why] of [
    ["{not json", /not JSON/],
    [JSON.stringify({ version: 2, servers: {} }), /not \{"version": 1/],
    [JSON.stringify({ version: 1 }), /no "servers" object/],
    [JSON.stringify({ version: 1, servers: { "ftp://x": { token: TOKEN, savedAt: "t" } } }), /a key is not a server URL/],
    [JSON.stringify({ version: 1, servers: { "https://x": { token: TOKEN } } }), /the entry for https:\/\/x is not/],
  ] as const) {
    writeFileSync(path, text, { mode: 0o600 });
    assert.throws(() => loadToken("https://x", env), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_CONFIG");
      assert.match(err.message, why);
      assert.match(err.message, /remove it and run `coffer login URL` again/);
      assert.ok(!err.message.includes(TOKEN));
      return true;
    });
  }
});

test("token file: __proto__ keys do not pollute", (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  writeFileSync(join(home, "tokens.json"), '{"version":1,"servers":{"__proto__":{"token":"x","savedAt":"t"}}}', { mode: 0o600 });
  assert.throws(() => loadToken("https://x", env), { code: "E_CONFIG", message: /a key is not a server URL/ });
  assert.equal(({} as Record<string, unknown>).token, undefined);
});

test("token file: the path follows COFFER_HOME, then XDG_CONFIG_HOME, then HOME; relative values are ignored", () => {
  assert.equal(tokenFilePath({ COFFER_HOME: "/a", XDG_CONFIG_HOME: "/b", HOME: "/h" }), "/a/tokens.json");
  assert.equal(tokenFilePath({ XDG_CONFIG_HOME: "/b", HOME: "/h" }), "/b/coffer/tokens.json");
  assert.equal(tokenFilePath({ COFFER_HOME: "", XDG_CONFIG_HOME: "rel", HOME: "/h" }), "/h/.config/coffer/tokens.json");
});

test("token file: a token with spaces or control characters is refused and not echoed", (t) => {
  const home = tempDir(t);
  for (const bad of ["", "cof_a b", "cof_a\nb"]) {
    assert.throws(() => saveToken("https://x", bad, { COFFER_HOME: home }), (err: Error & { code?: string }) =>
      err.code === "E_INVALID_VALUE" && (bad === "" || !err.message.includes(bad)));
  }
});

test("normaliseServerUrl: canonical form; credentials, query, fragment and other schemes refused", () => {
  assert.equal(normaliseServerUrl("https://Coffer.Example.COM:443/"), "https://coffer.example.com");
  assert.equal(normaliseServerUrl("http://127.0.0.1:80"), "http://127.0.0.1");
  assert.equal(normaliseServerUrl("http://localhost:8443/team//"), "http://localhost:8443/team");
  assert.equal(normaliseServerUrl("https://[::1]:9000/a/b"), "https://[::1]:9000/a/b");
  for (const url of ["ftp://x", "file:///etc/passwd", "x", "", "https://x/?", "https://x/?a=1", "https://x/#frag", "javascript:alert(1)"]) {
    assert.throws(() => normaliseServerUrl(url), { code: "E_INVALID_VALUE" }, url);
  }
  for (const url of ["https://user:hunter2@x", "https://hunter2@x", "https://u:hunter2@ bad"]) {
    assert.throws(() => normaliseServerUrl(url), (err: Error & { code?: string }) => err.code === "E_INVALID_VALUE" && !err.message.includes("hunter2"), url);
  }
});

test("token file: TLS file paths are saved per URL, a login without them saves none, and a relative or unknown entry is refused", async (t) => {
  const { loadServerTls } = await import("../../src/client/token-file.ts");
  const home = tempDir(t);
  const env = { COFFER_HOME: home };
  const tls = { ca: "/etc/ssl/private-ca.crt", cert: "/home/me/me.crt", key: "/home/me/me.key" };
  saveToken("https://coffer.internal:8200/", TOKEN, env, tls);
  assert.deepEqual(loadServerTls("https://coffer.internal:8200", env), tls);
  assert.equal(loadServerTls("https://other.internal", env), undefined);
  saveToken("https://coffer.internal:8200", TOKEN, env);
  assert.equal(loadServerTls("https://coffer.internal:8200", env), undefined, "a login without --ca/--cert/--key keeps none");
  const path = join(home, "tokens.json");
  for (const bad of [{ ca: "relative/ca.crt" }, { key: 42 }, { ca: "/x", command: "/bin/sh" }, "ca.crt"]) {
    writeFileSync(path, JSON.stringify({ version: 1, servers: { "https://x": { token: TOKEN, savedAt: "t", tls: bad } } }), { mode: 0o600 });
    assert.throws(() => loadServerTls("https://x", env), /the tls of https:\/\/x is not/);
  }
});
