import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RunbookCatalog, type CatalogEntry } from "../../src/runbooks/catalog.ts";
import { tempDir } from "../helpers.ts";

const OK = "description: ok\nrun: echo hi\n";
const SANDBOX = "description: sb\nrun: echo hi\nisolation: sandbox\n";
const NOBODY = 65534;

/** A private runbooks dir (0700, ours) holding `files` (name → text), each 0600 unless given. */
function runbooksDir(t: TestContext, files: Record<string, string> = {}): string {
  const dir = join(tempDir(t, "coffer-runbooks-"), "runbooks");
  mkdirSync(dir, { mode: 0o700 });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 });
  return dir;
}

const invalid = (e: CatalogEntry | undefined): readonly string[] => {
  assert.ok(e !== undefined && !e.valid, `expected an invalid entry, got ${JSON.stringify(e)}`);
  return e.problems;
};

test("load: every NAME.yml directly in the dir, valid and invalid, sorted; other files left out", (t) => {
  const dir = runbooksDir(t, { "b.yml": OK, "a.yml": OK, "bad.yml": "run: x\nfoo: 1\n", "notes.txt": "x", "c.yaml": OK });
  mkdirSync(join(dir, "sub"));
  writeFileSync(join(dir, "sub", "deep.yml"), OK, { mode: 0o600 });
  const catalog = new RunbookCatalog({ dir });
  const log = catalog.load();
  assert.deepEqual(catalog.list().map((e) => [e.name, e.valid]), [["a", true], ["b", true], ["bad", false]]);
  const a = catalog.get("a");
  assert.ok(a?.valid);
  assert.equal(a.file, join(dir, "a.yml"));
  assert.equal(a.runbook.run, "echo hi");
  assert.deepEqual(invalid(catalog.get("bad")), ['bad.yml:2: unknown key "foo" in the top level; allowed: description, run, shell, params, secrets, files, timeout, outputLimit, concurrency, approvals, isolation, require']);
  assert.equal(catalog.get("deep"), undefined, "no recursion");
  assert.equal(catalog.get("c"), undefined, ".yaml is not a runbook");
  const messages = log.map((l) => `${l.level}: ${l.message}`);
  assert.ok(messages.some((m) => m.startsWith(`error: runbook "bad" (${join(dir, "bad.yml")}) is invalid and will not run: bad.yml:2: unknown key "foo"`)), messages.join("\n"));
  assert.ok(messages.some((m) => m === `warn: runbooks: ${join(dir, "c.yaml")} is ignored: runbook files end in .yml`));
  assert.ok(messages.some((m) => m === `info: runbooks: loaded 3 from ${dir} (2 valid, 1 invalid)`));
  assert.deepEqual(catalog.logLines(), log);
});

