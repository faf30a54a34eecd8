import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { tempDir, walk } from "../helpers.ts";
import { CLI, coffer, onTerminal } from "./run-cli.ts";

const IDENTITY = (home: string) => join(home, ".config", "coffer", "identity");
const STORE = (home: string) => join(home, ".local", "share", "coffer", "store.db");

test("round trip in a fresh HOME: init, set from stdin, get exact, --version, list/history without values", (t) => {
  const home = tempDir(t);
  const init = coffer(home, ["init", "--name", "alice"]);
  assert.equal(init.code, 0, init.err);
  assert.match(init.err, /created identity .*\.config\/coffer\/identity/);
  assert.match(init.err, /your card +coffer-card:v1:alice:age1/);

  const v1 = `first-${randomBytes(12).toString("hex")}`;
  const v2 = `second-${randomBytes(12).toString("hex")}\n`;
  assert.equal(coffer(home, ["set", "db/prod/password", "--description", "primary db"], { input: v1 }).code, 0);
  const set2 = coffer(home, ["set", "db/prod/password", "--json"], { input: v2 });
  assert.deepEqual(JSON.parse(set2.out), { name: "db/prod/password", version: 2 });

  const get = coffer(home, ["get", "db/prod/password"]);
  assert.equal(get.code, 0);
  assert.equal(get.out, v2, "value printed exactly, no newline added when stdout is not a terminal");
  assert.equal(get.err, "");
  assert.equal(coffer(home, ["get", "db/prod/password", "--version", "1"]).out, v1);
  const json = JSON.parse(coffer(home, ["get", "db/prod/password", "--version", "1", "--json"]).out);
  assert.equal(json.value, v1);
  assert.equal(json.version, 1);

  const list = coffer(home, ["list"]);
  assert.match(list.out, /^NAME +VERSION +UPDATED +BY +DESCRIPTION\ndb\/prod\/password +2 +\S+ +alice +primary db\n$/);
  const history = coffer(home, ["history", "db/prod/password"]);
  assert.match(history.out, /^VERSION.*\n1 .*alice\s*\n2 .*alice +current\n$/);
  const audit = coffer(home, ["audit", "--json"]);
  assert.deepEqual(JSON.parse(audit.out).map((r: { action: string }) => r.action), ["init", "set", "set", "get", "get", "get"]);
  assert.equal(coffer(home, ["audit", "verify"]).code, 0);
  for (const out of [list.out, history.out, audit.out, coffer(home, ["list", "--json"]).out, coffer(home, ["history", "db/prod/password", "--json"]).out]) {
    assert.ok(!out.includes(v1.slice(0, 10)) && !out.includes(v2.slice(0, 10)), "no value in list/history/audit output");
  }

  // Nothing of a value is findable in any file under HOME.
  for (const file of walk(home)) {
    const bytes = readFileSync(file);
    for (const needle of [v1, v2.trim(), v1.slice(6, 20)]) {
      assert.equal(bytes.indexOf(needle), -1, `a value's bytes are in ${file}`);
    }
  }
});

test("an empty value is a value: set from empty stdin, get gives back zero bytes", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  const set = coffer(home, ["set", "FLAG"], { input: "" });
  assert.equal(set.code, 0, set.err);
  const got = coffer(home, ["get", "FLAG"]);
  assert.equal(got.code, 0, got.err);
  assert.equal(got.stdout.length, 0);
  const json = JSON.parse(coffer(home, ["get", "FLAG", "--json"]).out);
  assert.equal(json.value, "");
});

test("binary values pass through untouched, both ways", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  const bin = Buffer.concat([Buffer.from([0, 0xff, 0xfe, 10, 13, 0]), randomBytes(4000)]);
  assert.equal(coffer(home, ["set", "tls/blob"], { input: bin }).code, 0);
  assert.deepEqual(coffer(home, ["get", "tls/blob"]).stdout, bin);
  const json = JSON.parse(coffer(home, ["get", "tls/blob", "--json"]).out);
  assert.deepEqual(Buffer.from(json.valueBase64, "base64"), bin);
  // text that starts with a byte-order mark keeps it in --json's value
  const bom = Buffer.from("\ufeffkey=1\n", "utf8");
  assert.equal(coffer(home, ["set", "tls/bom"], { input: bom }).code, 0);
  assert.deepEqual(Buffer.from(JSON.parse(coffer(home, ["get", "tls/bom", "--json"]).out).value, "utf8"), bom);
  const file = join(home, "f.bin");
  writeFileSync(file, bin);
  assert.equal(coffer(home, ["set", "tls/blob2", "--from-file", file]).code, 0);
  assert.deepEqual(coffer(home, ["get", "tls/blob2"]).stdout, bin);
});

