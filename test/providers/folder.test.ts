import { test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { chmodSync, chownSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { createFolderProvider } from "../../src/providers/folder.ts";
import type { Provider, SecretRef } from "../../src/providers/provider.ts";
import { tempDir } from "../helpers.ts";

const VALUE = "folder-SECRET-value";

function setup(t: TestContext): { dir: string; provider: Provider; write: (name: string, data: string | Buffer, mode?: number) => string } {
  const dir = join(tempDir(t), "secrets");
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o755); // readable by others is fine, writable is not
  const provider = createFolderProvider("files", { type: "folder", dir }, { env: {} }, { debounceMs: 30 });
  t.after(() => provider.close());
  const write = (name: string, data: string | Buffer, mode = 0o600): string => {
    const p = join(dir, name);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, data);
    chmodSync(p, mode);
    return p;
  };
  return { dir, provider, write };
}

const ref = (path: string, extra: Partial<SecretRef> = {}): SecretRef => ({ provider: "files", path, ...extra });

async function rejects(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.ok(!err.message.includes(VALUE), "value in message");
    return true;
  });
}

test("folder: the value is the file's bytes exactly; subdirectories; mtime as updatedAt", async (t) => {
  const { provider, write } = setup(t);
  write("db_password", `${VALUE}\n`, 0o400);
  const bin = Buffer.from([0, 255, 13, 10, 0]);
  write("tls/key.bin", bin, 0o644);
  const s = await provider.resolve(ref("db_password"));
  assert.equal(s.reveal(), `${VALUE}\n`);
  assert.equal(s.version, 1);
  assert.equal(s.name, "db_password");
  assert.ok(!Number.isNaN(Date.parse(s.updatedAt)));
  assert.deepEqual(Buffer.from((await provider.resolve(ref("tls/key.bin"))).bytes()), bin);
});

test("folder: missing file is E_NOT_FOUND naming the path", async (t) => {
  const { dir, provider } = setup(t);
  await rejects(provider.resolve(ref("nope")), "E_NOT_FOUND", new RegExp(`no file ${join(dir, "nope")} for files:nope`));
  await rejects(provider.resolve(ref("no/such/dir")), "E_NOT_FOUND", /no file/);
  const gone = createFolderProvider("f", { type: "folder", dir: join(dir, "absent") }, { env: {} });
  await rejects(gone.resolve(ref("x")), "E_NOT_FOUND", /does not exist/);
});

test("folder: traversal is impossible: names must be secret names", async (t) => {
  const { provider } = setup(t);
  for (const path of ["../etc/passwd", "/etc/passwd", "a/../../x", "a//b", ".hidden", ""]) {
    await rejects(provider.resolve(ref(path)), "E_INVALID_NAME", /invalid secret name/);
  }
});

test("folder: a symlink out of the dir is refused; one inside is followed", async (t) => {
  const { dir, provider, write } = setup(t);
  const outside = join(dir, "..", "outside");
  writeFileSync(outside, VALUE, { mode: 0o600 });
  symlinkSync(outside, join(dir, "escape"));
  await rejects(provider.resolve(ref("escape")), "E_PERMISSIONS", /outside the folder/);
  mkdirSync(join(dir, "..", "elsewhere"), { mode: 0o700 });
  writeFileSync(join(dir, "..", "elsewhere", "x"), VALUE, { mode: 0o600 });
  symlinkSync(join(dir, "..", "elsewhere"), join(dir, "linkdir"));
  await rejects(provider.resolve(ref("linkdir/x")), "E_PERMISSIONS", /outside the folder/);
  write("real", VALUE);
  symlinkSync("real", join(dir, "alias"));
  assert.equal((await provider.resolve(ref("alias"))).reveal(), VALUE);
  symlinkSync("loop", join(dir, "loop"));
  await rejects(provider.resolve(ref("loop")), "E_PERMISSIONS", /loop/);
});

