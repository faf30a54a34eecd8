import { closeSync, constants as fsc, fstatSync, openSync, readFileSync } from "node:fs";
import { parseSecretsEnv } from "../../deliver/formats/secrets-env.ts";
import { startCommand, TERMINATING_SIGNALS, withSignalsForwarded } from "../../deliver/child.ts";
import { CofferError, PermissionsError } from "../../errors.ts";
import { assertOwnerOnlyWrites } from "../../core/fs-secure.ts";
import type { Command } from "../command.ts";

/**
 * Signals coffer re-raises on itself when CMD died of one, so its parent sees the same death.
 * Never SIGUSR1: without a listener, Node answers it by opening its inspector.
 */
const RERAISED = new Set<string>([...TERMINATING_SIGNALS.filter((s) => s !== "SIGUSR1"), "SIGKILL", "SIGABRT"]);

/** Larger than any environment Linux lets a program start with. */
const MAX_FILE = 8 * 1024 * 1024;

/**
 * Reads FILE under the exec-env rule: a regular file (not a symlink), owned by the caller or by
 * root, not writable by group or others. Readable by others is allowed (see the help text).
 */
function readSecretsFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CofferError("E_NOT_FOUND", `secrets file ${file} does not exist (is the side-car unit running, and does this unit share its /tmp through JoinsNamespaceOf=?)`);
    if (code === "ELOOP") throw new PermissionsError(`secrets file ${file} is a symbolic link; coffer exec-env reads only the file itself`);
    if (code === "EACCES" || code === "EPERM") throw new PermissionsError(`cannot read secrets file ${file}: permission denied (the agent's --owner must be the user this command runs as)`);
    throw new CofferError("E_INTERNAL", `cannot open secrets file ${file}: ${code ?? (err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CofferError("E_USAGE", `secrets file ${file} is not a regular file`);
    assertOwnerOnlyWrites(file, st, "secrets file");
    if (st.size > MAX_FILE) throw new CofferError("E_INVALID_VALUE", `secrets file ${file} is larger than 8 MiB, more than any environment can hold`);
    const data = readFileSync(fd);
    try {
      return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(data);
    } catch {
      throw new CofferError("E_INVALID_VALUE", `secrets file ${file} is not valid UTF-8`);
    }
  } finally {
    closeSync(fd);
  }
}

/** `coffer exec-env FILE -- CMD [ARGS…]`. */
export const execEnv: Command = {
  name: "exec-env",
  usage: "FILE -- CMD [ARGS…]",
  details: [
    "Reads FILE, a secrets.env as `coffer agent` writes it (NAME='value' lines; anything else is",
    "refused with its line number), and runs CMD with those variables added to its environment,",
    "as `EnvironmentFile=` would; it exists because a unit cannot point EnvironmentFile= at the",
    "side-car's PrivateTmp. Values never appear on a command line. CMD gets coffer's stdin, stdout,",
    "stderr and your umask; every catchable terminating signal (HUP, INT, QUIT, TERM, ALRM, VTALRM,",
    "XCPU, XFSZ, PROF, USR1, USR2) is passed on. A CMD that is not found exits 127, one that",
    "cannot be executed 126, as in a shell.",
    "coffer exits with CMD's status; if CMD died of a signal, coffer dies of the same signal",
    "(a shell shows 128+n), so systemd sees what it would see without the wrapper.",
    "",
    "FILE must be a regular file (not a symlink), owned by you or by root, and not writable by",
    "group or others. It may be readable by others: in the side-car design it lives in a",
    "PrivateTmp only the two units see, written by the agent (root) for a service that may run",
    "as another (even dynamic) user. Outside such a namespace, keep it 0400/0600 yourself.",
  ].join("\n"),
  examples: [
    "coffer exec-env /tmp/secrets.env -- /usr/bin/myservice --port 8080",
    "coffer exec-env ./secrets.env -- node server.js",
  ],
  // Not `passthrough`: main.ts refuses positionals before `--` for passthrough commands, and
  // FILE is one. util.parseArgs already takes everything after `--` as positionals, unparsed.
  flags: {},
  async run(ctx) {
    const [file, command, ...args] = ctx.args;
    if (file === undefined || file === "") throw new CofferError("E_USAGE", "no secrets file given; e.g. `coffer exec-env /tmp/secrets.env -- myservice`");
    if (command === undefined) throw new CofferError("E_USAGE", "no command after the secrets file; e.g. `coffer exec-env /tmp/secrets.env -- myservice`");
    const vars = parseSecretsEnv(readSecretsFile(file), file);
    const env: NodeJS.ProcessEnv = { ...ctx.env };
    for (const [name, value] of vars) env[name] = value;
    // Signals passed on to CMD, as a process replaced by exec would receive them.
    const { signal, status } = await withSignalsForwarded(() => startCommand(command, args, { env, stdio: "inherit", umask: ctx.umask }));
    if (signal !== null && RERAISED.has(signal)) {
      // Die the way CMD died, as an exec'd process would; if the signal is somehow not fatal
      // to us, fall through to 128+n.
      process.kill(process.pid, signal);
      await new Promise((r) => setTimeout(r, 100));
    }
    return status;
  },
};