test("0700 dirs and 0600 files even under umask 000", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["init"], { umask: "000" }).code, 0);
  assert.equal(coffer(home, ["set", "a"], { input: "v", umask: "000" }).code, 0);
  assert.equal(coffer(home, ["get", "a"], { umask: "000" }).code, 0);
  const mode = (p: string) => statSync(p).mode & 0o777;
  for (const d of [join(home, ".config"), join(home, ".config", "coffer"), join(home, ".local"), join(home, ".local", "share", "coffer")]) {
    assert.equal(mode(d), 0o700, d);
  }
  for (const f of walk(home)) assert.equal(mode(f), 0o600, f);
  assert.equal(mode(IDENTITY(home)), 0o600);
  assert.equal(mode(STORE(home)), 0o600);
});

test("a world-readable identity is refused with the chmod to run, and nothing is read", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  coffer(home, ["set", "a"], { input: "v" });
  chmodSync(IDENTITY(home), 0o644);
  const r = coffer(home, ["get", "a"]);
  assert.equal(r.code, 5);
  assert.equal(r.out, "");
  assert.equal(r.err, `coffer: identity file ${IDENTITY(home)} is accessible by group or others (mode 0644); run \`chmod 600 ${IDENTITY(home)}\`\n`);
  chmodSync(IDENTITY(home), 0o600);
  assert.equal(coffer(home, ["get", "a"]).code, 0);
});

test("bad input is refused with the rule and changes nothing: ../x, oversized, conflicting version", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  coffer(home, ["set", "k"], { input: "v1" });
  const auditBefore = JSON.parse(coffer(home, ["audit", "--json"]).out).length;
  const cases: [string[], string | Buffer, number, RegExp][] = [
    [["set", "../x"], "v", 7, /invalid secret name "\.\.\/x": names are path-like/],
    [["set", "a/../../etc/passwd"], "v", 7, /invalid secret name/],
    [["set", "/abs"], "v", 7, /invalid secret name/],
    [["get", "../x"], "", 7, /invalid secret name/],
    [["set", "big"], Buffer.alloc(1024 * 1024 + 1, 0x61), 7, /over the limit of 1048576 bytes/],
    [["set", "k", "--if-version", "5"], "v2", 4, /at version 1, not 5/],
    [["set", "k", "--if-version", "x"], "v2", 7, /invalid --if-version "x"/],
    [["set", "k", "--generate", "--charset", "emoji"], "", 7, /invalid --charset/],
    [["set", "k", "--rotate-every", "90 days"], "v2", 7, /invalid --rotate-every "90 days": must be a duration: a whole number with a unit ms, s, m, h, d or w/],
    [["set", "k", "--rotate-every", "500ms"], "v2", 7, /invalid --rotate-every "500ms": must be at least 1s/],
  ];
  for (const [args, input, code, msg] of cases) {
    const r = coffer(home, args, { input });
    assert.equal(r.code, code, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, msg);
    assert.equal(r.err.split("\n").length, 2, "one line on stderr");
  }
  assert.equal(JSON.parse(coffer(home, ["audit", "--json"]).out).length, auditBefore);
  assert.deepEqual(JSON.parse(coffer(home, ["list", "--json"]).out).map((i: { name: string }) => i.name), ["k"]);
});

test("usage errors exit 2 with one line; unknown command; not initialised exits 8", (t) => {
  const home = tempDir(t);
  assert.equal(coffer(home, ["frobnicate"]).code, 2);
  const r = coffer(home, ["get", "x", "--bogus"]);
  assert.equal(r.code, 2);
  assert.equal(r.err, "coffer: Unknown option '--bogus'; see `coffer get --help`\n");
  assert.equal(coffer(home, ["get"]).code, 2);
  const n = coffer(home, ["get", "x"]);
  assert.equal(n.code, 8);
  assert.match(n.err, /run `coffer init` first/);
  assert.equal(coffer(home, ["get", "x", "--debug"]).err.includes("at "), true, "--debug adds the stack");
});

