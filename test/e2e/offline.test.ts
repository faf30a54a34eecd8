import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { coffer, serveAppServer, teamProjectYaml, putSecret } from "./run-cli.ts";

const VALUE = "db-pass-OFFLINE-7c1d9e";

test("coffer run works through a server outage: a stale warning without --offline, no request with --offline; the cache file holds no value", async (t) => {
  const home = tempDir(t);
  const cache = join(home, "xdg-cache");
  const env = { XDG_CACHE_HOME: cache };
  const s = await serveAppServer(t, home);
  await putSecret(s.url, s.root, "app/db/password", VALUE);
  writeFileSync(join(home, ".coffer.yml"), teamProjectYaml(s.url));
  const project = { ...env, COFFER_TOKEN: s.root };
  const show = ["run", "--config", join(home, ".coffer.yml"), "--", "sh", "-c", 'printf "%s" "$DB_PASSWORD"'];

  // --offline before any read: nothing cached, a clear error, the command not started.
  const cold = coffer(home, [show[0]!, "--offline", ...show.slice(1)], { env: project });
  assert.notEqual(cold.code, 0);
  assert.match(cold.err, /offline, and no cached value of app\/db\/password/);

  const online = coffer(home, show, { env: project });
  assert.equal(online.code, 0, online.err);
  assert.equal(online.out, VALUE);
  assert.equal(online.err, "");

  s.child.kill("SIGTERM");
  await s.exited;

  const outage = coffer(home, show, { env: project });
  assert.equal(outage.code, 0, outage.err);
  assert.equal(outage.out, VALUE);
  assert.match(outage.err, /coffer: warning: provider "team": app\/db\/password \(version 1\) served from the cache, stale since \d{4}-\d\d-\d\dT[^ ]+ \(up to 1d\): .*cannot reach it/);

  const offline = coffer(home, [show[0]!, "--offline", ...show.slice(1)], { env: project });
  assert.equal(offline.code, 0, offline.err);
  assert.equal(offline.out, VALUE);

  // Another token (another user of the same machine account) gets nothing from this cache.
  const other = coffer(home, [show[0]!, "--offline", ...show.slice(1)], { env: { ...env, COFFER_TOKEN: "cof_someone_else_entirely" } });
  assert.notEqual(other.code, 0);
  assert.ok(!other.out.includes(VALUE));

  // On disk: encrypted to the cache key file (this HOME has no identity); no value, no name, no token.
  const files = readdirSync(join(cache, "coffer"), { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
  assert.ok(files.some((f) => f.endsWith(".age")));
  for (const f of files) {
    const bytes = readFileSync(f);
    for (const needle of [VALUE, Buffer.from(VALUE).toString("base64"), "app/db/password", s.root]) assert.equal(bytes.indexOf(needle), -1, f);
  }
  for (const r of [cold, online, outage, offline, other]) assert.ok(!r.err.includes(VALUE) && !r.err.includes(s.root));
});
