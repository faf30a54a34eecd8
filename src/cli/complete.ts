/**
 * Shell completion's engine, behind the hidden `coffer __complete WORDS… CURRENT` that the scripts
 * of `coffer completion` call (as cobra- and clap-based tools do): the candidates come from the one
 * command table (main.ts) and each command's own flags, so the scripts never go stale. Only the
 * command being completed is loaded. It prints one candidate a line, or one directive line the
 * script acts on: `:file` (the shell's file completion) or `:command` (command names, after
 * `coffer run --`). Secret names come from the local store without the identity (names only,
 * never a value, nothing audited); environment names from the project file `coffer run` would
 * use, only if it may be obeyed. Nothing here prompts or prints an error: what fails offers nothing.
 */
import type { Command, Completes, Flag } from "./command.ts";

/** One row of main.ts's command table, as completion needs it. */
export interface CompletionEntry {
  load: () => Promise<Command>;
}

/** Where completion runs. */
export interface CompletionContext {
  commands: Record<string, CompletionEntry>;
  globalFlags: Record<string, Flag>;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** The directives a script acts on instead of candidates. */
export const FILE_DIRECTIVE = ":file";
export const COMMAND_DIRECTIVE = ":command";

/**
 * The candidates for the last of `words` (the words after `coffer`, the last one being the word
 * under the cursor, possibly empty), filtered by what it starts with.
 */
export async function completions(words: readonly string[], ctx: CompletionContext): Promise<string[]> {
  if (words.length === 0) return [];
  let cur = words[words.length - 1]!;
  let before = words.slice(0, -1);
  // bash splits `--env=de` into `--env`, `=`, `de` (COMP_WORDBREAKS has `=`); its readline then
  // completes only `de`, so the value is completed as if `--env de` had been typed.
  if (cur === "=" && before.at(-1)?.startsWith("--") === true) {
    before = [...before, "="];
    cur = "";
  }
  if (before.at(-1) === "=" && before.at(-2)?.startsWith("--") === true) before = [...before.slice(0, -2), before.at(-2)!];

  const firsts = [...new Set(Object.keys(ctx.commands).map((k) => k.split(" ")[0]!))];
  if (before.length === 0) {
    return match(cur.startsWith("-") ? ["--help", "--version"] : [...firsts, "help"], cur);
  }
  if (before[0] === "help") return before.length === 1 ? match(firsts, cur) : [];

  const two = `${before[0]} ${before[1] ?? ""}`;
  const nameWords = ctx.commands[two] !== undefined ? 2 : ctx.commands[before[0]!] !== undefined ? 1 : 0;
  if (nameWords === 0) {
    if (before.length !== 1) return [];
    const subs = Object.keys(ctx.commands).filter((k) => k.startsWith(`${before[0]} `)).map((k) => k.split(" ")[1]!);
    return match(subs, cur);
  }
  const command = await ctx.commands[nameWords === 2 ? two : before[0]!]!.load();
  const rest = before.slice(nameWords);
  const flags = { ...command.flags, ...ctx.globalFlags };

  if (command.passthrough === true && rest.includes("--")) {
    return [rest.indexOf("--") === rest.length - 1 ? COMMAND_DIRECTIVE : FILE_DIRECTIVE];
  }
  const given = givenFlags(rest, flags);
  const last = rest.at(-1);
  const pending = last === undefined ? undefined : flagNamed(last, flags);
  if (pending !== undefined && pending.flag.type === "string" && !last!.includes("=")) {
    return values(pending.flag, cur, given, ctx);
  }
  if (cur.startsWith("--") && cur.includes("=")) {
    const eq = cur.indexOf("=");
    const named = flagNamed(cur.slice(0, eq), flags);
    if (named === undefined || named.flag.type !== "string") return [];
    const found = await values(named.flag, cur.slice(eq + 1), given, ctx);
    return found[0]?.startsWith(":") === true ? [] : found.map((v) => `${cur.slice(0, eq + 1)}${v}`);
  }
  if (cur.startsWith("-")) {
    const names = Object.entries(flags).filter(([n, f]) => f.multiple === true || !given.has(n)).map(([n]) => `--${n}`);
    return match(names, cur);
  }
  if (command.passthrough === true) return match(["--"], cur); // `coffer run <TAB>`: the command goes after --
  return command.completes === undefined ? [] : values({ type: "string", help: "", complete: command.completes }, cur, given, ctx);
}

/** The flag `word` names (`--name` or `-x`), if it is one of `flags`. */
function flagNamed(word: string, flags: Record<string, Flag>): { name: string; flag: Flag } | undefined {
  if (word.startsWith("--")) {
    const name = word.slice(2).split("=")[0]!;
    const flag = flags[name];
    return flag === undefined ? undefined : { name, flag };
  }
  if (/^-[A-Za-z]$/.test(word)) {
    const found = Object.entries(flags).find(([, f]) => f.short === word.slice(1));
    return found === undefined ? undefined : { name: found[0], flag: found[1] };
  }
  return undefined;
}

/** The flags given so far, with their values (the last one given, for a string flag). */
function givenFlags(rest: readonly string[], flags: Record<string, Flag>): Map<string, string | true> {
  const given = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i]!;
    const named = flagNamed(word, flags);
    if (named === undefined) continue;
    if (named.flag.type === "boolean") given.set(named.name, true);
    else if (word.includes("=")) given.set(named.name, word.slice(word.indexOf("=") + 1));
    else if (i + 1 < rest.length) given.set(named.name, rest[++i]!);
  }
  return given;
}

// What a string flag's value (or a positional) completes to: its `complete`, else the shell's file
// completion for a flag whose placeholder names a file or directory.
async function values(flag: Flag, cur: string, given: Map<string, string | true>, ctx: CompletionContext): Promise<string[]> {
  const kind: Completes | undefined = flag.complete ?? (flag.arg !== undefined && /^(F|FILE|D|DIR)$/.test(flag.arg) ? "file" : undefined);
  if (kind === undefined) return [];
  if (kind === "file") return [FILE_DIRECTIVE];
  if (typeof kind !== "string") return match(kind, cur);
  try {
    return match(kind === "secret" ? await secretNames(cur, given, ctx) : await environmentNames(given, ctx), cur);
  } catch {
    return []; // no store, a store of someone else's, no or an untrusted project file: nothing to offer
  }
}

// The local store's names; none when the command goes to a server (--server or COFFER_SERVER).
async function secretNames(prefix: string, given: Map<string, string | true>, ctx: CompletionContext): Promise<string[]> {
  if (given.has("server") || (ctx.env.COFFER_SERVER ?? "") !== "") return [];
  const { resolvePaths } = await import("../core/paths.ts");
  const { storeSecretNames } = await import("../store/names.ts");
  const store = given.get("store");
  return storeSecretNames(resolvePaths({ env: ctx.env, ...(typeof store === "string" && { store }) }).store, prefix);
}

// The environments of `--config F`, else of the project file found from here (as `coffer run`
// finds it), loaded with the same trust rule: a file someone else could have planted is not read.
async function environmentNames(given: Map<string, string | true>, ctx: CompletionContext): Promise<string[]> {
  const { findConfig, loadConfig } = await import("../config/load.ts");
  const config = given.get("config");
  const file = typeof config === "string" ? config : findConfig(ctx.cwd, { env: ctx.env });
  return [...loadConfig(file, { env: ctx.env }).environments.keys()];
}

function match(candidates: readonly string[], cur: string): string[] {
  return candidates.filter((c) => c.startsWith(cur) && !/[\n\r]/.test(c));
}
