/**
 * The PostgreSQL apply target (src/rotation/postgres.ts) against the test setup's PostgreSQL
 * (scram-sha-256 for host connections): a role made here changes password (the old one is refused,
 * the new one logs in), the verifier coffer computes is the one PostgreSQL computes for the same
 * password and salt, odd role names are quoted right, and failures say which step failed without
 * a password.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { join } from "node:path";
import pg from "pg";
import { postgresUrl, restartablePostgres, pgLogin } from "../services.ts";
import type { ApplyContext } from "../../src/rotation/apply.ts";
import { checkPostgresSettings, postgresTarget, scramSha256Verifier } from "../../src/rotation/postgres.ts";

const ADMIN_SECRET = "db/admin-url";

/** Runs `fn` on an admin connection. */
async function asAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: await postgresUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A role made for this test with LOGIN and `password`, dropped after it. */
async function makeRole(t: TestContext, password: string, base = "coffer_rot"): Promise<string> {
  const role = `${base}_${randomBytes(4).toString("hex")}`;
  await asAdmin((c) => c.query(`CREATE ROLE ${c.escapeIdentifier(role)} LOGIN PASSWORD ${c.escapeLiteral(password)}`));
  t.after(() => asAdmin((c) => c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(role)}`)));
  return role;
}

async function storedVerifier(role: string): Promise<string> {
  return asAdmin(async (c) => (await c.query<{ rolpassword: string }>("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role])).rows[0]!.rolpassword);
}

/** A context whose admin secret holds `adminUrl`; the buffers it handed out, to check they were zeroed. */
async function context(newValue: string, over: Partial<ApplyContext> & { adminUrl?: string } = {}): Promise<{ ctx: ApplyContext; handed: Buffer[] }> {
  const adminUrl = over.adminUrl ?? (await postgresUrl());
  const handed: Buffer[] = [];
  const ctx: ApplyContext = {
    name: "db/app-password",
    oldValue: undefined,
    newValue: Buffer.from(newValue),
    readSecret: async (name) => {
      assert.equal(name, ADMIN_SECRET);
      const b = Buffer.from(adminUrl);
      handed.push(b);
      return b;
    },
    signal: new AbortController().signal,
    ...over,
  };
  return { ctx, handed };
}

const newPassword = (): string => randomBytes(24).toString("base64url");

test("after apply the old password is refused and the new one logs in; PostgreSQL stores coffer's SCRAM verifier", async (t) => {
  const old = `old-${newPassword()}`;
  const role = await makeRole(t, old);
  assert.equal(await pgLogin(role, old), "ok", "the old password works before");
  const target = postgresTarget({ connection: ADMIN_SECRET, role });
  assert.equal(target.label, `postgres:${role}`);
  assert.equal(target.idempotent, true);
  const fresh = newPassword();
  const { ctx, handed } = await context(fresh);
  await target.apply(ctx);
  assert.equal(await pgLogin(role, old), "28P01", "the old password is refused (invalid_password)");
  assert.equal(await pgLogin(role, fresh), "ok");
  assert.match(await storedVerifier(role), /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  assert.ok(handed.length === 1 && handed[0]!.every((b) => b === 0), "the admin connection string was zeroed after use");
});

test("known answer: the verifier coffer computes equals the one PostgreSQL made for the same password and salt", async (t) => {
  const password = "correct horse battery staple";
  const role = await makeRole(t, password);
  const stored = await storedVerifier(role);
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored);
  assert.ok(m !== null, "the cluster stores SCRAM-SHA-256 verifiers");
  assert.equal(scramSha256Verifier(Buffer.from(password), Buffer.from(m[2]!, "base64"), Number(m[1])), stored);
  // And RFC 7677's example exchange (user "user", password "pencil"): the proof the client sent
  // hashes to our StoredKey, and our ServerKey signs what the server answered.
  const v = scramSha256Verifier(Buffer.from("pencil"), Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"), 4096);
  const [, keys] = v.split("$").slice(1);
  const [storedKey, serverKey] = keys!.split(":").map((k) => Buffer.from(k, "base64"));
  const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const authMessage = `n=user,r=rOprNGfwEbeRWgbNEkqO,r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=${nonce}`;
  const clientSignature = createHmac("sha256", storedKey!).update(authMessage).digest();
  const proof = Buffer.from("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "base64");
  const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSignature[i]!));
  assert.deepEqual(createHash("sha256").update(clientKey).digest(), storedKey);
  assert.equal(createHmac("sha256", serverKey!).update(authMessage).digest("base64"), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
});

test("a role name with a quote and a space is quoted right (no injection through the name)", async (t) => {
  const old = `old-${newPassword()}`;
  const role = await makeRole(t, old, `we"ird role'; DROP ROLE x; --`);
  const fresh = newPassword();
  await postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(fresh)).ctx);
  assert.equal(await pgLogin(role, fresh), "ok");
  assert.equal(await pgLogin(role, old), "28P01");
});

