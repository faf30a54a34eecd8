/**
 * `coffer completion bash|zsh|fish` and the hidden `coffer __complete` its scripts call, run
 * through the real shells with a `coffer` on PATH (a wrapper that runs the built CLI).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, cofferOk, userEnv } from "./run-cli.ts";

/** A HOME with an identity, a store holding app/db, app/key and other/x, a `coffer` on PATH and a project dir. */
function setup(t: TestContext) {
  const home = tempDir(t);
  const bin = join(home, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "coffer"), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
  cofferOk(home, ["init"]);
  for (const name of ["app/db", "app/key", "other/x"]) cofferOk(home, ["set", name], "value-not-for-completion");
  const project = join(home, "project");
  mkdirSync(project);
  writeFileSync(join(project, ".coffer.yml"), "environments:\n  dev:\n    env:\n      DB: app/db\n  prod:\n    env:\n      DB: app/key\n");
  const env = userEnv(home, { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` });
  /** Runs `shell -c script` as that user, in the project dir. */
  const shell = (sh: string, script: string, extra: Record<string, string> = {}) => {
    const r = spawnSync(sh, ["-c", script], { env: { ...env, ...extra }, cwd: project, encoding: "utf8", input: "" });
    if (r.error) throw r.error;
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const complete = (...words: string[]) => coffer(home, ["__complete", ...words], { cwd: project });
  return { home, project, shell, complete };
}

// COMPREPLY after bash runs the completion function on COMP_WORDS with the cursor in the last word.
const bashCompletes = (words: string[]) =>
  `source <(coffer completion bash) && COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}) && COMP_CWORD=${words.length - 1} && _coffer && printf '%s\\n' "\${COMPREPLY[@]}"`;

test("bash: sourcing `coffer completion bash` registers the completion for coffer", (t) => {
  const { shell } = setup(t);
  const r = shell("bash", "source <(coffer completion bash); complete -p coffer");
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "complete -F _coffer coffer\n");
  assert.equal(r.err, "");
});

test("`coffer get app/` completes to the local store's names under app/, through __complete and through bash's COMPREPLY", (t) => {
  const { home, shell, complete } = setup(t);
  const audit = cofferOk(home, ["audit", "--json"]);
  const r = complete("get", "app/");
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "app/db\napp/key\n");
  assert.equal(r.err, "");
  const bash = shell("bash", bashCompletes(["coffer", "get", "app/"]));
  assert.equal(bash.code, 0, bash.err);
  assert.equal(bash.out, "app/db\napp/key\n");
  assert.equal(complete("rm", "").out, "app/db\napp/key\nother/x\n");
  // names only, read without the identity: no value anywhere, no audit record written
  assert.ok(!r.out.includes("value-not-for-completion") && !bash.out.includes("value-not-for-completion"));
  assert.equal(cofferOk(home, ["audit", "--json"]), audit);
});

test("secret names complete with a passphrase-protected identity without asking for it", (t) => {
  const home = tempDir(t);
  const pass = join(home, "pass");
  writeFileSync(pass, "a long passphrase\n", { mode: 0o600 });
  assert.equal(coffer(home, ["init", "--passphrase"], { env: { COFFER_PASSPHRASE_FILE: pass } }).code, 0);
  assert.equal(coffer(home, ["set", "app/db"], { env: { COFFER_PASSPHRASE_FILE: pass }, input: "v" }).code, 0);
  const r = coffer(home, ["__complete", "get", "a"]); // no passphrase file: opening the identity would fail
  assert.deepEqual([r.code, r.out, r.err], [0, "app/db\n", ""]);
});

test("completion offers nothing, silently, from a store others can read or with --server, and names the --store given", (t) => {
  const { home, complete } = setup(t);
  const other = join(home, "other.db");
  cofferOk(home, ["init", "--store", other]);
  cofferOk(home, ["set", "--store", other, "team/token"], "v");
  assert.equal(complete("get", "--store", other, "").out, "team/token\n");
  assert.equal(complete("get", "--server", "https://coffer.example.com", "app/").out, "");
  chmodSync(join(home, ".local", "share", "coffer", "store.db"), 0o644);
  const r = complete("get", "app/");
  assert.deepEqual([r.code, r.out, r.err], [0, "", ""]);
});

test("`coffer run --env ` completes the environments of the project file, as -e and --env=; an untrusted file offers none", (t) => {
  const { project, shell, complete } = setup(t);
  assert.equal(complete("run", "--env", "").out, "dev\nprod\n");
  assert.equal(complete("load", "-e", "p").out, "prod\n");
  assert.equal(complete("run", "--env=d").out, "--env=dev\n");
  const bash = shell("bash", bashCompletes(["coffer", "run", "--env", ""]));
  assert.equal(bash.out, "dev\nprod\n", bash.err);
  // bash splits --env=p into --env, =, p
  assert.equal(shell("bash", bashCompletes(["coffer", "run", "--env", "=", "p"])).out, "prod\n");
  chmodSync(join(project, ".coffer.yml"), 0o666); // others can write it: coffer run would refuse it
  const r = complete("run", "--env", "");
  assert.deepEqual([r.code, r.out, r.err], [0, "", ""]);
});

test("commands, two-word commands and each command's own flags (the ones its --help lists) complete", (t) => {
  const { home, complete } = setup(t);
  const firsts = complete("").out.split("\n");
  for (const w of ["init", "get", "token", "rotation", "doctor", "completion"]) assert.ok(firsts.includes(w), w);
  assert.ok(!firsts.includes("__complete"));
  assert.equal(complete("rotation", "s").out, "set\nshow\n");
  assert.equal(complete("token", "c").out, "create\n");
  assert.equal(complete("completion", "").out, "bash\nzsh\nfish\n");
  for (const cmd of [["get"], ["run"], ["token", "create"]]) {
    const help = cofferOk(home, [...cmd, "--help"]);
    const listed = [...help.matchAll(/^ {2}(?:-\w, | {4})(--[\w-]+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(complete(...cmd, "--").out.trim().split("\n").sort(), listed, cmd.join(" "));
  }
  assert.equal(complete("get", "--json", "--j").out, "", "a flag given once is not offered again");
  assert.equal(complete("run", "-e", "dev", "").out, "--\n");
  assert.equal(complete("run", "--", "").out, ":command\n");
  assert.equal(complete("set", "--from-file", "").out, ":file\n");
});

test("zsh: the script parses, registers with compinit, and its function offers names and environments (compadd stubbed)", (t) => {
  const { shell } = setup(t);
  const r = shell("zsh", [
    "compdef() { :; }",
    "compadd() { while [[ $1 == -* ]]; do [[ $1 == -- ]] && { shift; break; }; shift; done; print -l -- \"$@\"; }",
    "source <(coffer completion zsh)",
    "words=(coffer get app/); CURRENT=3; _coffer",
    "words=(coffer run --env ''); CURRENT=4; _coffer",
  ].join("\n"));
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "app/db\napp/key\ndev\nprod\n");
  assert.equal(shell("zsh", "zsh -n <(coffer completion zsh)").code, 0);
  const registered = shell("zsh", "autoload -Uz compinit && compinit -u -D && source <(coffer completion zsh) && print -r -- $_comps[coffer]");
  assert.deepEqual([registered.code, registered.out], [0, "_coffer\n"], registered.err);
});

test("fish: the script parses and fish completes secret names, environments and commands with it", (t) => {
  const { shell } = setup(t);
  assert.equal(shell("fish", "coffer completion fish | fish -n").code, 0);
  const r = shell("fish", [
    "coffer completion fish | source",
    "complete -C'coffer get app/'",
    "complete -C'coffer run --env '",
    "complete -C'coffer rotation s'",
  ].join("; "));
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, "app/db\napp/key\ndev\nprod\nset\nshow\n");
});

test("coffer completion with no or an unknown shell is a usage error", (t) => {
  const home = tempDir(t);
  for (const args of [["completion"], ["completion", "powershell"]]) {
    const r = coffer(home, args);
    assert.equal(r.code, 2);
    assert.equal(r.err, "coffer: usage: coffer completion bash|zsh|fish\n");
  }
});
