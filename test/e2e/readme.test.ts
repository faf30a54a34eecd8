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
 * - A block that cannot run has, on the line just before its fence, `<!-- not run: WHY -->`.
 * Every command must exit 0; stdin is empty.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers.ts";
import { CLI, userEnv } from "./run-cli.ts";

const README = fileURLToPath(new URL("../../README.md", import.meta.url));

interface Command {
  /** whose HOME: the name before `$`, or "" for a bare `$ ` and a whole script */
  user: string;
  text: string;
  /** a whole block without prompts: run with sh -e */
  script: boolean;
  line: number;
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

/** The ```sh blocks of `markdown`, with their section, their commands, and any not-run reason. */
function shBlocks(markdown: string): Block[] {
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
    if (lines[open]!.trim() !== "```sh") continue;
    const body = lines.slice(open + 1, close);
    const notRun = NOT_RUN.exec(lines[open - 1] ?? "")?.[1];
    const block: Block = { section, line: open + 1, commands: [], ...(notRun === undefined ? {} : { notRun }) };
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
    "```yaml", "a: 1", "```", "```sh", "cat > f <<'EOF'", "a: 1", "EOF", "```",
  ].join("\n");
  const blocks = shBlocks(md);
  assert.deepEqual(blocks.map((b) => [b.section, b.notRun, b.commands.map((c) => [c.user, c.text, c.script])]), [
    ["A", undefined, [["", "coffer init   # note", false], ["bob", "coffer get   x", false]]],
    ["B", "needs a server", [["", "coffer serve", true]]],
    ["B", undefined, [["", "cat > f <<'EOF'\na: 1\nEOF", true]]],
  ]);
});

test("every ```sh block of the README not marked `not run` succeeds as written, each section in a fresh HOME", (t) => {
  const root = tempDir(t, "coffer-readme-");
  // `coffer` on PATH: the built CLI on this Node (24), as `npm install -g` would give
  const bin = join(root, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "coffer"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(bin, "coffer"), 0o755);
  const PATH = `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`;

  const blocks = shBlocks(readFileSync(README, "utf8"));
  const sections = new Map<string, { dir: string; homes: Map<string, string> }>();
  let ran = 0;
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
      const args = command.script ? ["-ec", command.text] : ["-c", command.text];
      const r = spawnSync("/bin/sh", args, { cwd: join(state.dir, "work"), env: userEnv(home, { PATH }), input: "", encoding: "utf8" });
      assert.equal(r.status, 0, `README.md:${command.line} (${block.section}): \`${command.text}\` failed (exit ${r.status}): ${r.stderr}`);
      ran++;
    }
    ranSections.add(block.section);
  }
  for (const must of ["First steps", "A two-minute tour"]) assert.ok(ranSections.has(must), `the section "${must}" ran`);
  assert.ok(ran >= 20, `ran ${ran} commands`);
});
