/**
 * The `coffer` command: finds the command, lazy-loads only its module, parses its flags,
 * runs it, and maps any error to one line on stderr and a documented exit status. The only
 * place in coffer that decides the exit status.
 */
import { fstatSync, statSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { CofferError } from "../errors.ts";
import type { Command, Context, Flag } from "./command.ts";
import { printable } from "./io.ts";
import { quietSqliteWarning } from "./warnings.ts";

// Files coffer creates are private whatever the umask; the user's own umask is kept for the
// commands `coffer run` starts.
const USER_UMASK = process.umask(0o077);
quietSqliteWarning();

/**
 * Command words → the module exporting it, and the summary `--help` lists (also the first line of
 * the command's own help unless it has a longer `summary`). Listed here so `--help` loads nothing else.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  init: { summary: "create your identity and an empty store", load: async () => (await import("./commands/init.ts")).init },
  set: { summary: "write a new version of a secret", load: async () => (await import("./commands/set.ts")).set },
  get: { summary: "print a secret's value", load: async () => (await import("./commands/get.ts")).get },
  list: { summary: "list secrets (names and metadata, never values)", load: async () => (await import("./commands/list.ts")).list },
  rm: { summary: "remove a secret (history kept), or --purge every version; --version N deletes (or destroys) versions", load: async () => (await import("./commands/rm.ts")).rm },
  undelete: { summary: "bring back versions deleted with rm --version", load: async () => (await import("./commands/undelete.ts")).undelete },
  history: { summary: "list a secret's versions", load: async () => (await import("./commands/history.ts")).history },
  rollback: { summary: "write a new version holding an old version's value", load: async () => (await import("./commands/rollback.ts")).rollback },
  audit: { summary: "show the audit log", load: async () => (await import("./commands/audit.ts")).audit },
  "audit verify": { summary: "recompute the audit hash chain", load: async () => (await import("./commands/audit.ts")).auditVerify },
  "audit accept": { summary: "take a store that is older than its signed head, knowingly", load: async () => (await import("./commands/audit.ts")).auditAccept },
  card: { summary: "print your public card, to give to whoever shares with you", load: async () => (await import("./commands/card.ts")).card },
  "users add": { summary: "add a member (a person or machine) from their card", load: async () => (await import("./commands/users.ts")).usersAdd },
  "users list": { summary: "list members with their grants", load: async () => (await import("./commands/users.ts")).usersList },
  "users show": { summary: "show a member, their grants and what they hold", load: async () => (await import("./commands/users.ts")).usersShow },
  grant: { summary: "let a member receive the secrets matching patterns", load: async () => (await import("./commands/grant.ts")).grant },
  ungrant: { summary: "take patterns back from a member", load: async () => (await import("./commands/grant.ts")).ungrant },
  export: { summary: "send a member their granted secrets as a signed bundle", load: async () => (await import("./commands/export.ts")).exportCmd },
  import: { summary: "import a bundle from a trusted sender, or a .env file", load: async () => (await import("./commands/import.ts")).importCmd },
  revoke: { summary: "cut a member off and list the secrets to rotate (--rotate: rotate them)", load: async () => (await import("./commands/revoke.ts")).revoke },
  rotate: { summary: "rotate a secret now: a new version from its generator (local) or its policy (--server)", load: async () => (await import("./commands/rotation.ts")).rotate },
  run: { summary: "run a command with the secrets of an environment (.coffer.yml)", load: async () => (await import("./commands/run.ts")).run },
  load: { summary: "print an environment's secrets as dotenv, shell, JSON or for GitHub Actions", load: async () => (await import("./commands/load.ts")).load },
  "config check": { summary: "show what .coffer.yml delivers and check that it all resolves", load: async () => (await import("./commands/config.ts")).configCheck },
  "config schema": { summary: "print the JSON Schema of .coffer.yml for editors", load: async () => (await import("./commands/config.ts")).configSchema },
  trust: { summary: "obey the .coffer.yml of a directory another user owns (like git's safe.directory)", load: async () => (await import("./commands/trust.ts")).trust },
  agent: { summary: "fetch a service's secrets into a dir, signal readiness, reload on change", load: async () => (await import("./commands/agent.ts")).agent },
  "exec-env": { summary: "run a command with the variables of a secrets.env file", load: async () => (await import("./commands/exec-env.ts")).execEnv },
  units: { summary: "render systemd units that give a service its secrets", load: async () => (await import("./commands/units.ts")).units },
  backup: { summary: "write the whole store (and identity) as one encrypted file", load: async () => (await import("./commands/backup.ts")).backup },
  restore: { summary: "bring a store back from a backup file", load: async () => (await import("./commands/backup.ts")).restore },
  login: { summary: "check an API token with a coffer server and save it", load: async () => (await import("./commands/login.ts")).login },
  logout: { summary: "forget the API token saved for a coffer server", load: async () => (await import("./commands/login.ts")).logout },
  whoami: { summary: "show who your token is on a coffer server: subject, roles, expiry", load: async () => (await import("./commands/whoami.ts")).whoami },
  "token create": { summary: "make an API token on a coffer server (printed once)", load: async () => (await import("./commands/token.ts")).tokenCreate },
  "token list": { summary: "list a coffer server's API tokens (never the tokens)", load: async () => (await import("./commands/token.ts")).tokenList },
  "token revoke": { summary: "revoke an API token on a coffer server", load: async () => (await import("./commands/token.ts")).tokenRevoke },
  "role list": { summary: "list a coffer server's roles: the config file's and the database's", load: async () => (await import("./commands/role.ts")).roleList },
  "role show": { summary: "show a role's rules and who last changed it", load: async () => (await import("./commands/role.ts")).roleShow },
  "role set": { summary: "create or replace a database role's rules (--rule PATH:CAPS…)", load: async () => (await import("./commands/role.ts")).roleSet },
  "role rm": { summary: "delete a role kept in the server's database", load: async () => (await import("./commands/role.ts")).roleRm },
  "rotation set": { summary: "set a secret's rotation policy on a server: period, generator, apply target", load: async () => (await import("./commands/rotation.ts")).rotationSet },
  "rotation show": { summary: "show a secret's rotation policy and state on a server", load: async () => (await import("./commands/rotation.ts")).rotationShow },
  "rotation rm": { summary: "remove a secret's rotation policy on a server", load: async () => (await import("./commands/rotation.ts")).rotationRm },
  "rotation list": { summary: "list a server's rotation policies (--due: those due)", load: async () => (await import("./commands/rotation.ts")).rotationList },
  "runbook list": { summary: "list the runbooks of a coffer server you may read", load: async () => (await import("./commands/runbook.ts")).runbookList },
  "runbook show": { summary: "show a runbook's params, secrets, files and limits", load: async () => (await import("./commands/runbook.ts")).runbookShow },
  "runbook validate": { summary: "check params against a runbook without running it", load: async () => (await import("./commands/runbook.ts")).runbookValidate },
  "runbook run": { summary: "run a runbook on the server; --follow streams its output and exits with its status", load: async () => (await import("./commands/runbook.ts")).runbookRun },
  "runbook output": { summary: "print (or --follow) an execution's output", load: async () => (await import("./commands/runbook.ts")).runbookOutput },
  "runbook history": { summary: "list a runbook's executions, newest first", load: async () => (await import("./commands/runbook.ts")).runbookHistory },
  "runbook cancel": { summary: "stop a running or pending execution", load: async () => (await import("./commands/runbook.ts")).runbookCancel },
  "runbook approve": { summary: "approve another person's pending execution", load: async () => (await import("./commands/runbook.ts")).runbookApprove },
  "server init": { summary: "create a team server's data dir, master key, database and root token", load: async () => (await import("./commands/serve.ts")).serverInit },
  "server root-token": { summary: "make a new root token for a team server and revoke the old ones (on the server's host)", load: async () => (await import("./commands/serve.ts")).serverRootToken },
  serve: { summary: "run the team server (HTTP API with tokens, JWT, policies, audit, metrics)", load: async () => (await import("./commands/serve.ts")).serve },
  doctor: { summary: "check this machine's coffer setup and say how to fix what is wrong", load: async () => (await import("./commands/doctor.ts")).doctor },
  completion: { summary: "print the bash, zsh or fish completion script", load: async () => (await import("./commands/completion.ts")).completion },
};

const GLOBAL_FLAGS: Record<string, Flag> = {
  store: { type: "string", arg: "FILE", help: "use this store file instead of the default" },
  debug: { type: "boolean", help: "print stack traces on errors" },
  help: { type: "boolean", short: "h", help: "show help" },
};

const VERSION = "0.1.0";

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes("--debug");
  try {
    if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
      if (argv[0] === "help" && argv[1] !== undefined) return main([...argv.slice(1), "--help"]);
      writeOut(mainHelp());
      return 0;
    }
    if (argv[0] === "__complete") return await complete(argv.slice(1));
    if (argv[0] === "--version" || argv[0] === "-V") {
      writeOut(`coffer ${VERSION}\n`);
      return 0;
    }
    const two = `${argv[0]} ${argv[1] ?? ""}`;
    const words = COMMANDS[two] !== undefined ? 2 : 1;
    const entry = COMMANDS[words === 2 ? two : argv[0]!];
    if (entry === undefined) {
      const subs = Object.keys(COMMANDS).filter((k) => k.startsWith(`${argv[0]} `)).map((k) => k.split(" ")[1]);
      if (subs.length > 0) {
        throw new CofferError("E_USAGE", `coffer ${argv[0]} needs one of: ${subs.join(", ")}; e.g. \`coffer ${argv[0]} ${subs[0]} --help\``);
      }
      throw new CofferError("E_USAGE", `unknown command "${argv[0]}"; \`coffer --help\` lists the commands`);
    }
    const command = await entry.load();
    const ctx = parse(command, argv.slice(words));
    if (ctx === "help") {
      writeOut(commandHelp(command, entry.summary));
      return 0;
    }
    return (await command.run(ctx)) ?? 0;
  } catch (err) {
    return report(err, debug);
  }
}

/**
 * The hidden `coffer __complete WORDS…` the completion scripts call (src/cli/complete.ts): the
 * candidates on stdout; never a message, never a prompt, always status 0.
 */
async function complete(words: string[]): Promise<number> {
  try {
    const { completions } = await import("./complete.ts");
    const found = await completions(words, { commands: COMMANDS, globalFlags: GLOBAL_FLAGS, env: process.env, cwd: process.cwd() });
    if (found.length > 0) writeOut(`${found.join("\n")}\n`);
  } catch {
    // nothing to offer
  }
  return 0;
}

function parse(command: Command, args: string[]): Context | "help" {
  // A passthrough command (run) takes everything after `--` as given, flags included.
  let rest: string[] | undefined;
  if (command.passthrough === true && !args.includes("--help") && !args.includes("-h")) {
    const end = args.indexOf("--");
    if (end === -1) throw new CofferError("E_USAGE", `put the command after --, e.g. \`coffer ${command.name} -- npm start\``);
    rest = args.slice(end + 1);
    args = args.slice(0, end);
  }
  let parsed;
  try {
    // parseArgs ignores the help-only keys of a Flag (arg, help)
    parsed = parseArgs({ args, options: { ...GLOBAL_FLAGS, ...command.flags }, allowPositionals: rest === undefined, strict: true });
  } catch (err) {
    const msg = (err as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new CofferError("E_USAGE", `${msg}; see \`coffer ${command.name} --help\``);
  }
  const flags = parsed.values as Context["flags"];
  if (flags.help === true) return "help";
  return {
    args: rest ?? parsed.positionals,
    flags,
    io: {
      get stdin() {
        return process.stdin;
      },
      stdout: {
        get isTTY() {
          return stdoutIsTerminal();
        },
      },
    },
    env: process.env,
    umask: USER_UMASK,
    store: typeof flags.store === "string" ? flags.store : undefined,
    say: (m) => void process.stderr.write(`${printable(m, true)}\n`),
    out: writeOut,
  };
}

function report(err: unknown, debug: boolean): number {
  if (err instanceof CofferError) {
    process.stderr.write(`coffer: ${printable(err.message, true)}\n`);
    if (debug) process.stderr.write(`${err.stack ?? ""}\n${err.cause instanceof Error ? `cause: ${err.cause.stack ?? ""}\n` : ""}`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code === "EACCES" || e?.code === "EPERM") {
    process.stderr.write(`coffer: permission denied: ${printable(e.path ?? e.message)}\n`);
    return 5;
  }
  process.stderr.write(`coffer: internal error (${e?.code ?? e?.name ?? "unknown"}); rerun with --debug and report it\n`);
  if (debug) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  return 1;
}

function flagLines(flags: Record<string, Flag>): string[] {
  return Object.entries(flags).map(([name, f]) => {
    const left = `${f.short !== undefined ? `-${f.short}, ` : "    "}--${name}${f.arg !== undefined ? ` ${f.arg}` : ""}`;
    return `  ${left.padEnd(28)} ${f.help}`;
  });
}

function commandHelp(c: Command, listed: string): string {
  const summary = c.summary ?? listed;
  return [
    `Usage: coffer ${c.name} ${c.usage}`,
    "",
    summary.charAt(0).toUpperCase() + summary.slice(1) + ".",
    ...(c.details !== undefined ? ["", c.details] : []),
    "",
    "Flags:",
    ...flagLines(c.flags),
    ...flagLines(GLOBAL_FLAGS),
    "",
    "Examples:",
    ...c.examples.map((e) => `  ${e}`),
    "",
  ].join("\n");
}

function mainHelp(): string {
  return [
    "coffer: keep a team's secrets encrypted in one place and hand them to processes.",
    "",
    "Usage: coffer <command> [args] [flags]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(18)} ${c.summary}`),
    "",
    "Global flags:",
    ...flagLines(GLOBAL_FLAGS),
    "      --version                the version",
    "",
    "Examples:",
    "  coffer init",
    "  printf '%s' \"$DB_PASSWORD\" | coffer set db/prod/password",
    "  coffer get db/prod/password",
    "",
    "`coffer <command> --help` shows a command's flags and examples.",
    "Exit status: 0 ok, 1 internal, 2 usage, 3 not found, 4 conflict, 5 permissions/denied,",
    "6 decryption/integrity, 7 invalid name, value or config, 8 not initialised/bad identity, 9 busy,",
    "10 cancelled, 11 provider failed, 12 runbook execution did not finish, 13 rotation failed. `coffer run` and",
    "`coffer runbook run --follow` exit with their command's status (124 when it timed out);",
    "`coffer doctor` exits 1 when a check failed.",
    "",
  ].join("\n");
}

/**
 * Prints on stdout through fd 1, synchronously: nothing is left buffered at exit, and no stream is
 * built for a command that prints one value (building process.stdout costs a few milliseconds of
 * start-up, docs/design.md §8). A reader that went away (`coffer list | head`) ends coffer quietly.
 */
function writeOut(data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(1, bytes, done);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EPIPE") process.exit(0);
      if (code !== "EAGAIN") throw err;
      Atomics.wait(PAUSE, 0, 0, 1); // a non-blocking pipe that is full: wait for the reader
    }
  }
}
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * Whether stdout is a terminal: a character device other than /dev/null. node:tty's isatty would
 * load the stream stack that {@link writeOut} avoids.
 */
function stdoutIsTerminal(): boolean {
  try {
    const st = fstatSync(1);
    return st.isCharacterDevice() && st.rdev !== statSync("/dev/null").rdev;
  } catch {
    return false;
  }
}

// process.stdout, where a command still uses it (`run` passes its command's output on), gets the
// same EPIPE rule when it is first built.
const stdoutOf = Object.getOwnPropertyDescriptor(process, "stdout")!.get!;
Object.defineProperty(process, "stdout", {
  configurable: true,
  enumerable: true,
  get: () => {
    const stream = stdoutOf.call(process) as NodeJS.WriteStream;
    if (stream.listenerCount("error") > 0) return stream;
    return stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(0);
      throw err;
    });
  },
});

// No top-level await: the single executable's entry (sea-main.ts) is CommonJS, which has none.
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
