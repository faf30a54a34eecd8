/**
 * `coffer runbook …`: the runbooks of a coffer server (list, show, validate, run) and their
 * executions (output, history, cancel, approve), over src/client/runbooks.ts. Data goes to
 * stdout (tables, output, `--json`), messages to stderr. `run --follow` and `output --follow`
 * stream the output and exit with the script's status, 124 when it timed out, or E_EXECUTION's
 * (12) when it never ran or did not finish.
 */
import { constants } from "node:os";
import { CofferError, problemList } from "../../errors.ts";
import { assertEnvName } from "../../core/names.ts";
import { formatDuration } from "../../core/durations.ts";
import { formatSize } from "../../core/sizes.ts";
import { ServerError } from "../../client/server-error.ts";
import { RunbookClient, type Execution, type RunbookParams } from "../../client/runbooks.ts";
import type { Command, Context, Flag } from "../command.ts";
import { parseWhole, printable, readFileBounded, table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, stringFlag } from "../open.ts";
import { onServer, SERVER_FLAG, SERVER_HELP } from "../remote.ts";

/** The largest --param-file read; the server refuses a value over 4 KiB and says which. */
const MAX_PARAM_FILE_BYTES = 64 * 1024;

const JSON_FLAG: Flag = { type: "boolean", help: "print machine-readable JSON on stdout" };
const PARAM_FLAGS: Record<string, Flag> = {
  param: { type: "string", short: "p", multiple: true, arg: "NAME=VALUE", help: "a param (repeatable); it reaches the script as $NAME" },
  "param-file": { type: "string", multiple: true, arg: "NAME=FILE", help: "a param read from FILE (UTF-8; one final newline dropped)" },
};
const PARAM_HELP = [
  "Params are -p NAME=VALUE, repeatable (--param too); --param-file NAME=FILE reads a value from a",
  "file (its one final newline dropped). They travel in the request body, never in a URL; the",
  "server checks each against the runbook (required, pattern, at most 4 KiB, no control characters).",
].join("\n");
const FOLLOW_HELP = [
  "With --follow the output is streamed to stdout as it comes, and coffer exits with the script's",
  "exit status: 124 when it timed out (as timeout(1)), 128+N when a signal N ended it, and 12",
  "(E_EXECUTION) when it never ran or did not finish: cancelled, rejected, interrupted or expired",
  "(the message says which). A script's own status may also be 12; --json tells them apart.",
  "With --json, --follow prints JSON lines instead: {\"event\":\"started\",\"id\",\"status\"} first (run),",
  "{\"event\":\"output\",\"text\":…} for each piece and {\"event\":\"end\",\"execution\":{…}} last.",
  "Ctrl-C stops following; the execution goes on (`coffer runbook cancel ID` stops it).",
].join("\n");

export const runbookList: Command = {
  name: "runbook list",
  usage: "[--server URL] [--json]",
  details: ["Only the runbooks you may read (policy path runbook:NAME, capability read). An invalid",
    "runbook (one that failed to load) is listed with VALID no and can never run; `coffer runbook",
    "show NAME` gives its problems.", "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook list", "coffer runbook list --server https://coffer.example.com --json"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    noArgs(ctx, "runbook list");
    const list = await call(ctx, (rb) => rb.listRunbooks());
    if (ctx.flags.json === true) return printJson(ctx, list);
    if (list.length === 0) return ctx.say("no runbooks you may read");
    ctx.out(table(["NAME", "VALID", "ISOLATION", "APPROVALS", "DESCRIPTION"], list.map((r) => r.valid
      ? [r.name, "yes", r.isolation, String(r.approvals), firstLine(r.description)]
      : [r.name, "no", "", "", `${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}: coffer runbook show ${r.name}`])));
  },
};

export const runbookShow: Command = {
  name: "runbook show",
  usage: "NAME [--server URL] [--json]",
  details: ["Its description, params (name, required, pattern, default, description), the env names that",
    "receive secrets and secret files (never their values), its limits and isolation; the problems",
    "of an invalid runbook.", "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook show flush-cdn", "coffer runbook show flush-cdn --json"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the runbook NAME", "runbook show NAME");
    const r = await call(ctx, (rb) => rb.getRunbook(name));
    if (ctx.flags.json === true) return printJson(ctx, r);
    if (!r.valid) {
      ctx.out(`${printable(r.name)}: invalid, it cannot run:\n${r.problems.map((p) => `  ${printable(p)}\n`).join("")}`);
      return;
    }
    const lines = [
      `name:         ${printable(r.name)}`,
      `description:  ${printable(r.description, true).replace(/\n/g, "\n              ")}`,
      `isolation:    ${r.isolation}${r.isolation === "tempdir" ? " (runs with the server's privileges)" : ""}`,
      `timeout:      ${formatDuration(r.timeoutMs)}`,
      `output limit: ${formatSize(r.outputLimit, " ")}`,
      `concurrency:  ${r.concurrency ?? "no limit"}`,
      `approvals:    ${r.approvals}`,
      `secrets:      ${r.secrets.length > 0 ? printable(r.secrets.join(", ")) : "none"}`,
      `files:        ${r.files.length > 0 ? printable(r.files.join(", ")) : "none"}`,
      "",
    ];
    ctx.out(lines.join("\n"));
    if (r.params.length === 0) return ctx.out("params: none\n");
    ctx.out(`params:\n${table(["NAME", "REQUIRED", "PATTERN", "DEFAULT", "DESCRIPTION"], r.params.map((p) => [
      p.name, p.required ? "yes" : "no", p.pattern ?? "", p.default === null ? "" : JSON.stringify(p.default), firstLine(p.description ?? ""),
    ]))}`);
  },
};