test("--help everywhere, each with an example; --version", (t) => {
  const home = tempDir(t);
  const main = coffer(home, ["--help"]);
  assert.equal(main.code, 0);
  const commands = [...main.out.matchAll(/^  (\S+(?: [a-z]+)?) {2,}/gm)].map((m) => m[1]!);
  assert.ok(commands.length >= 9, commands.join(","));
  for (const c of commands) {
    const h = coffer(home, [...c.split(" "), "--help"]);
    assert.equal(h.code, 0, c);
    assert.match(h.out, new RegExp(`^Usage: coffer ${c} `));
    assert.match(h.out, /\nExamples:\n  .*\bcoffer\b/);
  }
  assert.match(coffer(home, ["--version"]).out, /^coffer \d+\.\d+\.\d+\n$/);
});

test("a VALUE on argv works but warns about shell history and /proc", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  const r = coffer(home, ["set", "k", "argv-value"]);
  assert.equal(r.code, 0);
  assert.match(r.err, /warning: a value on the command line lands in shell history and \/proc\/\*\/cmdline/);
  assert.ok(!r.err.includes("argv-value"));
  assert.equal(coffer(home, ["get", "k"]).out, "argv-value");
});

test("--generate: value not printed, of the asked charset and length", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  const cases: [string[], RegExp][] = [
    [[], /^[A-Za-z0-9]{32}$/],
    [["--charset", "hex", "--length", "40"], /^[0-9a-f]{40}$/],
    [["--charset", "base64", "--length", "20"], /^[A-Za-z0-9_-]{20}$/],
    [["--charset", "words", "--length", "5"], /^[a-z]+(-[a-z]+){4}$/],
  ];
  for (const [i, [flags, re]] of cases.entries()) {
    const r = coffer(home, ["set", `gen/${i}`, "--generate", ...flags]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "");
    const value = coffer(home, ["get", `gen/${i}`]).out;
    assert.match(value, re);
    assert.ok(!r.err.includes(value));
  }
});

test("rm keeps history and rollback restores; rm --purge needs --yes without a terminal", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  coffer(home, ["set", "k"], { input: "a" });
  coffer(home, ["set", "k"], { input: "b" });
  assert.equal(coffer(home, ["rm", "k"]).code, 0);
  const gone = coffer(home, ["get", "k"]);
  assert.equal(gone.code, 3);
  assert.match(gone.err, /was removed; `coffer rollback k --to 2` restores it/);
  assert.equal(coffer(home, ["rollback", "k", "--to", "1"]).code, 0);
  assert.equal(coffer(home, ["get", "k"]).out, "a");
  const refused = coffer(home, ["rm", "k", "--purge"]);
  assert.equal(refused.code, 10);
  assert.match(refused.err, /pass --yes/);
  assert.equal(coffer(home, ["get", "k"]).out, "a");
  assert.equal(coffer(home, ["rm", "k", "--purge", "--yes"]).code, 0);
  assert.equal(coffer(home, ["history", "k"]).code, 3);
  assert.equal(coffer(home, ["audit", "verify"]).code, 0);
});

test("audit verify exits 6 naming the broken record after tampering", (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  coffer(home, ["set", "k"], { input: "a" });
  const db = new DatabaseSync(STORE(home));
  db.exec("UPDATE audit SET name = 'other' WHERE seq = 2");
  db.close();
  const r = coffer(home, ["audit", "verify"]);
  assert.equal(r.code, 6);
  assert.equal(r.err, "coffer: audit chain broken at record 2: hash does not match its content and predecessor; 1 records before it verify\n");
});