test("applying the same value twice is harmless: it still logs in", async (t) => {
  const role = await makeRole(t, `old-${newPassword()}`);
  const target = postgresTarget({ connection: ADMIN_SECRET, role });
  const fresh = newPassword();
  await target.apply((await context(fresh)).ctx);
  await target.apply((await context(fresh)).ctx);
  assert.equal(await pgLogin(role, fresh), "ok");
});

test("a failed admin connection is E_ROTATION naming the role and the step, without the admin's or the new password", async (t) => {
  const role = await makeRole(t, "old-password-1");
  const wrong = new URL(await postgresUrl());
  const adminPassword = decodeURIComponent(wrong.password);
  wrong.password = "Wr0ngAdminSecret";
  const fresh = newPassword();
  const err = await postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(fresh, { adminUrl: wrong.href })).ctx).then(
    () => assert.fail("it succeeded"),
    (e: unknown) => e as Error & { code: string },
  );
  assert.equal(err.code, "E_ROTATION");
  assert.match(err.message, new RegExp(`^postgres role "${role}": connect as admin failed: `));
  for (const s of ["Wr0ngAdminSecret", adminPassword, fresh]) assert.ok(!err.message.includes(s), "no password in the message");
  assert.equal(await pgLogin(role, "old-password-1"), "ok", "nothing changed");
});

test("an unreachable server is E_ROTATION at connect as admin", async () => {
  const u = new URL(await postgresUrl());
  u.port = "1";
  await assert.rejects(postgresTarget({ connection: ADMIN_SECRET, role: "nobody" }).apply((await context(newPassword(), { adminUrl: u.href })).ctx), {
    code: "E_ROTATION", message: /^postgres role "nobody": connect as admin failed: .*ECONNREFUSED/,
  });
});

test("an unknown role is E_ROTATION at alter role, with no password in the message", async () => {
  const role = `coffer_rot_gone_${randomBytes(4).toString("hex")}`;
  const fresh = newPassword();
  const err = await postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(fresh)).ctx).then(
    () => assert.fail("it succeeded"),
    (e: unknown) => e as Error & { code: string },
  );
  assert.equal(err.code, "E_ROTATION");
  assert.equal(err.message, `postgres role "${role}": alter role failed: role "${role}" does not exist`);
  assert.ok(!err.message.includes(decodeURIComponent(new URL(await postgresUrl()).password)));
});

test("a role that may not log in fails the test step, named as such", async (t) => {
  const role = await makeRole(t, "old-password-2");
  await asAdmin((c) => c.query(`ALTER ROLE ${c.escapeIdentifier(role)} NOLOGIN`));
  const fresh = newPassword();
  const err = await postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(fresh)).ctx).then(() => assert.fail("it succeeded"), (e: unknown) => e as Error);
  assert.match(err.message, new RegExp(`^postgres role "${role}": log in as role failed: .*not permitted to log in`));
  assert.ok(!err.message.includes(fresh));
});

test("a value that is not printable ASCII is refused before anything changes (PostgreSQL would SASLprep it)", async (t) => {
  const role = await makeRole(t, "old-password-3");
  for (const v of ["pässwörd-long-enough", "tab\there", ""]) {
    await assert.rejects(postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(v)).ctx), { code: "E_ROTATION", message: /not printable ASCII/ });
  }
  assert.equal(await pgLogin(role, "old-password-3"), "ok");
});