test("folder: group/other-writable files and dirs are refused with the chmod to run", async (t) => {
  const { dir, provider, write } = setup(t);
  const p = write("ww", VALUE, 0o622);
  await rejects(provider.resolve(ref("ww")), "E_PERMISSIONS", new RegExp(`secret file ${p} is writable by group or others \\(mode 0622\\); run \`chmod go-w ${p}\``));
  write("sub/x", VALUE);
  chmodSync(join(dir, "sub"), 0o777);
  await rejects(provider.resolve(ref("sub/x")), "E_PERMISSIONS", /folder .*sub is writable by group or others \(mode 0777\)/);
  chmodSync(join(dir, "sub"), 0o755);
  chmodSync(dir, 0o775);
  await rejects(provider.resolve(ref("sub/x")), "E_PERMISSIONS", /writable by group or others/);
});

test("folder: a file owned by another user (not root) is refused", { skip: process.getuid?.() !== 0 && "needs root to chown" }, async (t) => {
  const { provider, write } = setup(t);
  const p = write("theirs", VALUE);
  chownSync(p, 4242, 4242);
  await rejects(provider.resolve(ref("theirs")), "E_PERMISSIONS", /owned by uid 4242, neither you \(uid 0\) nor root, who could replace it; .*chown/);
  // root-owned is accepted (we are root here, so also "ours")
  chownSync(p, 0, 0);
  assert.equal((await provider.resolve(ref("theirs"))).reveal(), VALUE);
});

test("folder: non-regular files and files over 1 MiB are refused; an empty file is the empty value", async (t) => {
  const { dir, provider, write } = setup(t);
  mkdirSync(join(dir, "adir"), { mode: 0o700 });
  await rejects(provider.resolve(ref("adir")), "E_PROVIDER", /not a regular file/);
  if (spawnSync("mkfifo", ["-m", "600", join(dir, "fifo")]).status === 0) {
    await rejects(provider.resolve(ref("fifo")), "E_PROVIDER", /not a regular file/);
  }
  write("empty", "");
  assert.equal((await provider.resolve(ref("empty"))).reveal(), "");
  write("big", Buffer.alloc(1024 * 1024 + 1, 0x41));
  await rejects(provider.resolve(ref("big")), "E_INVALID_VALUE", /1048577 bytes, over the limit of 1048576 bytes/);
  write("max", Buffer.alloc(1024 * 1024, 0x41));
  assert.equal((await provider.resolve(ref("max"))).bytes().length, 1024 * 1024);
});

test("folder: keys and versions are E_CONFIG; dir must be absolute", async (t) => {
  const { provider, write } = setup(t);
  write("x", VALUE);
  await rejects(provider.resolve(ref("x", { version: 1 })), "E_CONFIG", /no keys or versions/);
  await rejects(provider.resolve(ref("x", { key: "k" })), "E_CONFIG", /no keys or versions/);
  assert.throws(() => createFolderProvider("f", { type: "folder", dir: "relative/dir" }, { env: {} }), { code: "E_CONFIG", message: /absolute/ });
});

test("folder: watch reports changed files once after the debounce, including atomic replace", async (t) => {
  const { dir, provider, write } = setup(t);
  write("a", "1");
  write("b", "1");
  write("sub/c", "1");
  const seen: string[] = [];
  let notify: () => void = () => {};
  const stop = provider.watch!([ref("a"), ref("b"), ref("sub/c"), ref("later")], (r) => {
    seen.push(r.path);
    notify();
  });
  t.after(stop);
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150));
  const next = (): Promise<void> => new Promise((r) => (notify = () => setTimeout(r, 100)));

  let changed = next();
  write("a", "22");
  write("a", "333");
  await changed;
  await settle();
  assert.deepEqual(seen, ["a"]);

  changed = next();
  writeFileSync(join(dir, ".tmp"), "new", { mode: 0o600 });
  renameSync(join(dir, ".tmp"), join(dir, "sub", "c"));
  await changed;
  assert.deepEqual(seen, ["a", "sub/c"]);

  changed = next();
  write("later", "x");
  await changed;
  changed = next();
  rmSync(join(dir, "b"));
  await changed;
  assert.deepEqual(seen, ["a", "sub/c", "later", "b"]);

  stop();
  write("a", "after stop");
  await settle();
  assert.deepEqual(seen, ["a", "sub/c", "later", "b"]);
});