test("age interop: the identity is a standard age identity file (age -d -i, age-keygen -y), and an age key can be adopted", (t) => {
  const home = tempDir(t);
  const keyFile = join(home, "keys.txt");
  execFileSync("age-keygen", ["-o", keyFile], { stdio: "ignore" });
  const recipient = execFileSync("age-keygen", ["-y", keyFile], { encoding: "utf8" }).trim();
  const init = coffer(home, ["init", "--identity", keyFile, "--json"]);
  assert.equal(init.code, 0, init.err);
  assert.equal(JSON.parse(init.out).recipient, recipient);
  assert.equal(execFileSync("age-keygen", ["-y", IDENTITY(home)], { encoding: "utf8" }).trim(), recipient);
  // The store key's age-wrapped copy opens with the age CLI and the coffer identity file.
  const db = new DatabaseSync(STORE(home), { readOnly: true });
  const row = db.prepare("SELECT wrapped FROM store_keys WHERE kind = 'age'").get() as { wrapped: Uint8Array };
  db.close();
  const storeKey = execFileSync("age", ["-d", "-i", IDENTITY(home)], { input: row.wrapped });
  assert.equal(storeKey.length, 32);
  // And a file age encrypts to the recipient decrypts with the coffer identity file.
  const plain = execFileSync("age", ["-d", "-i", IDENTITY(home)], {
    input: execFileSync("age", ["-r", recipient, "-a"], { input: "hello" }),
  });
  assert.equal(plain.toString(), "hello");
});

test("passphrase-protected identity: COFFER_PASSPHRASE_FILE opens it; a wrong one exits 6; age reads the file format", (t) => {
  const home = tempDir(t);
  const pass = join(home, "pass");
  writeFileSync(pass, "a long passphrase\n", { mode: 0o600 });
  const env = { COFFER_PASSPHRASE_FILE: pass };
  const init = coffer(home, ["init", "--passphrase"], { env });
  assert.equal(init.code, 0, init.err);
  assert.match(init.err, /encrypting the identity \(scrypt/);
  assert.ok(readFileSync(IDENTITY(home), "utf8").startsWith("-----BEGIN AGE ENCRYPTED FILE-----"));
  assert.equal(coffer(home, ["set", "k"], { input: "v", env }).code, 0);
  const got = coffer(home, ["get", "k"], { env });
  assert.equal(got.out, "v");
  assert.match(got.err, /unlocking the identity/);
  writeFileSync(pass, "wrong\n");
  const bad = coffer(home, ["get", "k"], { env });
  assert.equal(bad.code, 6);
  assert.match(bad.err, /cannot decrypt identity .* \(wrong passphrase\?\)/);
  const none = coffer(home, ["get", "k"]);
  assert.equal(none.code, 10, none.err);
  assert.match(none.err, /no terminal/);
});

test("--prompt asks twice without echo on a real terminal", async (t) => {
  const home = tempDir(t);
  coffer(home, ["init"]);
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} set typed/secret --prompt`;
  const ok = await onTerminal(home, cmd, [[/value for typed\/secret: /, "tty-typed-value\r"], [/\(again\): /, "tty-typed-value\r"]]);
  assert.equal(ok.code, 0, ok.screen);
  assert.ok(!ok.screen.includes("tty-typed-value"), "the answer is not echoed");
  assert.equal(coffer(home, ["get", "typed/secret"]).out, "tty-typed-value");
  const mismatch = await onTerminal(home, cmd, [[/value for typed\/secret: /, "one\r"], [/\(again\): /, "two\r"]]);
  assert.equal(mismatch.code, 7);
  assert.match(mismatch.screen, /value for typed\/secret: the two values you typed do not match; nothing was changed/);
  assert.equal(coffer(home, ["history", "typed/secret", "--json"]).out.match(/"version"/g)?.length, 1);
});

test("--store selects another store file; COFFER_HOME holds both files", (t) => {
  const home = tempDir(t);
  const env = { COFFER_HOME: join(home, "ch") };
  assert.equal(coffer(home, ["init"], { env }).code, 0);
  assert.ok(statSync(join(home, "ch", "identity")).isFile());
  const other = join(home, "ch", "team.db");
  assert.equal(coffer(home, ["init", "--store", other], { env }).code, 0);
  coffer(home, ["set", "k", "--store", other], { env, input: "team" });
  assert.equal(coffer(home, ["get", "k", "--store", other], { env }).out, "team");
  assert.equal(coffer(home, ["get", "k"], { env }).code, 3);
});

test("a reader that goes away early (coffer --help | head -c1) ends coffer quietly with 0, not an internal error", async (t) => {
  const home = tempDir(t);
  const child = spawn(process.execPath, [CLI, "--help"], { env: { ...process.env, HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.destroy(); // the reader is gone before coffer writes
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  assert.equal(code, 0);
  assert.equal(err, "");
});