export const runbookValidate: Command = {
  name: "runbook validate",
  usage: "NAME [-p NAME=VALUE…] [--param-file NAME=FILE…] [--server URL] [--json]",
  details: ["Asks the server whether the params fit the runbook; nothing runs. Every problem is printed,",
    "one a line, and coffer exits 7 (E_INVALID_VALUE). --json prints {valid, params} (with defaults)",
    "or {valid: false, problems}.", "", PARAM_HELP, "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook validate flush-cdn -p REGION=eu-west", "coffer runbook validate deploy -p VERSION=1.4.2 --param-file NOTES=notes.txt --json"],
  flags: { ...PARAM_FLAGS, server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the runbook NAME", "runbook validate NAME -p NAME=VALUE…");
    const params = await readParams(ctx);
    const result = await call(ctx, (rb) => rb.validate(name, params));
    if (ctx.flags.json === true) printJson(ctx, result);
    if (!result.valid) throw problemsError(name, result.problems);
    if (ctx.flags.json !== true) ctx.say(`the params are valid for runbook ${name}`);
  },
};

export const runbookRun: Command = {
  name: "runbook run",
  usage: "NAME [-p NAME=VALUE…] [--param-file NAME=FILE…] [--follow] [--server URL] [--json]",
  details: ["Starts the runbook on the server. Without --follow, prints the execution id on stdout",
    "(the status and how to follow it on stderr); --json prints {id, status}. A runbook that needs",
    "approvals waits (pending-approval) until others run `coffer runbook approve ID`, for at most 1 h.",
    "", PARAM_HELP, "", FOLLOW_HELP, "", SERVER_HELP].join("\n"),
  examples: [
    "coffer runbook run flush-cdn -p REGION=eu-west --follow",
    "id=$(coffer runbook run flush-cdn -p REGION=eu-west) && coffer runbook output \"$id\" --follow",
    "coffer runbook run deploy -p VERSION=1.4.2 --json",
  ],
  flags: { ...PARAM_FLAGS, follow: { type: "boolean", short: "f", help: "stream the output and exit with the script's status" }, server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the runbook NAME", "runbook run NAME -p NAME=VALUE… [--follow]");
    const params = await readParams(ctx);
    const json = ctx.flags.json === true;
    const started = await call(ctx, async (rb) => {
      try {
        return await rb.run(name, params);
      } catch (err) {
        if (err instanceof ServerError && err.problems !== undefined && err.problems.length > 0) throw problemsError(name, err.problems);
        throw err;
      }
    });
    const { id, status } = started;
    const pending = status === "pending-approval";
    if (ctx.flags.follow !== true) {
      if (json) return printJson(ctx, started);
      ctx.out(`${id}\n`);
      ctx.say(`execution ${id} of runbook ${name} ${pending ? `waits for approval: someone else runs \`coffer runbook approve ${id}\`` : "is running"}; follow it with \`coffer runbook output ${id} --follow\``);
      return;
    }
    if (json) jsonLine(ctx, { event: "started", id, status });
    ctx.say(pending
      ? `execution ${id} of runbook ${name} waits for approval (someone else runs \`coffer runbook approve ${id}\`); following it until it ends`
      : `execution ${id} of runbook ${name} started`);
    return follow(ctx, id);
  },
};

