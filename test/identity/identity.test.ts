import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createIdentityFile, loadIdentity, parseIdentityText, readPassphraseFile } from "../../src/identity/identity.ts";
import { tempDir } from "../helpers.ts";

const SEVENS = "AGE-SECRET-KEY-1QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSWPC8QURSKMP32K";

test("parse: comments and blank lines around exactly one key; the name comment", () => {
  assert.deepEqual(parseIdentityText(`# created: x\n# public key: age1…\n\n${SEVENS}\n`), { secretKey: SEVENS });
  assert.deepEqual(parseIdentityText(`# name: bob\r\n${SEVENS}\r\n`), { secretKey: SEVENS, name: "bob" });
});

test("parse: refuses no key, two keys, PQ keys, plugins and stray lines, without echoing key material", () => {
  const cases: [string, RegExp][] = [
    ["# only a comment\n", /no AGE-SECRET-KEY-1/],
    [`${SEVENS}\n${SEVENS}\n`, /holds 2 keys/],
    ["AGE-SECRET-KEY-PQ-1ABC\n", /post-quantum/],
    ["AGE-PLUGIN-YUBIKEY-1ABC\n", /plugin/],
    [`hello\n${SEVENS}\n`, /line 1: not an age identity line/],
  ];
  for (const [text, msg] of cases) {
    assert.throws(() => parseIdentityText(text), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_IDENTITY");
      assert.match(err.message, msg);
      assert.ok(!err.message.includes("QURSWPC8"));
      return true;
    });
  }
});

test("create: a standard age identity file, 0600, with the name as a comment; never overwritten", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "identity");
  const id = await createIdentityFile({ path, name: "carol", adopt: `${SEVENS}\n` });
  assert.equal(id.recipient, "age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt");
  const text = readFileSync(path, "utf8");
  assert.match(text, /^# name: carol$/m);
  assert.match(text, new RegExp(`^${SEVENS}$`, "m"));
  await assert.rejects(createIdentityFile({ path, name: "carol" }), { code: "E_CONFLICT" });
  assert.equal((await loadIdentity(path)).name, "carol");
});

test("load: refuses a group/world-readable identity with the exact chmod to run", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "identity");
  await createIdentityFile({ path, name: "dave" });
  chmodSync(path, 0o644);
  await assert.rejects(loadIdentity(path), {
    code: "E_PERMISSIONS",
    message: `identity file ${path} is accessible by group or others (mode 0644); run \`chmod 600 ${path}\``,
  });
});

test("load: a missing identity says to run coffer init", async (t) => {
  const dir = tempDir(t);
  await assert.rejects(loadIdentity(join(dir, "nope")), { code: "E_NOT_INITIALIZED", message: /coffer init/ });
});

test("passphrase: encrypted identity opens with the right passphrase, fails cleanly with a wrong one", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "identity");
  const made = await createIdentityFile({ path, name: "erin", passphrase: "correct horse", logN: 10 });
  assert.ok(readFileSync(path, "utf8").startsWith("-----BEGIN AGE ENCRYPTED FILE-----"));
  const loaded = await loadIdentity(path, { passphrase: "correct horse" });
  assert.equal(loaded.recipient, made.recipient);
  assert.equal(loaded.encrypted, true);
  await assert.rejects(loadIdentity(path, { passphrase: "wrong" }), { code: "E_DECRYPT" });
  await assert.rejects(loadIdentity(path, { env: {} }), { code: "E_IDENTITY", message: /COFFER_PASSPHRASE_FILE/ });
  const pf = join(dir, "pass");
  writeFileSync(pf, "correct horse\n", { mode: 0o600 });
  assert.equal((await loadIdentity(path, { env: { COFFER_PASSPHRASE_FILE: pf } })).name, "erin");
  assert.equal(readPassphraseFile(pf), "correct horse");
  chmodSync(pf, 0o640);
  assert.throws(() => readPassphraseFile(pf), { code: "E_PERMISSIONS", message: /chmod 600/ });
});
