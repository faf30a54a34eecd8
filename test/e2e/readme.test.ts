/**
 * Every ```sh block of README.md works as written, so the README cannot drift from coffer.
 *
 * The convention (README.md says it too, in a comment above "## Install"):
 * - Each "## " section runs in a fresh temp HOME and working directory; its blocks share them,
 *   in order, as a reader following that section would.
 * - In a block with prompts, each `$ ` line is a command, run with `sh -c`; the other lines are
 *   its output (not compared: ids, times and keys differ each run). `name$ ` runs as the user
 *   `name`, with a HOME of its own (same working directory). A line ending in `\` goes on.
 * - A block without prompts is one shell script, run with `sh -e` (heredocs work).
 * - `coffer` is the built CLI (dist/bundle/bin.js on the repo's Node 24), first on PATH.
 * - A ```yaml block whose first line is a comment naming a file (`# server.yml: …`) is written
 *   to that file in its section's directory before the section's commands run.
 * - A `$ coffer serve …` line (never one in a script block: it would not end) starts the server in
 *   the background on a free loopback port, waits until it serves, and stops it at the end; in
 *   the section's later commands, `127.0.0.1:8200` and `localhost:8200` mean that port.
 * - `<!-- before: COMMAND -->` on the line just before a fence runs COMMAND first (sh -ec, as
 *   the section's default user): the block's setup, which a reader has done in their own way.
 * - A block that cannot run has, on the line just before its fence, `<!-- not run: WHY -->`.
 * Every command must exit 0; stdin is empty.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers.ts";
import { CLI, userEnv, whenServing } from "./run-cli.ts";

const README = fileURLToPath(new URL("../../README.md", import.meta.url));

interface Command {
  /** whose HOME: the name before `$`, or "" for a bare `$ ` and a whole script */
  user: string;
  text: string;
  /** a whole block without prompts: run with sh -e */
  script: boolean;
  line: number;
}

/** A ```yaml block to write as a file of its section. */
interface YamlFile {
  section: string;
  name: string;
  text: string;
}

interface Block {
  section: string;
  line: number;
  /** the reason given in `<!-- not run: … -->`, if any */
  notRun?: string;
  commands: Command[];
}

const PROMPT = /^([a-z][\w-]*)?\$ +(.*)$/;
const NOT_RUN = /^<!-- not run: (.+) -->$/;
const BEFORE = /^<!-- before: (.+) -->$/;

/** The ```sh blocks of `markdown`, with their section, their commands, and any not-run reason. */
function shBlocks(markdown: string, files: YamlFile[] = []): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("## ")) section = line.slice(3).trim();
    if (!/^```/.test(line)) continue;
    const open = i;
    let close = i + 1;
    while (close < lines.length && !/^```\s*$/.test(lines[close]!)) close++;
    i = close;
    const body = lines.slice(open + 1, close);
    const file = /^# ([\w.-]+\.ya?ml)(:|\s*$)/.exec(body[0] ?? "");
    if (lines[open]!.trim() === "```yaml" && file !== null) files.push({ section, name: file[1]!, text: `${body.join("\n")}\n` });
    if (lines[open]!.trim() !== "```sh") continue;
    const notRun = NOT_RUN.exec(lines[open - 1] ?? "")?.[1];
    const block: Block = { section, line: open + 1, commands: [], ...(notRun === undefined ? {} : { notRun }) };
    const before = BEFORE.exec(lines[open - 1] ?? "")?.[1];
    if (before !== undefined) block.commands.push({ user: "", text: before, script: true, line: open });
    if (body.some((l) => PROMPT.test(l))) {
      for (let j = 0; j < body.length; j++) {
        const m = PROMPT.exec(body[j]!);
        if (m === null) continue;
        const start = j;
        let text = m[2]!;
        while (text.endsWith("\\") && j + 1 < body.length) text = `${text.slice(0, -1)}${body[++j]!}`;
        block.commands.push({ user: m[1] ?? "", text, script: false, line: open + 2 + start });
      }
    } else {
      block.commands.push({ user: "", text: body.join("\n"), script: true, line: open + 2 });
    }
    blocks.push(block);
  }
  return blocks;
}