export const runbookOutput: Command = {
  name: "runbook output",
  usage: "ID [--follow] [--server URL] [--json]",
  details: ["Prints an execution's output (masked: secret values read ***) as it is now; --json prints",
    "{execution, output}. With --follow, streams it from the start until the execution ends.",
    "", FOLLOW_HELP, "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook output 01938f2e-7c1a-7b3e-9a4f-2f1e0c9d8b7a", "coffer runbook output 01938f2e-7c1a-7b3e-9a4f-2f1e0c9d8b7a --follow"],
  flags: { follow: { type: "boolean", short: "f", help: "stream the output until the execution ends; exit with the script's status" }, server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const id = oneArg(ctx, "the execution ID", "runbook output ID [--follow]");
    if (ctx.flags.follow === true) return follow(ctx, id);
    if (ctx.flags.json === true) {
      // The status first: when it is final, the output read after it is complete.
      const { execution, output } = await call(ctx, async (rb) => {
        const e = await rb.execution(id);
        return { execution: e, output: await rb.output(id) };
      });
      return printJson(ctx, { execution, output });
    }
    ctx.out(await call(ctx, (rb) => rb.output(id)));
  },
};

export const runbookHistory: Command = {
  name: "runbook history",
  usage: "[NAME] [--limit N] [--before ID] [--server URL] [--json]",
  details: ["Executions, newest first: of runbook NAME, or of every runbook you may read. --before ID",
    "pages back from the last id of a page.", "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook history flush-cdn", "coffer runbook history flush-cdn --limit 100 --before 01938f2e-7c1a-7b3e-9a4f-2f1e0c9d8b7a", "coffer runbook history --json"],
  flags: {
    limit: { type: "string", arg: "N", help: "at most N executions, 1 to 100 (default 20)" },
    before: { type: "string", arg: "ID", help: "only executions older than this one" },
    server: SERVER_FLAG,
    json: JSON_FLAG,
  },
  async run(ctx) {
    if (ctx.args.length > 1) throw new CofferError("E_USAGE", "too many arguments; usage: coffer runbook history [NAME] [--limit N] [--before ID]");
    const runbook = ctx.args[0];
    const limitFlag = stringFlag(ctx, "limit");
    const limit = limitFlag === undefined ? undefined : parseWhole(limitFlag, "--limit", 1);
    if (limit !== undefined && limit > 100) throw new CofferError("E_INVALID_VALUE", `invalid --limit ${limit}: at most 100`);
    const before = stringFlag(ctx, "before");
    const rows = await call(ctx, (rb) => rb.history({
      ...(runbook !== undefined && { runbook }), ...(limit !== undefined && { limit }), ...(before !== undefined && { before }),
    }));
    if (rows.length === (limit ?? 20)) ctx.say(`older ones: add --before ${rows.at(-1)!.id}`);
    if (ctx.flags.json === true) return printJson(ctx, rows);
    if (rows.length === 0) return ctx.say(before === undefined ? "no executions" : `no executions before ${before}`);
    const header = ["ID", ...(runbook === undefined ? ["RUNBOOK"] : []), "STATUS", "BY", "STARTED", "EXIT"];
    ctx.out(table(header, rows.map((e) => [
      e.id, ...(runbook === undefined ? [e.runbook] : []), e.status, e.by,
      e.startedAt === null ? "" : wholeSeconds(e.startedAt), e.exitCode !== null ? String(e.exitCode) : (e.signal ?? ""),
    ])));
  },
};

export const runbookCancel: Command = {
  name: "runbook cancel",
  usage: "ID [--server URL] [--json]",
  details: ["Stops a running execution (SIGTERM to its processes, SIGKILL 10 s later) or ends a pending",
    "one; needs run on its runbook. --json prints the execution.", "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook cancel 01938f2e-7c1a-7b3e-9a4f-2f1e0c9d8b7a"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const id = oneArg(ctx, "the execution ID", "runbook cancel ID");
    const e = await call(ctx, (rb) => rb.cancel(id));
    if (ctx.flags.json === true) return printJson(ctx, e);
    ctx.say(`execution ${id} of runbook ${e.runbook}: ${e.status}${e.status === "running" ? " (cancel requested; it is stopped within 10 s)" : ""}`);
  },
};

export const runbookApprove: Command = {
  name: "runbook approve",
  usage: "ID [--server URL] [--json]",
  details: ["Approves a pending execution; needs approve on its runbook. It counts only from another",
    "person than the requester (not a token the requester made); once enough have approved, it",
    "runs. --json prints the execution.", "", SERVER_HELP].join("\n"),
  examples: ["coffer runbook approve 01938f2e-7c1a-7b3e-9a4f-2f1e0c9d8b7a"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const id = oneArg(ctx, "the execution ID", "runbook approve ID");
    const e = await call(ctx, (rb) => rb.approve(id));
    if (ctx.flags.json === true) return printJson(ctx, e);
    ctx.say(`approved execution ${id} of runbook ${e.runbook} (${e.approvals.length} of ${e.approvalsRequired} approvals); it is ${e.status}`);
  },
};

