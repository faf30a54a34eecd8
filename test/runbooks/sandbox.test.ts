/**
 * The bubblewrap sandbox (`isolation: sandbox`), with the real bwrap, as root (issue 13, "Done
 * when"): each attack test is named after what it prevents. A missing or broken bubblewrap fails
 * these tests; it never skips them.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { randomBytes } from "node:crypto";
import { bwrapArgs, bwrapPath, resetSandboxProbe, sandboxProblem, sandboxRunner, NOBODY } from "../../src/runbooks/sandbox.ts";
import { tempDir } from "../helpers.ts";
import { baseFor, eventually, gone, groupMembers, pidsWithCmdline, run, start, type TestSpec } from "./exec-helpers.ts";

const SECRET = "sandboxed-secret-7d41";

/** Runs `script` in the sandbox. */
const boxed = (spec: TestSpec) => run({ isolation: "sandbox", ...spec });

test("these tests run as root with a working bubblewrap", async () => {
  assert.equal(process.getuid?.(), 0, "the sandbox tests run as root (the server's worst case)");
  assert.ok(bwrapPath() !== undefined, "bwrap is installed (Debian package bubblewrap)");
  resetSandboxProbe();
  assert.equal(await sandboxProblem(), undefined);
  assert.equal(await sandboxProblem({ uid: 40000, gid: 40000 }), undefined);
});

test("bwrapArgs: every namespace and capability dropped, no value and no environment on the argv, /etc only by safe entries", () => {
  const args = bwrapArgs({ dir: "/srv/x/1-abc", command: ["/bin/sh", "/srv/x/1-abc/.runbook/script"] });
  for (const a of ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]) assert.ok(args.includes(a), a);
  assert.deepEqual(args.slice(args.indexOf("--cap-drop"), args.indexOf("--cap-drop") + 2), ["--cap-drop", "ALL"]);
  assert.ok(!args.includes("--setenv") && !args.includes("--clearenv") && !args.includes("--share-net"));
  assert.ok(!args.includes("--new-session"), "the executor's detached spawn already gives a new session without a terminal");
  const bound = args.flatMap((a, i) => (a === "--ro-bind" || a === "--bind" ? [args[i + 2] as string] : []));
  assert.ok(!bound.includes("/etc"), "all of /etc would show /etc/shadow");
  assert.ok(bound.every((b) => !b.startsWith("/etc/shadow") && !b.startsWith("/etc/gshadow") && !b.startsWith("/etc/ssl/private")));
  assert.ok(bound.includes("/etc/passwd"));
  assert.deepEqual(args.slice(-14), [
    "--bind", "/srv/x/1-abc", "/srv/x/1-abc", "--remount-ro", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/",
    "--chdir", "/srv/x/1-abc", "--", "/bin/sh", "/srv/x/1-abc/.runbook/script",
  ]);
});

test("bwrapArgs: a hidden path below a bound one is covered after the bind; a hidden /etc entry is not bound; hiding /usr is refused", () => {
  const args = bwrapArgs({ dir: "/srv/x/1-abc", command: ["/bin/true"], hide: ["/usr/share/doc", "/etc/hosts", "/nonexistent/data"] });
  const usr = args.indexOf("/usr");
  const cover = args.indexOf("/usr/share/doc");
  assert.ok(usr > 0 && cover > usr && args[cover - 1] === "--tmpfs");
  assert.ok(!args.includes("/etc/hosts"));
  assert.ok(!args.some((a) => a.startsWith("/nonexistent")), "a path that is not bound needs no cover");
  assert.throws(() => bwrapArgs({ dir: "/srv/x/1-abc", command: ["/bin/true"], hide: ["/"] }), { code: "E_INVALID_VALUE" });
  assert.throws(() => bwrapArgs({ dir: "/srv/x/1-abc", command: ["/bin/true"], hide: ["relative"] }), { code: "E_INVALID_VALUE" });
});

test("a sandboxed script gets its param, its secret masked, its file, and none of the server's environment", async (t) => {
  process.env.COFFER_CANARY_SANDBOX = "canary-sbx-1";
  t.after(() => delete process.env.COFFER_CANARY_SANDBOX);
  const baseDir = baseFor(t);
  const { result, output, dir } = await boxed({ baseDir, script: 'echo "p=$P s=$S"; cat "$F"; echo; pwd; env | sort', params: { P: "plain" }, secrets: { S: Buffer.from(SECRET) }, files: { F: Buffer.from("file-in-sandbox-c0ffee") } });
  assert.equal(result.status, "succeeded", output);
  assert.ok(output.startsWith(`p=plain s=***\n***\n${dir}\n`), output);
  assert.ok(!output.includes(SECRET) && !output.includes("file-in-sandbox") && !output.includes("canary"), output);
  assert.ok(output.includes(`HOME=${dir}\n`) && output.includes("PATH=/usr/local/bin:/usr/bin:/bin\n"));
  assert.ok(!existsSync(dir));
});

