/**
 * The README's two-minute tour works as written: its commands, pasted in order into a fresh
 * shell of a user who has never run coffer, all succeed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers.ts";
import { CLI, userEnv } from "./run-cli.ts";

const README = fileURLToPath(new URL("../../README.md", import.meta.url));

/** The `$ ` command lines of the first ```sh block after the heading "## A two-minute tour". */
function tourCommands(): string[] {
  const text = readFileSync(README, "utf8");
  const start = text.indexOf("## A two-minute tour");
  assert.ok(start >= 0, "the README has its tour");
  const block = /```sh\n([\s\S]*?)\n```/.exec(text.slice(start));
  assert.ok(block !== null, "the tour is a ```sh block");
  return block[1]!.split("\n").filter((l) => l.startsWith("$ ")).map((l) => l.slice(2));
}

test("the README tour's commands succeed as written, in order, for a fresh user (nothing initialised, no variables set)", (t) => {
  const home = tempDir(t, "coffer-tour-");
  const commands = tourCommands();
  assert.ok(commands.some((c) => c.includes("coffer set")), "the tour sets a secret");
  let ran = 0;
  for (const command of commands) {
    // --prompt asks on a terminal: that path has its own tests (cli.test.ts)
    if (command.includes("--prompt")) continue;
    assert.match(command, /^(printf '%s' '[^']*' \| )?npx coffer /, `a tour line runs coffer: ${command}`);
    const r = spawnSync("/bin/sh", ["-c", `coffer() { "$COFFER_NODE" "$COFFER_CLI" "$@"; }\n${command.replace("npx coffer", "coffer")}`], {
      env: userEnv(home, { COFFER_NODE: process.execPath, COFFER_CLI: CLI }),
      input: "",
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `\`${command}\` failed: ${r.stderr}`);
    ran++;
  }
  assert.ok(ran >= 10, `ran ${ran} commands`);
});