/** Streams an execution's output to stdout and gives the exit status its end calls for. */
async function follow(ctx: Context, id: string): Promise<number> {
  const json = ctx.flags.json === true;
  const end = await call(ctx, (rb) => rb.followOutput(id, (text) => {
    if (json) jsonLine(ctx, { event: "output", text });
    else ctx.out(text);
  }));
  if (json) jsonLine(ctx, { event: "end", execution: end });
  else if (end.truncated) ctx.say(`execution ${id}: the output was cut at the runbook's output limit (${formatSize(end.outputBytes, " ")} kept)`);
  return exitStatus(end, (m) => { if (!json) ctx.say(m); });
}

/**
 * The exit status for an ended execution: the script's own, 124 when it timed out, 128+N for a
 * signal; E_EXECUTION when it never ran or did not finish.
 * @throws CofferError E_EXECUTION naming the status; E_PROVIDER for a status that is not final
 */
export function exitStatus(e: Execution, say: (message: string) => void = () => {}): number {
  const what = `execution ${e.id} of runbook ${e.runbook}`;
  switch (e.status) {
    case "succeeded":
      return 0;
    case "failed": {
      const code = e.exitCode !== null && e.exitCode >= 1 && e.exitCode <= 255 ? e.exitCode : e.signal !== null ? signalStatus(e.signal) : 1;
      say(`${what} failed: ${e.exitCode !== null ? `exit status ${e.exitCode}` : e.signal !== null ? `ended by ${e.signal}` : "no exit status"}`);
      return code;
    }
    case "timed-out":
      say(`${what} timed out (status timed-out) and was stopped`);
      return 124;
    case "cancelled":
    case "rejected":
    case "interrupted":
    case "expired": {
      const why = {
        cancelled: "was cancelled",
        rejected: "was rejected",
        interrupted: "was interrupted: the server running it stopped or was lost",
        expired: "expired: it was not approved within its hour",
      }[e.status];
      throw new CofferError("E_EXECUTION", `${what} ${why} (status ${e.status})${e.startedAt === null ? "; the script never ran" : ""}`);
    }
    default:
      throw new CofferError("E_PROVIDER", `${what}: the server ended its output stream while it is still ${e.status}`);
  }
}

function signalStatus(signal: string): number {
  const n = Object.hasOwn(constants.signals, signal) ? constants.signals[signal as keyof typeof constants.signals] : undefined;
  return n === undefined ? 1 : 128 + n;
}

/** Runs `fn` with the command's server ({@link onServer}: a 401 gets the hint to log in again). */
function call<T>(ctx: Context, fn: (rb: RunbookClient) => Promise<T>): Promise<T> {
  return onServer(ctx, (client) => fn(new RunbookClient(client)));
}

/** The params of -p and --param-file. Their values never appear in a message. */
async function readParams(ctx: Context): Promise<RunbookParams> {
  const out: Record<string, string> = {};
  const add = (k: string, v: string): void => {
    assertEnvName(k);
    if (Object.hasOwn(out, k)) throw new CofferError("E_USAGE", `the param ${k} is given twice`);
    out[k] = v;
  };
  for (const p of listFlag(ctx, "param")) {
    const eq = p.indexOf("=");
    if (eq < 1) throw new CofferError("E_USAGE", "-p takes NAME=VALUE, e.g. -p REGION=eu-west");
    add(p.slice(0, eq), p.slice(eq + 1));
  }
  for (const p of listFlag(ctx, "param-file")) {
    const eq = p.indexOf("=");
    if (eq < 1 || eq === p.length - 1) throw new CofferError("E_USAGE", "--param-file takes NAME=FILE, e.g. --param-file NOTES=notes.txt");
    const raw = await readFileBounded(p.slice(eq + 1), MAX_PARAM_FILE_BYTES, "64 KiB");
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch {
      throw new CofferError("E_INVALID_VALUE", `the param ${p.slice(0, eq)}: ${p.slice(eq + 1)} is not UTF-8 text`);
    } finally {
      raw.fill(0);
    }
    add(p.slice(0, eq), text.endsWith("\n") ? text.slice(0, -1) : text);
  }
  return out;
}

function problemsError(name: string, problems: readonly string[]): CofferError {
  const message = problems.length === 1 ? `runbook ${name}: ${problems[0]}` : problemList(`runbook ${name}`, problems);
  return new CofferError("E_INVALID_VALUE", message);
}

function listFlag(ctx: Context, name: string): string[] {
  const v = ctx.flags[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

function noArgs(ctx: Context, command: string): void {
  if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unknown argument "${ctx.args[0]}"; usage: coffer ${command}`);
}

function jsonLine(ctx: Context, value: unknown): void {
  ctx.out(`${JSON.stringify(value)}\n`);
}

function firstLine(s: string): string {
  const line = s.split("\n")[0] ?? "";
  return line.length > 80 ? `${line.slice(0, 79)}…` : line;
}

