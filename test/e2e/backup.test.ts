import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { tempDir, walk } from "../helpers.ts";
import { CLI, coffer, onTerminal } from "./run-cli.ts";
import { asV1, splitV2 } from "../store/backup-parts.ts";
import { SCHEMA_VERSION } from "../../src/storage/sqlite-schema.ts";

const IDENTITY = (home: string) => join(home, ".config", "coffer", "identity");
const STORE = (home: string) => join(home, ".local", "share", "coffer", "store.db");

/** Every row of every table, as comparable JSON (blobs as hex), audit in seq order. */
function dump(path: string): Record<string, string[]> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    const out: Record<string, string[]> = {};
    for (const table of tables) {
      const rows = db.prepare(`SELECT * FROM "${table}"${table === "audit" ? " ORDER BY seq" : ""}`).all()
        .map((r) => JSON.stringify(r, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));
      out[table] = table === "audit" ? rows : rows.sort();
    }
    return out;
  } finally {
    db.close();
  }
}

/** A user with a store holding a few secrets; returns the values. */
function userWithSecrets(home: string): Record<string, string> {
  assert.equal(coffer(home, ["init", "--name", "alice"]).code, 0);
  const values: Record<string, string> = {
    "db/prod/password": `pw-${randomBytes(12).toString("hex")}`,
    "api/token": `tok-${randomBytes(12).toString("hex")}`,
  };
  assert.equal(coffer(home, ["set", "db/prod/password", "--description", "primary db"], { input: "first-version-value" }).code, 0);
  for (const [name, value] of Object.entries(values)) assert.equal(coffer(home, ["set", name], { input: value }).code, 0);
  return values;
}

/** A user with secrets, backed up to their own recipient in `outside`. */
function recipientBackup(home: string, outside: string): { recipient: string; file: string } {
  userWithSecrets(home);
  const recipient = execFileSync("age-keygen", ["-y", IDENTITY(home)], { encoding: "utf8" }).trim();
  const file = join(outside, "b.backup");
  assert.equal(coffer(home, ["backup", "--out", file, "--to", recipient]).code, 0);
  return { recipient, file };
}

function passFile(dir: string, name: string, pass: string): string {
  const p = join(dir, name);
  writeFileSync(p, `${pass}\n`, { mode: 0o600 });
  return p;
}

