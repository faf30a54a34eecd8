/**
 * `coffer rm NAME --version N[,M…] [--purge]`, `coffer undelete` and `coffer history`'s marks
 * (issue 16), on the local store and with `--server` against the real server: the built CLI as a
 * subprocess in a temp HOME. Exit codes are errors.ts's; no value reaches stderr.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";
import { startTestServer } from "../server/harness.ts";
import { coffer, cofferAsync, cofferOk, type RunResult } from "./run-cli.ts";

const V1 = "versions-cli-one-Rt55";
const V2 = "versions-cli-two-Bn62";

type Run = (args: string[], input?: string) => Promise<RunResult>;

// The same tour, locally or on a server: delete, refused read, history mark, undelete, destroy.
async function tour(run: Run, suffix: string[]): Promise<void> {
  const go = (args: string[], input?: string) => run([...args, ...suffix], input);
  assert.equal((await go(["set", "app/db"], V1)).code, 0);
  assert.equal((await go(["set", "app/db"], V2)).code, 0);

  const del = await go(["rm", "app/db", "--version", "1"]);
  assert.equal(del.code, 0, del.err);
  assert.match(del.err, /deleted v1 of app\/db \(`coffer undelete app\/db --version 1` restores it\)/);
  const refused = await go(["get", "app/db", "--version", "1"]);
  assert.equal(refused.code, ERROR_CODES.E_NOT_FOUND.exit);
  assert.match(refused.err, /version 1 of app\/db was deleted; `coffer undelete app\/db --version 1` restores it/);
  assert.equal((await go(["get", "app/db"])).out, V2);
  const history = await go(["history", "app/db"]);
  assert.match(history.out, /^1 .* deleted \S+\n2 .* current\n$/m);
  const hjson = JSON.parse((await go(["history", "app/db", "--json"])).out);
  assert.deepEqual(hjson.map((v: { version: number; deletedAt: string | null; destroyed: boolean }) => [v.version, v.deletedAt !== null, v.destroyed]), [[1, true, false], [2, false, false]]);

  const undel = await go(["undelete", "app/db", "--version", "1", "--json"]);
  assert.equal(undel.code, 0, undel.err);
  assert.deepEqual(JSON.parse(undel.out), { name: "app/db", versions: [{ version: 1, deletedAt: null, destroyed: false }] });
  assert.equal((await go(["get", "app/db", "--version", "1"])).out, V1);

  // The current version deleted: a plain get refuses until it is undeleted.
  assert.equal((await go(["rm", "app/db", "--version", "2"])).code, 0);
  const plain = await go(["get", "app/db"]);
  assert.equal(plain.code, ERROR_CODES.E_NOT_FOUND.exit);
  assert.match(plain.err, /version 2 of app\/db was deleted/);
  assert.equal((await go(["undelete", "app/db", "--version", "2"])).code, 0);

  // Destroy asks first; with no terminal and no --yes nothing happens.
  const asked = await go(["rm", "app/db", "--version", "1", "--purge"]);
  assert.equal(asked.code, ERROR_CODES.E_CANCELLED.exit, asked.err);
  assert.equal((await go(["get", "app/db", "--version", "1"])).out, V1);
  const destroy = await go(["rm", "app/db", "--version", "1", "--purge", "--yes", "--json"]);
  assert.equal(destroy.code, 0, destroy.err);
  assert.deepEqual(JSON.parse(destroy.out), { name: "app/db", versions: [{ version: 1, deletedAt: null, destroyed: true }] });
  const gone = await go(["get", "app/db", "--version", "1"]);
  assert.match(gone.err, /version 1 of app\/db was destroyed; its value is gone for good/);
  const back = await go(["undelete", "app/db", "--version", "1"]);
  assert.equal(back.code, 0, back.err);
  assert.match(back.err, /v1 of app\/db was destroyed: its value is gone for good and cannot be restored/);
  assert.match((await go(["history", "app/db"])).out, /^1 .* destroyed\n/m);
  assert.match((await go(["rollback", "app/db", "--to", "1"])).err, /destroyed/);

  const missing = await go(["rm", "app/db", "--version", "1,9"]);
  assert.equal(missing.code, ERROR_CODES.E_INVALID_VALUE.exit);
  assert.match(missing.err, /has no version 9/);
  assert.equal((await go(["rm", "app/db", "--version", "x"])).code, ERROR_CODES.E_INVALID_VALUE.exit);
  assert.equal((await go(["undelete", "app/db"])).code, ERROR_CODES.E_USAGE.exit);
  assert.equal((await go(["rm", "app/none", "--version", "1"])).code, ERROR_CODES.E_NOT_FOUND.exit);

  for (const r of [del, refused, undel, plain, destroy, gone, back]) for (const v of [V1, V2]) assert.ok(!r.err.includes(v), "no value on stderr");
}

test("cli: rm --version deletes and (with --purge) destroys versions of the local store; undelete; history marks them", async (t) => {
  const home = tempDir(t);
  cofferOk(home, ["init", "--name", "alice"]);
  await tour(async (args, input) => coffer(home, args, { input: input ?? "" }), []);
  const audit = JSON.parse(cofferOk(home, ["audit", "--json"])).map((r: { action: string }) => r.action);
  for (const action of ["delete-version", "undelete", "destroy"]) assert.ok(audit.includes(action), `${action} audited`);
  const help = cofferOk(home, ["undelete", "--help"]);
  assert.match(help, /coffer undelete db\/prod\/password --version 3/);
  assert.match(cofferOk(home, ["rm", "--help"]), /coffer rm db\/prod\/password --version 1,2 --purge --yes/);
});

test("cli: rm --version, rm --version --purge and undelete with --server; a token without delete is refused", async (t) => {
  const s = await startTestServer(t, `
roles:
  dev: [ { path: "app/**", capabilities: [read, list, write, delete] } ]
  writer: [ { path: "app/**", capabilities: [read, list, write] } ]
`);
  const home = tempDir(t);
  const login = await cofferAsync(home, ["login", s.url], { env: { COFFER_TOKEN: await s.token(["dev"], "alice") } });
  assert.equal(login.code, 0, login.err);
  await tour((args, input) => cofferAsync(home, args, input === undefined ? {} : { input }), ["--server", s.url]);
  const log = await s.call("GET", "/v1/audit", { token: s.rootToken });
  const actions = log.json.records.map((r: { action: string }) => r.action);
  for (const action of ["secret.delete-version", "secret.undelete", "secret.destroy"]) assert.ok(actions.includes(action), `${action} audited`);
  for (const v of [V1, V2]) assert.ok(!JSON.stringify(log.json).includes(v));

  const writer = await cofferAsync(home, ["rm", "app/db", "--version", "2", "--server", s.url], { env: { COFFER_TOKEN: await s.token(["writer"], "bob") } });
  assert.equal(writer.code, ERROR_CODES.E_DENIED.exit, writer.err);
});