test("the README's ```sh blocks are found with their sections, prompts, users, continued lines and not-run reasons", () => {
  const md = [
    "## A", "```sh", "$ coffer init   # note", "output", "bob$ coffer get \\", "  x", "```",
    "## B", "<!-- not run: needs a server -->", "```sh", "coffer serve", "```",
    "<!-- before: coffer init -->", "```sh", "$ coffer list", "```",
    "```yaml", "a: 1", "```", "```sh", "cat > f <<'EOF'", "a: 1", "EOF", "```",
  ].join("\n");
  const blocks = shBlocks(md);
  assert.deepEqual(blocks.map((b) => [b.section, b.notRun, b.commands.map((c) => [c.user, c.text, c.script])]), [
    ["A", undefined, [["", "coffer init   # note", false], ["bob", "coffer get   x", false]]],
    ["B", "needs a server", [["", "coffer serve", true]]],
    ["B", undefined, [["", "coffer init", true], ["", "coffer list", false]]],
    ["B", undefined, [["", "cat > f <<'EOF'\na: 1\nEOF", true]]],
  ]);
});

test("every ```sh block of the README not marked `not run` succeeds as written, each section in a fresh HOME", async (t) => {
  const root = tempDir(t, "coffer-readme-");
  // `coffer` on PATH: the built CLI on this Node (24), as `npm install -g` would give; `serve`
  // listens on a free loopback port instead of the README's 8200
  const bin = join(root, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "coffer"), `#!/bin/sh\nif [ "$1" = serve ]; then set -- "$@" --listen 127.0.0.1:0; fi\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(bin, "coffer"), 0o755);
  const PATH = `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`;

  const files: YamlFile[] = [];
  const blocks = shBlocks(readFileSync(README, "utf8"), files);
  const sections = new Map<string, { dir: string; homes: Map<string, string>; server?: string }>();
  let ran = 0;
  let served = 0;
  const ranSections = new Set<string>();
  for (const block of blocks) {
    if (block.notRun !== undefined) {
      assert.ok(block.notRun.length > 10, `README.md:${block.line}: say why it is not run`);
      continue;
    }
    let state = sections.get(block.section);
    if (state === undefined) {
      const dir = join(root, `section-${sections.size}`);
      mkdirSync(join(dir, "work"), { recursive: true });
      for (const f of files.filter((y) => y.section === block.section)) writeFileSync(join(dir, "work", f.name), f.text);
      state = { dir, homes: new Map() };
      sections.set(block.section, state);
    }
    for (const command of block.commands) {
      let home = state.homes.get(command.user);
      if (home === undefined) {
        home = join(state.dir, `home-${command.user || "you"}`);
        mkdirSync(home, { mode: 0o700 });
        state.homes.set(command.user, home);
      }
      const server: string | undefined = state.server;
      const text: string = server === undefined ? command.text : command.text.replace(/\b(127\.0\.0\.1|localhost):8200\b/g, server);
      const where = `README.md:${command.line} (${block.section})`;
      const cwd = join(state.dir, "work");
      const env = userEnv(home, { PATH });
      if (command.script) {
        // a server started in a script would never end, and the script with it
        const lines = text.split("\n");
        assert.ok(!lines.some((l: string) => /^coffer serve\b/.test(l)), `${where}: put \`coffer serve\` in a block with prompts`);
      }
      if (!command.script && /^coffer serve\b/.test(text)) {
        state.server = await startServer(t, text, cwd, env, where);
        served++;
        ran++;
        continue;
      }
      const r: { status: number | null; stderr: string } = spawnSync("/bin/sh", [command.script ? "-ec" : "-c", text], { cwd, env, input: "", encoding: "utf8" });
      assert.equal(r.status, 0, `${where}: \`${text}\` failed (exit ${r.status}): ${r.stderr}`);
      ran++;
    }
    ranSections.add(block.section);
  }
  for (const must of ["First steps", "A two-minute tour", "Backup and restore", "The team server"]) assert.ok(ranSections.has(must), `the section "${must}" ran`);
  assert.ok(served >= 1, "a coffer serve ran");
  assert.ok(ran >= 20, `ran ${ran} commands`);
});

/** Starts `$ coffer serve …` in the background; gives the host:port it serves on once it does. */
async function startServer(t: TestContext, text: string, cwd: string, env: Record<string, string>, where: string): Promise<string> {
  const child = spawn("/bin/sh", ["-c", `exec ${text}`], { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
  const { url } = await whenServing(t, child, `${where}: \`${text}\``);
  return new URL(url).host;
}