test("a tempdir runbook is logged with a warning that it runs with the server's privileges and can read master.key", (t) => {
  const dir = runbooksDir(t, { "a.yml": OK, "s.yml": SANDBOX });
  const catalog = new RunbookCatalog({ dir, sandboxProblem: () => undefined });
  const log = catalog.load();
  const a = catalog.get("a");
  assert.ok(a?.valid);
  assert.equal(a.warnings.length, 1);
  assert.match(a.warnings[0]!, /isolation: tempdir runs the script with the server's own privileges \(uid 0\), unsandboxed: it can read the data directory and master\.key/);
  assert.ok(log.some((l) => l.level === "warn" && l.message.startsWith('runbook "a"') && l.message.includes("master.key")));
  const s = catalog.get("s");
  assert.ok(s?.valid);
  assert.deepEqual(s.warnings, []);
  const asUser = new RunbookCatalog({ dir, runAs: "coffer-run", sandboxProblem: () => undefined });
  asUser.load();
  assert.match((asUser.get("a") as { warnings: readonly string[] }).warnings[0]!, /as coffer-run \(runbooks\.runAs\)/);
});

test("where bubblewrap cannot run, every sandbox runbook is invalid with the probe's reason (asked once)", (t) => {
  const dir = runbooksDir(t, { "s1.yml": SANDBOX, "s2.yml": SANDBOX, "a.yml": OK });
  let asked = 0;
  const catalog = new RunbookCatalog({ dir, sandboxProblem: () => (asked++, "bwrap: setting up uid map: Permission denied") });
  catalog.load();
  assert.equal(asked, 1);
  assert.deepEqual(invalid(catalog.get("s1")), ["s1.yml: isolation: sandbox cannot run on this host: bwrap: setting up uid map: Permission denied"]);
  assert.equal(catalog.get("s2")?.valid, false);
  assert.equal(catalog.get("a")?.valid, true);
  // No sandbox runbook: the probe is not run at all.
  const none = new RunbookCatalog({ dir: runbooksDir(t, { "a.yml": OK }), sandboxProblem: () => assert.fail("probed") });
  none.load();
});

test("production without allowUnsandboxed: every tempdir runbook is invalid with the guard's reason", (t) => {
  const dir = runbooksDir(t, { "a.yml": OK, "s.yml": SANDBOX });
  const catalog = new RunbookCatalog({ dir, sandboxProblem: () => undefined, refuseTempdir: "the production guard refuses isolation: tempdir" });
  catalog.load();
  assert.deepEqual(invalid(catalog.get("a")), ["a.yml: the production guard refuses isolation: tempdir"]);
  assert.equal(catalog.get("s")?.valid, true);
});

test("a shell that is not on this host makes the runbook invalid", (t) => {
  const plain = join(tempDir(t), "not-executable");
  writeFileSync(plain, "#!/bin/sh\n", { mode: 0o644 });
  const dir = runbooksDir(t, { "a.yml": "run: x\nshell: /nonexistent/zsh\n", "b.yml": `run: x\nshell: ${plain}\n`, "c.yml": "run: x\nshell: /tmp\n" });
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  assert.deepEqual(invalid(catalog.get("a")), ["a.yml: shell /nonexistent/zsh cannot be found on this host (ENOENT)"]);
  assert.deepEqual(invalid(catalog.get("b")), [`b.yml: shell ${plain} is not executable`]);
  assert.deepEqual(invalid(catalog.get("c")), ["c.yml: shell /tmp is not a file on this host"]);
});

test("a symlink planted in the dir is refused: it must not make the server read master.key or run another file", (t) => {
  const dir = runbooksDir(t, { "real.yml": OK });
  const outside = join(dir, "..", "outside.yml");
  writeFileSync(outside, OK, { mode: 0o600 });
  symlinkSync(outside, join(dir, "link.yml"));
  symlinkSync("/etc/passwd", join(dir, "passwd.yml"));
  symlinkSync(join(dir, "real.yml"), join(dir, "inner.yml"));
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  for (const name of ["link", "passwd", "inner"]) {
    assert.deepEqual(invalid(catalog.get(name)), [`${name}.yml is a symbolic link: a runbook must be a regular file in the directory (a link could point anywhere)`]);
  }
  assert.equal(catalog.get("real")?.valid, true);
});

test("a FIFO or a directory named NAME.yml is refused without hanging the load", (t) => {
  const dir = runbooksDir(t, { "a.yml": OK });
  assert.equal(spawnSync("mkfifo", [join(dir, "fifo.yml")]).status, 0, "mkfifo");
  mkdirSync(join(dir, "d.yml"));
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  assert.deepEqual(invalid(catalog.get("fifo")), ["fifo.yml is not a regular file"]);
  assert.deepEqual(invalid(catalog.get("d")), ["d.yml is not a regular file"]);
});

test("a runbook writable by group or others is refused: someone else could change the script the server runs", (t) => {
  const dir = runbooksDir(t, { "g.yml": OK, "o.yml": OK, "ro.yml": OK });
  chmodSync(join(dir, "g.yml"), 0o664);
  chmodSync(join(dir, "o.yml"), 0o646);
  chmodSync(join(dir, "ro.yml"), 0o444);
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  assert.deepEqual(invalid(catalog.get("g")), ["g.yml: group or others can write the file (mode 0664); chmod go-w it; the server would run a script others can change"]);
  assert.match(invalid(catalog.get("o"))[0]!, /mode 0646/);
  assert.equal(catalog.get("ro")?.valid, true);
});

test("a runbook owned by another user is refused: only the server's user or root may provide scripts", (t) => {
  const dir = runbooksDir(t, { "theirs.yml": OK, "mine.yml": OK });
  chownSync(join(dir, "theirs.yml"), NOBODY, NOBODY);
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  assert.deepEqual(invalid(catalog.get("theirs")), [`theirs.yml: the file is owned by uid ${NOBODY}, not by the server's user (uid 0) or root; the server would run a script others can change`]);
  // As a server running as uid 1000: root's files are fine, its own are fine, nobody's are not.
  chownSync(join(dir, "mine.yml"), 1000, 1000);
  chownSync(dir, 1000, 1000);
  const as1000 = new RunbookCatalog({ dir, uid: 1000 });
  as1000.load();
  assert.equal(as1000.get("mine")?.valid, true);
  assert.equal(as1000.get("theirs")?.valid, false);
});

test("a dir others can write or another user owns is refused at load: anyone could add a runbook", (t) => {
  const dir = runbooksDir(t, { "a.yml": OK });
  chmodSync(dir, 0o777);
  assert.throws(() => new RunbookCatalog({ dir }).load(), { code: "E_CONFIG", message: `runbooks.dir ${dir}: group or others can write the directory (mode 0777); chmod go-w it; anyone who can write it could add a script the server runs` });
  chmodSync(dir, 0o700);
  chownSync(dir, NOBODY, NOBODY);
  assert.throws(() => new RunbookCatalog({ dir }).load(), { code: "E_CONFIG", message: new RegExp(`owned by uid ${NOBODY}, not by the server's user \\(uid 0\\) or root`) });
  assert.throws(() => new RunbookCatalog({ dir: join(dir, "missing") }).load(), { code: "E_CONFIG", message: /cannot be read \(ENOENT\); check runbooks\.dir \(COFFER_RUNBOOKS_DIR\)/ });
  assert.throws(() => new RunbookCatalog({ dir: join(dir, "a.yml") }).load(), { code: "E_CONFIG", message: /is not a directory/ });
});

test("file names that are not runbook names are invalid entries, never runnable", (t) => {
  const dir = runbooksDir(t, { ".hidden.yml": OK, "-x.yml": OK, "a b.yml": OK, "..yml": OK });
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  for (const name of [".hidden", "-x", "a b", "."]) {
    assert.match(invalid(catalog.get(name))[0]!, /runbook name .* is not allowed: a runbook's name is its file name without \.yml/, name);
  }
});

test("names from a request never reach a file outside the dir (../x, %2e%2e%2fx, a/b)", (t) => {
  const root = tempDir(t, "coffer-runbooks-escape-");
  const dir = join(root, "runbooks");
  mkdirSync(dir, { mode: 0o700 });
  mkdirSync(join(dir, "a"), { mode: 0o700 });
  writeFileSync(join(root, "x.yml"), OK, { mode: 0o600 }); // what ../x would reach
  writeFileSync(join(dir, "a", "b.yml"), OK, { mode: 0o600 }); // what a/b would reach
  writeFileSync(join(dir, "ok.yml"), OK, { mode: 0o600 });
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  for (const name of ["../x", "..%2fx", "%2e%2e%2fx", "%2E%2E/x", "a/b", "a%2fb", "./ok", "ok.yml", "/etc/passwd", "..", ".", "", "__proto__", "constructor", "ok\u0000", "OK"]) {
    assert.equal(catalog.get(name), undefined, name);
  }
  for (const name of [undefined, null, 1, ["ok"], { toString: () => "ok" }]) assert.equal(catalog.get(name), undefined);
  assert.equal(catalog.get("ok")?.valid, true);
});

test("reload picks up changes; when the dir cannot be read, the previous runbooks stay and it says so", (t) => {
  const dir = runbooksDir(t, { "a.yml": OK });
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  writeFileSync(join(dir, "b.yml"), OK, { mode: 0o600 });
  writeFileSync(join(dir, "a.yml"), "run: x\nbad: 1\n", { mode: 0o600 });
  const r = catalog.reload();
  assert.equal(r.reloaded, true);
  assert.deepEqual(catalog.list().map((e) => [e.name, e.valid]), [["a", false], ["b", true]]);
  renameSync(dir, `${dir}.moved`);
  const failed = catalog.reload();
  assert.equal(failed.reloaded, false);
  assert.equal(failed.log.length, 1);
  assert.match(failed.log[0]!.message, /^runbooks: reload failed, the 2 runbooks loaded before stay in use: runbooks\.dir .* cannot be read \(ENOENT\)/);
  assert.equal(failed.log[0]!.level, "error");
  assert.deepEqual(catalog.list().map((e) => e.name), ["a", "b"]);
  assert.equal(catalog.get("b")?.valid, true);
});

test("a file's problems are its parse problems with file:line", (t) => {
  const dir = runbooksDir(t, { "p.yml": "run: x\nparams: { PATH: {} }\nsecrets: { LD_PRELOAD: a/b }\n" });
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  assert.deepEqual(invalid(catalog.get("p")), [
    'p.yml:2: params: variable "PATH" is set by the server for every execution (PATH, HOME, LANG, TMPDIR, PWD, COFFER_*), so a runbook may not set it',
    'p.yml:3: secrets: variable "LD_PRELOAD" changes how programs load or run, so a runbook may not set it (set it inside the script if it must be)',
  ]);
});

test("an oversized runbook file is refused, not read whole", (t) => {
  const dir = runbooksDir(t, { "big.yml": `run: x\ndescription: ${"x".repeat(300 * 1024)}\n` });
  const catalog = new RunbookCatalog({ dir });
  catalog.load();
  assert.match(invalid(catalog.get("big"))[0]!, /^big\.yml: the runbook file is larger than the limit of 262144 bytes/);
});