test("a secret never appears on bubblewrap's command line or any other of the sandbox's processes", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ isolation: "sandbox", baseDir, script: "echo ready; sleep 600", secrets: { S: Buffer.from(SECRET) } });
  await r.waitFor("ready");
  const members = groupMembers(r.exec.pid);
  assert.ok(members.length >= 3, "bwrap, its init and the script");
  assert.ok(members.some((m) => m.cmdline.toString().startsWith(`${bwrapPath()}\0`)));
  for (const m of members) assert.ok(!m.cmdline.includes(SECRET), m.cmdline.toString());
  r.exec.stop("cancelled");
  assert.equal((await r.done).status, "cancelled");
});

test("a sandboxed script started by a root server never runs as host root (it could rewrite /proc/sys/kernel/core_pattern)", async (t) => {
  const baseDir = baseFor(t);
  // Writing back the value it reads: harmless even where it succeeds.
  const r = await start({
    isolation: "sandbox",
    baseDir,
    script: 'cat /proc/sys/kernel/core_pattern > cp; if cat cp > /proc/sys/kernel/core_pattern; then echo sysctl-written; else echo sysctl-refused; fi; echo ready; sleep 600',
  });
  await r.waitFor("ready");
  assert.ok(r.output().includes("sysctl-refused"), r.output());
  for (const m of groupMembers(r.exec.pid)) {
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${m.pid}/status`, "utf8"))?.[1];
    assert.equal(Number(uid), NOBODY.uid, `process ${m.pid} (${m.cmdline.toString()}) runs as host uid ${uid}`);
  }
  assert.equal(statSync(r.exec.dir).uid, NOBODY.uid);
  r.exec.stop("cancelled");
  await r.done;
});

test("a sandboxed script cannot connect to a port listening on the host's 127.0.0.1 (no network but its own loopback)", async (t) => {
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.end("hello from the host\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const script = `if exec 3<>/dev/tcp/127.0.0.1/${port}; then echo connected; head -n1 <&3; else echo refused; fi; ip -o link 2>/dev/null | cut -d: -f2 | tr -d ' ' | sort | tr '\\n' ' '`;
  const baseDir = baseFor(t);
  // The same script without the sandbox does connect: the test can tell.
  const open = await run({ baseDir, script, shell: "/bin/bash" });
  assert.ok(open.output.startsWith("connected\nhello from the host\n"), open.output);
  assert.equal(connections, 1);
  const boxedRun = await boxed({ baseDir, script, shell: "/bin/bash" });
  assert.ok(boxedRun.output.startsWith("refused\n") || boxedRun.output.includes("refused\n"), boxedRun.output);
  assert.ok(!boxedRun.output.includes("hello from the host"));
  assert.equal(connections, 1);
});

test("a sandboxed script cannot write outside its dir: /usr is read-only; /etc, /tmp, / and the base are not the host's", async (t) => {
  const baseDir = baseFor(t);
  const tag = `coffer-sbx-${randomBytes(4).toString("hex")}`;
  const script = [
    `for p in /usr/${tag} /usr/local/${tag} /etc/${tag} /tmp/${tag} /${tag} ../${tag} ${baseDir}/${tag}; do if echo x > "$p"; then echo "wrote $p"; else echo "refused $p"; fi; done 2>/dev/null`,
    "echo mine > own && echo own-written",
  ].join("\n");
  const { output } = await boxed({ baseDir, script });
  assert.ok(output.includes(`refused /usr/${tag}`) && output.includes(`refused /usr/local/${tag}`), output);
  assert.ok(output.includes("own-written"));
  for (const p of [`/usr/${tag}`, `/usr/local/${tag}`, `/etc/${tag}`, `/tmp/${tag}`, `/${tag}`, join(baseDir, tag), join(baseDir, "..", tag)]) {
    assert.ok(!existsSync(p), `${p} was written on the host`);
  }
});

test("a sandboxed script cannot see the host's /tmp, /etc/shadow, /etc/ssl/private or /root", async (t) => {
  const canary = `/tmp/coffer-sbx-canary-${randomBytes(4).toString("hex")}`;
  writeFileSync(canary, "host tmp file\n", { mode: 0o644 });
  t.after(() => rmSync(canary, { force: true }));
  const baseDir = baseFor(t);
  const { output } = await boxed({ baseDir, script: `for p in ${canary} /etc/shadow /etc/gshadow /etc/ssl/private /root /var /home; do test -e "$p" && echo "sees $p" || echo "no $p"; done` });
  assert.equal(output, [canary, "/etc/shadow", "/etc/gshadow", "/etc/ssl/private", "/root", "/var", "/home"].map((p) => `no ${p}\n`).join(""));
});

test("a sandboxed script cannot remount /usr read-write (no capability, even as root's child)", async (t) => {
  const baseDir = baseFor(t);
  // mount(2) itself, not mount(8) (which refuses non-root users on its own): MS_REMOUNT|MS_BIND = 4128.
  const sysMount = process.arch === "arm64" ? 40 : 165;
  const script = [
    `perl -e 'my ($s, $t) = ("none", "/usr"); syscall(${sysMount}, $s, $t, 0, 4128, 0) == 0 ? print "remounted\\n" : print "remount-refused: ", ($!+0), "\\n"'`,
    "mount -o remount,rw /usr 2>/dev/null && echo mount8-ok || echo mount8-refused",
    "touch /usr/coffer-remount-x 2>/dev/null && echo usr-written || echo usr-read-only",
    "grep CapEff /proc/self/status",
  ].join("\n");
  const { output } = await boxed({ baseDir, script });
  assert.ok(output.includes("remount-refused: 1\n"), output); // EPERM
  assert.ok(output.includes("mount8-refused") && output.includes("usr-read-only"), output);
  assert.ok(output.includes("CapEff:\t0000000000000000"), output);
  assert.ok(!existsSync("/usr/coffer-remount-x"));
});

test("a sandboxed script cannot make a user namespace to regain capabilities", async (t) => {
  const baseDir = baseFor(t);
  const { output } = await boxed({ baseDir, script: "unshare -U -r true 2>/dev/null && echo userns-made || echo userns-refused" });
  assert.equal(output, "userns-refused\n");
});

test("a sandboxed script cannot read a directory it is told to hide, nor a hidden path below /usr", async (t) => {
  const host = tempDir(t, "coffer-data-");
  chmodSync(host, 0o755);
  const data = join(host, "data");
  mkdirSync(data, { mode: 0o755 });
  writeFileSync(join(data, "master.key"), "the-master-key\n", { mode: 0o644 });
  const baseDir = baseFor(t);
  const script = `cat ${data}/master.key 2>/dev/null || echo no-key; ls -A /usr/share/doc | wc -l`;
  // Without the sandbox, the script reads it (tempdir mode cannot hide anything).
  const open = await run({ baseDir, script });
  assert.ok(open.output.startsWith("the-master-key\n"), open.output);
  assert.ok(readdirSync("/usr/share/doc").length > 0);
  const { output } = await boxed({ baseDir, script, hide: [data, "/usr/share/doc"] });
  assert.equal(output, "no-key\n0\n");
});

test("a sandboxed script sees only its own processes, not the host's", async (t) => {
  const baseDir = baseFor(t);
  const { output } = await boxed({ baseDir, script: "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; tr '\\0' ' ' < /proc/1/cmdline" });
  const [pids = "", init = ""] = output.split("\n");
  const visible = pids.trim().split(" ").map(Number);
  assert.ok(visible.length > 0 && visible.length < 8, output);
  assert.ok(visible.every((p) => p < 20), output);
  assert.match(init, /^\S*bwrap /, `pid 1 in the sandbox is bubblewrap's init, not the host's: ${init}`);
  assert.ok(!visible.includes(process.pid) || process.pid < 20);
});

test("nothing of a sandboxed script survives it, not even a process that called setsid", async (t) => {
  const baseDir = baseFor(t);
  const marker = String(6000 + Math.floor(Math.random() * 999));
  const { result } = await boxed({ baseDir, script: `setsid sleep ${marker} & while ! ps -eo args | grep -q "^sleep ${marker}"; do sleep 0.05; done; echo started` });
  assert.equal(result.status, "succeeded");
  await eventually(() => pidsWithCmdline(`sleep ${marker}`).length === 0, `no sleep ${marker} is left on the host`);
});

test("a sandboxed script on timeout gets SIGTERM first (it may clean up), then nothing of it is left", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ isolation: "sandbox", baseDir, timeoutMs: 1500, script: 'trap "echo got TERM; exit 7" TERM; sleep 600 & echo ready; wait' });
  await r.waitFor("ready");
  const members = groupMembers(r.exec.pid).map((m) => m.pid);
  const result = await r.done;
  assert.equal(result.status, "timed-out");
  assert.equal(result.exitCode, 7);
  assert.ok(r.output().includes("got TERM"), r.output());
  await eventually(() => members.every(gone), "every process of the sandbox is gone");
  assert.ok(!existsSync(r.exec.dir));
});

test("a sandboxed run's files (made by the sandbox's uid, some unreadable) are removed, and cancel works", async (t) => {
  const baseDir = baseFor(t);
  const r = await start({ isolation: "sandbox", baseDir, script: "mkdir -p a/b; echo x > a/b/f; chmod 000 a/b a; ln -s / root; echo ready; sleep 600" });
  await r.waitFor("ready");
  assert.ok(existsSync(join(r.exec.dir, "a")));
  r.exec.stop("interrupted");
  const result = await r.done;
  assert.equal(result.status, "interrupted");
  assert.ok(!existsSync(r.exec.dir));
  assert.deepEqual(readdirSync(baseDir), []);
});

test("runAs in sandbox mode: bubblewrap runs as that user, owner of the dir; inside, the script is uid 65534", async (t) => {
  const baseDir = baseFor(t);
  const runAs = { uid: 40000, gid: 40000 };
  assert.deepEqual(sandboxRunner(runAs), runAs);
  const r = await start({ isolation: "sandbox", baseDir, runAs, script: "id -u; echo ready; sleep 600" });
  await r.waitFor("ready");
  assert.equal(r.output(), "65534\nready\n");
  assert.equal(statSync(r.exec.dir).uid, 40000);
  for (const m of groupMembers(r.exec.pid)) {
    assert.equal(Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${m.pid}/status`, "utf8"))?.[1]), 40000);
  }
  r.exec.stop("cancelled");
  await r.done;
  assert.ok(!existsSync(r.exec.dir));
});