test("passphrase backup → restore into a fresh HOME reproduces the store; a wrong passphrase writes nothing", (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  const values = userWithSecrets(home);
  const pass = passFile(outside, "pass", "a long backup passphrase");
  const file = join(outside, "coffer.backup");

  const b = coffer(home, ["backup", "--out", file, "--passphrase-file", pass, "--json"]);
  assert.equal(b.code, 0, b.err);
  const result = JSON.parse(b.out);
  assert.equal(result.to, "passphrase");
  assert.equal(result.logN, 18);
  assert.equal(result.verified, "decrypted");
  assert.equal(result.identity, true);
  assert.equal(result.secrets, 2);
  assert.equal(result.versions, 3);
  assert.match(b.err, /scrypt 2\^18/);
  assert.match(b.err, /decrypting it again/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const bytes = readFileSync(file);
  assert.ok(bytes.toString("latin1").startsWith("-----BEGIN AGE ENCRYPTED FILE-----\n"));
  for (const v of [...Object.values(values), "first-version-value", "AGE-SECRET-KEY-1"]) {
    assert.equal(bytes.indexOf(v), -1, "no plaintext value or key in the backup file");
  }
  const original = dump(STORE(home));
  const originalList = JSON.parse(coffer(home, ["list", "--json"]).out);

  // A wrong passphrase: exit 6, nothing at all in the fresh HOME.
  const fresh = tempDir(t);
  const wrong = coffer(fresh, ["restore", file, "--passphrase-file", passFile(outside, "wrong", "not it")]);
  assert.equal(wrong.code, 6, wrong.err);
  assert.match(wrong.err, /coffer: cannot decrypt the backup .* \(wrong passphrase\?\)/);
  assert.deepEqual(readdirSync(fresh), []);

  const r = coffer(fresh, ["restore", file, "--passphrase-file", pass, "--json"]);
  assert.equal(r.code, 0, r.err);
  const restored = JSON.parse(r.out);
  assert.equal(restored.identityAction, "written");
  assert.equal(restored.replaced, false);
  assert.equal(restored.secrets, 2);
  assert.deepEqual(readFileSync(IDENTITY(fresh)), readFileSync(IDENTITY(home)), "the identity file comes back byte for byte");
  assert.equal(statSync(STORE(fresh)).mode & 0o777, 0o600);
  assert.equal(statSync(IDENTITY(fresh)).mode & 0o777, 0o600);

  // Every table equal; the audit chain is the original's (ending with its backup record) plus the restore.
  const copy = dump(STORE(fresh));
  assert.deepEqual(Object.keys(copy), Object.keys(original));
  assert.ok(Object.keys(copy).length >= 10, Object.keys(copy).join(","));
  for (const table of Object.keys(original)) {
    if (table === "audit") continue;
    assert.deepEqual(copy[table], original[table], table);
  }
  const n = original.audit!.length;
  assert.deepEqual(copy.audit!.slice(0, n), original.audit);
  assert.equal(copy.audit!.length, n + 1);
  assert.match(original.audit![n - 1]!, /"action":"backup"/);
  assert.match(copy.audit![n]!, /"action":"restore"/);

  assert.deepEqual(JSON.parse(coffer(fresh, ["list", "--json"]).out), originalList);
  for (const [name, value] of Object.entries(values)) assert.equal(coffer(fresh, ["get", name]).out, value);
  assert.equal(coffer(fresh, ["get", "db/prod/password", "--version", "1"]).out, "first-version-value");
  const verify = coffer(fresh, ["audit", "verify"]);
  assert.equal(verify.code, 0, verify.err);
});

test("recipient backup: the real age CLI decrypts it with the identity file coffer wrote; --no-identity restores with --identity", (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  const values = userWithSecrets(home);
  const recipient = execFileSync("age-keygen", ["-y", IDENTITY(home)], { encoding: "utf8" }).trim();
  const file = join(outside, "to-me.backup");
  const b = coffer(home, ["backup", "--out", file, "--to", recipient]);
  assert.equal(b.code, 0, b.err);
  assert.match(b.err, /checked: decrypted it again/);
  assert.match(b.err, new RegExp(`encrypted to ${recipient}`));

  const parts = splitV2(execFileSync("age", ["-d", "-i", IDENTITY(home), file]));
  const container = parts.header;
  assert.equal(container.format, "coffer-backup/v2");
  assert.equal(container.schema, SCHEMA_VERSION.store);
  assert.equal(container.recipient, recipient);
  assert.equal(container.identity, readFileSync(IDENTITY(home), "utf8"));
  assert.ok(!Number.isNaN(Date.parse(container.created)));
  const snapshot = parts.snapshot;
  assert.equal(snapshot.subarray(0, 16).toString("latin1"), "SQLite format 3\0");
  assert.equal(JSON.parse(parts.signatureLine).format, "coffer-backup-signature/v2");
  for (const v of Object.values(values)) assert.equal(snapshot.indexOf(v), -1, "values stay sealed inside the snapshot");

  // Without the identity in it; restored on a new machine with the key file given.
  const bare = join(outside, "bare.backup");
  assert.equal(coffer(home, ["backup", "--out", bare, "--to", recipient, "--no-identity"]).code, 0);
  assert.equal(splitV2(execFileSync("age", ["-d", "-i", IDENTITY(home), bare])).header.identity, null);
  const key = join(outside, "key.txt");
  copyFileSync(IDENTITY(home), key);
  const fresh = tempDir(t);
  const missing = coffer(fresh, ["restore", bare]);
  assert.equal(missing.code, 8, missing.err);
  assert.match(missing.err, /--identity FILE/);
  assert.deepEqual(readdirSync(fresh), []);
  const r = coffer(fresh, ["restore", bare, "--identity", key]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /copied the identity/);
  assert.deepEqual(readFileSync(IDENTITY(fresh)), readFileSync(key));
  for (const [name, value] of Object.entries(values)) assert.equal(coffer(fresh, ["get", name]).out, value);
  assert.equal(coffer(fresh, ["audit", "verify"]).code, 0);

  // To someone else's key: checked as age only, with a warning that the identity is inside.
  const other = join(outside, "other.key");
  execFileSync("age-keygen", ["-o", other], { stdio: "ignore" });
  const otherRecipient = execFileSync("age-keygen", ["-y", other], { encoding: "utf8" }).trim();
  const foreign = coffer(home, ["backup", "--out", join(outside, "foreign.backup"), "--to", otherRecipient]);
  assert.equal(foreign.code, 0, foreign.err);
  assert.match(foreign.err, /could not decrypt it here/);
  assert.match(foreign.err, /warning: the backup holds your identity/);
  assert.equal(splitV2(execFileSync("age", ["-d", "-i", other, join(outside, "foreign.backup")])).header.format, "coffer-backup/v2");
});

test("restore over an existing store: refused without --yes and no terminal (nothing changed), replaced with --yes", (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  userWithSecrets(home);
  const file = join(outside, "b.backup");
  const recipient = execFileSync("age-keygen", ["-y", IDENTITY(home)], { encoding: "utf8" }).trim();
  assert.equal(coffer(home, ["backup", "--out", file, "--to", recipient]).code, 0);
  assert.equal(coffer(home, ["set", "after/backup"], { input: "later" }).code, 0);
  const before = dump(STORE(home));

  const refused = coffer(home, ["restore", file]);
  assert.equal(refused.code, 10, refused.err);
  assert.match(refused.err, /pass --yes/);
  assert.deepEqual(dump(STORE(home)), before, "nothing changed");
  assert.equal(coffer(home, ["get", "after/backup"]).out, "later");

  const r = coffer(home, ["restore", file, "--yes"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /replacing the store that was there/);
  assert.match(r.err, /kept the identity/);
  assert.equal(coffer(home, ["get", "after/backup"]).code, 3);
  assert.deepEqual(JSON.parse(coffer(home, ["list", "--json"]).out).map((i: { name: string }) => i.name), ["api/token", "db/prod/password"]);
  assert.equal(coffer(home, ["audit", "verify"]).code, 0);
  assert.deepEqual(readdirSync(join(home, ".local", "share", "coffer")).filter((f) => !/^store\.db(-wal|-shm)?$/.test(f)), [], "no temp files left");

  // An existing file is not overwritten without --force.
  const again = coffer(home, ["backup", "--out", file, "--to", recipient]);
  assert.equal(again.code, 4);
  assert.match(again.err, /already exists; refusing to overwrite it/);
  assert.equal(coffer(home, ["backup", "--out", file, "--to", recipient, "--force"]).code, 0);
});

test("a backup file with one byte changed is refused and nothing is written; usage errors", (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  const { recipient, file } = recipientBackup(home, outside);
  const key = join(outside, "key.txt");
  copyFileSync(IDENTITY(home), key);
  const bytes = readFileSync(file);
  const fresh = tempDir(t);
  for (const at of [60, Math.floor(bytes.length / 3), Math.floor(bytes.length / 2), Math.floor((bytes.length * 2) / 3)]) {
    const flipped = Buffer.from(bytes);
    let i = at;
    while (flipped[i] === 0x0a || flipped[i] === 0x2d || flipped[i] === 0x3d) i++;
    flipped[i] = flipped[i] === 0x41 ? 0x42 : 0x41;
    const bad = join(outside, `flipped-${at}`);
    writeFileSync(bad, flipped);
    const r = coffer(fresh, ["restore", bad, "--identity", key]);
    assert.equal(r.code, 6, `byte ${i}: ${r.err}`);
    assert.equal(r.err.split("\n").length, 2, "one line");
    assert.deepEqual([...walk(fresh)], [], "nothing written");
  }

  const usage: string[][] = [
    ["backup", "--to", recipient],
    ["backup", "--out", join(outside, "x")],
    ["backup", "--out", join(outside, "x"), "--to", recipient, "--prompt"],
    ["restore"],
    ["restore", file, "--passphrase-file", key, "--prompt"],
  ];
  for (const args of usage) {
    const r = coffer(home, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
  }
  assert.equal(coffer(home, ["restore", join(outside, "nope")]).code, 3);
  for (const c of ["backup", "restore"]) {
    const h = coffer(home, [c, "--help"]);
    assert.equal(h.code, 0);
    assert.match(h.out, new RegExp(`^Usage: coffer ${c} `));
    assert.match(h.out, /\nExamples:\n {2}coffer /);
  }
});

test("on a terminal, restore asks before replacing a store: no keeps it, yes replaces it", async (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  const { file } = recipientBackup(home, outside);
  assert.equal(coffer(home, ["set", "after/backup"], { input: "later" }).code, 0);
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} restore ${JSON.stringify(file)}`;
  const question = /replace the store at .*store\.db \(3 secrets\) with the backup of \S+ \(2 secrets\)\? \[y\/N\] /;
  const no = await onTerminal(home, cmd, [[question, "n\r"]]);
  assert.equal(no.code, 10, no.screen);
  assert.match(no.screen, /restore cancelled; nothing was changed/);
  assert.equal(coffer(home, ["get", "after/backup"]).out, "later");
  const yes = await onTerminal(home, cmd, [[question, "y\r"]]);
  assert.equal(yes.code, 0, yes.screen);
  assert.match(yes.screen, /replacing the store that was there/);
  assert.equal(coffer(home, ["get", "after/backup"]).code, 3);
  assert.equal(coffer(home, ["audit", "verify"]).code, 0);
});

test("--to given twice encrypts to both recipients: each opens the backup with the age CLI", (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  userWithSecrets(home);
  const other = join(outside, "other.key");
  execFileSync("age-keygen", ["-o", other], { stdio: "ignore" });
  const mine = execFileSync("age-keygen", ["-y", IDENTITY(home)], { encoding: "utf8" }).trim();
  const theirs = execFileSync("age-keygen", ["-y", other], { encoding: "utf8" }).trim();
  const file = join(outside, "two.backup");
  const r = coffer(home, ["backup", "--out", file, "--to", mine, "--to", theirs, "--no-identity"]);
  assert.equal(r.code, 0, r.err);
  for (const key of [IDENTITY(home), other]) {
    assert.equal(splitV2(execFileSync("age", ["-d", "-i", key, file])).header.format, "coffer-backup/v2");
  }
});

test("an unsigned (old) backup restores only with --unsigned, with a warning; a short passphrase needs --weak-passphrase", async (t) => {
  const home = tempDir(t);
  const outside = tempDir(t);
  const { file } = recipientBackup(home, outside);
  const age = await import("age-encryption");
  const { decryptWithIdentity, encryptToRecipients } = await import("../../src/crypto/age.ts");
  const { loadIdentity } = await import("../../src/identity/identity.ts");
  const identity = await loadIdentity(IDENTITY(home));
  const v1 = asV1(splitV2(await decryptWithIdentity(readFileSync(file), identity.secretKey, "x")));
  const old = join(outside, "old.backup");
  writeFileSync(old, age.armor.encode(await encryptToRecipients(Buffer.from(JSON.stringify(v1)), [identity.recipient])), { mode: 0o600 });

  const refused = coffer(home, ["restore", old, "--yes"]);
  assert.equal(refused.code, 6);
  assert.match(refused.err, /^coffer: the backup .* is not signed: .*with --unsigned\n$/);
  const r = coffer(home, ["restore", old, "--yes", "--unsigned"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^warning: the backup .* is not signed, so nothing shows who made it/m);
  const signed = coffer(home, ["restore", file, "--yes"]);
  assert.equal(signed.code, 0, signed.err);
  assert.match(signed.err, /^signed by "alice" \(fingerprint [A-Z2-7]{16}\)$/m);

  const short = coffer(home, ["backup", "--out", join(outside, "weak.backup"), "--passphrase-file", passFile(outside, "short", "eleven-char")]);
  assert.equal(short.code, 7);
  assert.match(short.err, /^coffer: the backup passphrase is shorter than 12 characters: .*--weak-passphrase to use it anyway\n$/);
  const weak = coffer(home, ["backup", "--out", join(outside, "weak.backup"), "--passphrase-file", join(outside, "short"), "--weak-passphrase"]);
  assert.equal(weak.code, 0, weak.err);
});