test("an admin secret that is not a postgres URL is refused without showing it", async () => {
  const err = await postgresTarget({ connection: ADMIN_SECRET, role: "r" }).apply((await context(newPassword(), { adminUrl: "host=db password=hunter2hunter2" })).ctx).then(
    () => assert.fail("it succeeded"),
    (e: unknown) => e as Error & { code: string },
  );
  assert.equal(err.code, "E_ROTATION");
  assert.ok(!err.message.includes("hunter2"));
});

test("an abort before the apply stops it with E_ROTATION, nothing changed", async (t) => {
  const role = await makeRole(t, "old-password-4");
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(newPassword(), { signal: ac.signal })).ctx), { code: "E_ROTATION", message: /server is stopping/ });
  assert.equal(await pgLogin(role, "old-password-4"), "ok");
});

test("an abort while the connection hangs (a server that never answers) ends the apply at once", async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const u = new URL(await postgresUrl());
  u.port = String((silent.address() as AddressInfo).port);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const t0 = Date.now();
  await assert.rejects(postgresTarget({ connection: ADMIN_SECRET, role: "r" }).apply((await context(newPassword(), { adminUrl: u.href, signal: ac.signal })).ctx), {
    code: "E_ROTATION", message: /^postgres role "r": connect as admin failed: the server is stopping$/,
  });
  assert.ok(Date.now() - t0 < 5_000, "it did not wait for the connect timeout");
});

test("the new password never reaches PostgreSQL's log, even with log_statement = all: only its verifier does", async (t) => {
  const { url, dataDir } = await restartablePostgres();
  const logFile = join(dataDir, "..", "postgres.log");
  // An admin of the test's own whose sessions log every statement.
  const admin = `coffer_rot_admin_${randomBytes(4).toString("hex")}`;
  const adminPassword = newPassword();
  const su = async (sql: (c: pg.Client) => string): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql(c));
    } finally {
      await c.end();
    }
  };
  await su((c) => `CREATE ROLE ${admin} SUPERUSER LOGIN PASSWORD ${c.escapeLiteral(adminPassword)}`);
  t.after(() => su(() => `DROP ROLE IF EXISTS ${admin}`));
  await su(() => `ALTER ROLE ${admin} SET log_statement = 'all'`);
  const role = `coffer_rot_${randomBytes(4).toString("hex")}`;
  await su((c) => `CREATE ROLE ${role} LOGIN PASSWORD ${c.escapeLiteral("old-password-5")}`);
  t.after(() => su(() => `DROP ROLE IF EXISTS ${role}`));
  const adminUrl = new URL(url);
  adminUrl.username = admin;
  adminUrl.password = encodeURIComponent(adminPassword);
  const fresh = newPassword();
  await postgresTarget({ connection: ADMIN_SECRET, role }).apply((await context(fresh, { adminUrl: adminUrl.href })).ctx);
  const log = readFileSync(logFile, "utf8");
  assert.match(log, new RegExp(`statement: ALTER ROLE "${role}" PASSWORD 'SCRAM-SHA-256\\$4096:`), "the statement was logged (with the verifier)");
  assert.ok(!log.includes(fresh), "the new password is not in the log");
});

test("settings are checked: the connection is a secret name, the role an identifier of at most 63 bytes", () => {
  assert.deepEqual(checkPostgresSettings({ connection: "db/admin", role: "app" }), { connection: "db/admin", role: "app" });
  assert.throws(() => postgresTarget({ connection: "../x", role: "app" }), { code: "E_INVALID_VALUE", message: /connection/ });
  assert.throws(() => postgresTarget({ connection: "db/admin", role: "" }), { code: "E_INVALID_VALUE" });
  assert.throws(() => postgresTarget({ connection: "db/admin", role: "r".repeat(64) }), { code: "E_INVALID_VALUE", message: /63 bytes/ });
  assert.throws(() => postgresTarget({ connection: "db/admin", role: "é".repeat(32) }), { code: "E_INVALID_VALUE", message: /63 bytes/ });
  assert.throws(() => postgresTarget({ connection: "db/admin", role: "a\0b" }), { code: "E_INVALID_VALUE" });
  assert.throws(() => checkPostgresSettings({ connection: "db/admin", role: "app", host: "x" }), { code: "E_INVALID_VALUE" });
});