test("where bubblewrap cannot make a user namespace (as under RestrictNamespaces=yes), a sandbox runbook is refused saying why", async (t) => {
  const { spawnSync } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const src = fileURLToPath(new URL("../../src/runbooks/", import.meta.url));
  const work = tempDir(t, "coffer-no-userns-");
  // The server's side, run as uid 1000 in a namespace that may not make another one: the probe,
  // then the catalog of a dir that process owns, with one sandbox and one tempdir runbook.
  const script = join(work, "probe.ts");
  writeFileSync(script, `
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const { sandboxProblem } = await import(${JSON.stringify(join(src, "sandbox.ts"))});
    const { RunbookCatalog } = await import(${JSON.stringify(join(src, "catalog.ts"))});
    const problem = await sandboxProblem();
    const rb = ${JSON.stringify(join(work, "rb"))};
    mkdirSync(rb, { mode: 0o755 });
    writeFileSync(rb + "/boxed.yml", "description: boxed\\nisolation: sandbox\\nrun: \\"true\\"\\n", { mode: 0o644 });
    writeFileSync(rb + "/plain.yml", "description: plain\\nrun: \\"true\\"\\n", { mode: 0o644 });
    const catalog = new RunbookCatalog({ dir: rb, sandboxProblem: () => problem });
    catalog.load();
    console.log(JSON.stringify({ problem, entries: catalog.list().map((e) => ({ name: e.name, valid: e.valid, problems: e.valid ? [] : e.problems })) }));
  `);
  chmodSync(work, 0o755);
  chmodSync(script, 0o644);
  const r = spawnSync(bwrapPath()!, [
    // No tmpfs on /tmp: the checkout (and the node binary in it) may live there.
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", work, work,
    "--unshare-user", "--uid", "1000", "--gid", "1000", "--disable-userns", "--", process.execPath, script,
  ], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { problem: string; entries: { name: string; valid: boolean; problems: string[] }[] };
  assert.match(out.problem, /cannot start a sandbox here/);
  assert.match(out.problem, /RestrictNamespaces/);
  const boxedEntry = out.entries.find((e) => e.name === "boxed")!;
  assert.equal(boxedEntry.valid, false);
  assert.ok(boxedEntry.problems.some((p) => p.includes("cannot start a sandbox here")), boxedEntry.problems.join("\n"));
  assert.equal(out.entries.find((e) => e.name === "plain")!.valid, true);
});
