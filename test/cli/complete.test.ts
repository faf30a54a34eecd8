/**
 * The completion engine (src/cli/complete.ts) on a small command table: which words, flags and
 * values it offers, and the directives its scripts act on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Command, Flag } from "../../src/cli/command.ts";
import { completions, type CompletionContext } from "../../src/cli/complete.ts";

const command = (name: string, flags: Record<string, Flag>, extra: Partial<Command> = {}): Command => ({
  name, usage: "", examples: [name], flags, run: async () => {}, ...extra,
});

let loaded: string[] = [];
const table: CompletionContext["commands"] = Object.fromEntries([
  command("run", { env: { type: "string", short: "e", help: "", complete: ["dev", "prod"] }, mask: { type: "boolean", help: "" }, dir: { type: "string", arg: "D", help: "" } }, { passthrough: true }),
  command("token create", { role: { type: "string", multiple: true, help: "" }, ttl: { type: "string", arg: "DUR", help: "" } }),
  command("token list", { json: { type: "boolean", help: "" } }),
  command("completion", {}, { completes: ["bash", "zsh", "fish"] }),
].map((c) => [c.name, { load: async () => (loaded.push(c.name), c) }]));
const ctx: CompletionContext = { commands: table, globalFlags: { debug: { type: "boolean", help: "" } }, env: {}, cwd: "/" };
const complete = (...words: string[]) => completions(words, ctx);

test("the first word completes to the commands' first words (and help); a group's second word to its subcommands", async () => {
  assert.deepEqual(await complete(""), ["run", "token", "completion", "help"]);
  assert.deepEqual(await complete("-"), ["--help", "--version"]);
  assert.deepEqual(await complete("token", ""), ["create", "list"]);
  assert.deepEqual(await complete("help", "t"), ["token"]);
  assert.deepEqual(await complete("nope", ""), []);
});

test("only the command being completed is loaded", async () => {
  loaded = [];
  await complete("token", "create", "--");
  assert.deepEqual(loaded, ["token create"]);
});

test("flags: the command's and the global ones, once each unless multiple; a string flag's value from its complete", async () => {
  assert.deepEqual(await complete("token", "create", "--"), ["--role", "--ttl", "--debug"]);
  assert.deepEqual(await complete("token", "create", "--ttl", "1d", "--role", "a", "--"), ["--role", "--debug"]);
  assert.deepEqual(await complete("run", "-e", ""), ["dev", "prod"]);
  assert.deepEqual(await complete("run", "--env=p"), ["--env=prod"]);
  assert.deepEqual(await complete("token", "create", "--ttl", ""), [], "a value with nothing to offer");
  assert.deepEqual(await complete("completion", "z"), ["zsh"]);
});

test("bash's split of --env=p into --env, =, p completes the value alone", async () => {
  assert.deepEqual(await complete("run", "--env", "=", "p"), ["prod"]);
  assert.deepEqual(await complete("run", "--env", "="), ["dev", "prod"]);
});

test("directives: :file for a file or dir placeholder, :command right after run's --, :file after that", async () => {
  assert.deepEqual(await complete("run", "--dir", ""), [":file"]);
  assert.deepEqual(await complete("run", "--", ""), [":command"]);
  assert.deepEqual(await complete("run", "--", "ls", ""), [":file"]);
  assert.deepEqual(await complete("run", ""), ["--"]);
});
