/**
 * Rotation from the CLI (issue 15, docs/design.md §12): `coffer rotation set|show|rm|list` (a
 * server's rotation policies: schedule, generator, apply target), and `coffer rotate NAME` (the
 * local store, by its remembered generator, or a server). Scheduling and apply are server
 * features: the local store rotates only when asked. Data goes to stdout (tables, `--json`),
 * messages to stderr; a failed rotation exits 13 (E_ROTATION).
 */
import { CofferError } from "../../errors.ts";
import { parsePostgresApply, RotationClient } from "../../client/rotation.ts";
import type { RotationApply, RotationReport, RotationView } from "../../client/wire.ts";
import { savedServers } from "../../client/token-file.ts";
import { describeGenerator, defaultLength, parseCharset } from "../../crypto/generate.ts";
import type { Command, Context, Flag } from "../command.ts";
import { parseDurationSeconds, parseWhole, table, wholeSeconds } from "../io.ts";
import { oneArg, printJson, stringFlag, withStore } from "../open.ts";
import { onServer, REMOTE_FLAG, REMOTE_HELP, remoteClient, SERVER_FLAG, SERVER_HELP } from "../remote.ts";

const JSON_FLAG: Flag = { type: "boolean", help: "print machine-readable JSON on stdout" };

const SERVER_ONLY = [
  "Rotation policies live on a coffer server, which rotates on schedule and applies each new value",
  "to its target. The local store rotates only when asked: `coffer set NAME --generate` remembers",
  "its generator, `coffer rotate NAME` makes a new version, `coffer list --due` shows what is due.",
].join("\n");

const EXIT_HELP = [
  "Exit status: 13 when the rotation failed (E_ROTATION: the apply or its test failed; no version was",
  "written), 4 when one is already in progress, 3 no such secret (or, on a server, no policy), 7 no",
  "generator (local), 5 not allowed (on a server: needs rotate on the name).",
].join("\n");

const POLICY_EXIT_HELP = [
  "Exit status: 2 with no server, 3 no such secret or policy, 5 not allowed (needs rotate on the",
  "name), 7 a bad flag value.",
].join("\n");

/** What every `rotation` command's help ends with: where policies live, the server, exit status. */
const POLICY_HELP_END = [SERVER_ONLY, "", SERVER_HELP, "", POLICY_EXIT_HELP].join("\n");

export const rotationSet: Command = {
  name: "rotation set",
  usage: "NAME [--every DUR] [--charset C] [--length N] [--apply-runbook R | --apply-postgres SECRET:ROLE] [--server URL] [--json]",
  details: [
    "Sets (creates or replaces) a secret's rotation policy on the server (needs rotate on the name).",
    "--every: rotated that long after its last rotation (none: only when asked, `coffer rotate`).",
    "The new value is --length characters of --charset (words: --length words, joined by -).",
    "How it reaches its target before it is stored: nothing (the value is only read from coffer);",
    "--apply-runbook R runs runbook R with OLD_VALUE and NEW_VALUE, and must exit 0;",
    "--apply-postgres SECRET:ROLE runs ALTER ROLE ROLE PASSWORD over the admin connection string",
    "held in secret SECRET, then logs in as ROLE with the new value. Only when that succeeded is the",
    "new version written; a failure is recorded and retried with backoff (`coffer rotation show`).",
    "",
    POLICY_HELP_END,
  ].join("\n"),
  examples: [
    "coffer rotation set app/hmac-key --every 30d --charset alnum --length 32",
    "coffer rotation set db/app-password --every 7d --charset alnum --length 40 --apply-postgres db/admin-url:app_user",
    "coffer rotation set api/token --every 90d --charset hex --length 64 --apply-runbook rotate-api-token --json",
  ],
  flags: {
    every: { type: "string", arg: "DUR", help: "rotation period, e.g. 30d, 12h (none: only when asked)" },
    charset: { type: "string", arg: "C", help: "alnum (default), hex, base64, words" },
    length: { type: "string", arg: "N", help: "characters, or words for --charset words (default 32, 7 words)" },
    "apply-runbook": { type: "string", arg: "R", help: "apply each new value by running runbook R (OLD_VALUE, NEW_VALUE)" },
    "apply-postgres": { type: "string", arg: "SECRET:ROLE", help: "apply with ALTER ROLE over the connection string in SECRET" },
    server: SERVER_FLAG,
    json: JSON_FLAG,
  },
  async run(ctx) {
    const name = oneArg(ctx, "the secret NAME", "rotation set NAME [--every DUR] …");
    const every = stringFlag(ctx, "every");
    if (every !== undefined) parseDurationSeconds(every, "--every");
    const charset = parseCharset(stringFlag(ctx, "charset") ?? "alnum");
    const lengthText = stringFlag(ctx, "length");
    const length = lengthText !== undefined ? parseWhole(lengthText, "--length", 1) : defaultLength(charset);
    const runbook = stringFlag(ctx, "apply-runbook");
    const postgres = stringFlag(ctx, "apply-postgres");
    if (runbook !== undefined && postgres !== undefined) throw new CofferError("E_USAGE", "give one apply target: --apply-runbook or --apply-postgres, not both");
    const apply: RotationApply = runbook !== undefined ? { runbook } : postgres !== undefined ? parsePostgresApply(postgres) : null;
    const view = await call(ctx, "rotation set", (c) => c.setPolicy(name, { ...(every !== undefined && { every }), generate: { charset, length }, apply }));
    if (ctx.flags.json === true) return printJson(ctx, view);
    ctx.say(`rotation of ${view.name} set: ${view.every !== null ? `every ${view.every}` : "only when asked"}, ${describeGenerator(view.generate)}, apply: ${applyText(view.apply)}`);
  },
};

export const rotationShow: Command = {
  name: "rotation show",
  usage: "NAME [--server URL] [--json]",
  details: [
    "A secret's rotation policy and where it stands: ok, rotating, failing (the last attempt failed and",
    "is retried; the error is shown), or unknown (a runbook apply was cut off by a restart: check the",
    "target, then `coffer rotate NAME`).",
    "",
    POLICY_HELP_END,
  ].join("\n"),
  examples: ["coffer rotation show db/app-password", "coffer rotation show db/app-password --json | jq .lastError"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the secret NAME", "rotation show NAME");
    const v = await call(ctx, "rotation show", (c) => c.getPolicy(name));
    if (ctx.flags.json === true) return printJson(ctx, v);
    const lines = [
      `name:         ${v.name}`,
      `every:        ${v.every ?? "only when asked"}`,
      `generate:     ${describeGenerator(v.generate)}`,
      `apply:        ${applyText(v.apply)}`,
      `state:        ${v.state}${v.failures > 0 ? ` (${v.failures} failed attempt${v.failures === 1 ? "" : "s"})` : ""}`,
      `next:         ${v.nextAt === null ? "only when asked" : `${wholeSeconds(v.nextAt)}${v.due ? " (due)" : ""}`}`,
      `last rotated: ${v.lastRotatedAt === null ? "never" : wholeSeconds(v.lastRotatedAt)}`,
      ...(v.lastError !== null ? [`last error:   ${v.lastError}${v.lastErrorAt !== null ? ` (${wholeSeconds(v.lastErrorAt)})` : ""}`] : []),
      `updated:      ${wholeSeconds(v.updatedAt)} by ${v.updatedBy}`,
      "",
    ];
    ctx.out(lines.join("\n"));
  },
};

export const rotationRm: Command = {
  name: "rotation rm",
  usage: "NAME [--server URL] [--json]",
  details: ["Removes a secret's rotation policy: it is no longer rotated. The secret and its versions stay.", "", POLICY_HELP_END].join("\n"),
  examples: ["coffer rotation rm app/hmac-key"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the secret NAME", "rotation rm NAME");
    await call(ctx, "rotation rm", (c) => c.deletePolicy(name));
    if (ctx.flags.json === true) return printJson(ctx, { name, deleted: true });
    ctx.say(`rotation of ${name} removed; the secret stays`);
  },
};

export const rotationList: Command = {
  name: "rotation list",
  usage: "[--due] [--server URL] [--json]",
  details: ["The rotation policies you may see, by name, with when each is next due and its state.", "", POLICY_HELP_END].join("\n"),
  examples: ["coffer rotation list", "coffer rotation list --due", "coffer rotation list --json | jq -r '.[] | select(.state == \"failing\") | .name'"],
  flags: { due: { type: "boolean", help: "only those whose rotation is due" }, server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unknown argument "${ctx.args[0]}"; usage: coffer rotation list [--due]`);
    const due = ctx.flags.due === true;
    const rows = await call(ctx, "rotation list", (c) => c.listPolicies({ due }));
    printRotations(ctx, rows, due ? "no secret's rotation is due" : "no rotation policies; `coffer rotation set NAME --every 30d` adds one");
  },
};

export const rotate: Command = {
  name: "rotate",
  usage: "NAME [--server URL] [--json]",
  details: [
    "In the local store the value comes from the generator remembered by `coffer set NAME --generate`",
    "(a secret set by hand has none: set it with --generate first); like any write it restarts the",
    "--rotate-every period. The local store has no apply step: whatever reads the secret from coffer",
    "gets the new value.",
    "On a server it runs the secret's rotation policy (`coffer rotation set`): generate, apply to the",
    "target, test, and only then write the new version.",
    "",
    REMOTE_HELP,
    "",
    EXIT_HELP,
  ].join("\n"),
  examples: ["coffer rotate app/session-secret", "coffer rotate db/app-password --server https://coffer.example.com", "coffer rotate app/hmac-key --json"],
  completes: "secret",
  flags: { server: REMOTE_FLAG, json: { type: "boolean", help: "print {name, version, …} as JSON" } },
  async run(ctx) {
    const name = oneArg(ctx, "the secret NAME", "rotate NAME");
    const client = await remoteClient(ctx);
    if (client !== undefined) {
      const r = await onServer(ctx, (c) => new RotationClient(c).rotateNow(name));
      if (ctx.flags.json === true) return printJson(ctx, r);
      return ctx.say(`rotated ${r.name} to v${r.version}`);
    }
    const r = await withStore(ctx, (s) => s.rotate(name));
    if (ctx.flags.json === true) return printJson(ctx, r);
    ctx.say(`rotated ${r.name} to v${r.version} (generated: ${describeGenerator(r.generator)})`);
  },
};

/** Prints rotation policies: a table, or with --json the list; `empty` (on stderr) when there are none. */
export function printRotations(ctx: Context, rows: readonly RotationView[], empty: string): void {
  if (ctx.flags.json === true) return printJson(ctx, rows);
  if (rows.length === 0) return ctx.say(empty);
  ctx.out(table(
    ["NAME", "EVERY", "NEXT", "STATE", "LAST ROTATED", "APPLY"],
    rows.map((r) => [
      r.name, r.every ?? "-", r.nextAt === null ? "-" : `${wholeSeconds(r.nextAt)}${r.due ? " (due)" : ""}`,
      r.state + (r.failures > 0 ? ` (${r.failures})` : ""), r.lastRotatedAt === null ? "never" : wholeSeconds(r.lastRotatedAt), applyText(r.apply),
    ]),
  ));
}

/**
 * Prints what a revocation with rotation did: the secrets rotated (name → new version) and those
 * left to rotate by hand, with why. Headings on stderr, the lists on stdout.
 */
export function printRotationReport(ctx: Context, report: RotationReport, seen: string): void {
  if (report.rotated.length > 0) {
    ctx.say(`rotated ${report.rotated.length} secret${report.rotated.length === 1 ? "" : "s"} ${seen}:`);
    ctx.out(table(["NAME", "NEW VERSION"], report.rotated.map((r) => [r.name, String(r.version)])));
  }
  if (report.manual.length > 0) {
    ctx.say(`left to rotate by hand: ${report.manual.length} secret${report.manual.length === 1 ? "" : "s"} ${seen}:`);
    ctx.out(table(["NAME", "WHY"], report.manual.map((m) => [m.name, m.reason])));
  } else {
    ctx.say("nothing is left to rotate by hand");
  }
}

function applyText(a: RotationApply): string {
  if (a === null) return "nothing";
  if ("runbook" in a) return `runbook ${a.runbook}`;
  return `postgres role ${a.postgres.role} (connection: ${a.postgres.connection})`;
}

/**
 * Runs `fn` with the rotation API of the command's server; with no server at all, a usage error
 * saying that rotation policies are a server feature (and what the local store offers).
 */
function call<T>(ctx: Context, command: string, fn: (c: RotationClient) => Promise<T>): Promise<T> {
  const named = stringFlag(ctx, "server") ?? (ctx.env.COFFER_SERVER?.trim() || undefined);
  if (named === undefined && savedServers(ctx.env).length === 0) {
    throw new CofferError("E_USAGE", `coffer ${command} needs a coffer server (--server URL, or \`coffer login URL\` first): ` +
      "scheduling and apply are server features. The local store rotates only when asked: " +
      "`coffer set NAME --generate --rotate-every 30d`, then `coffer rotate NAME`; `coffer list --due` shows what is due");
  }
  return onServer(ctx, (client) => fn(new RotationClient(client)));
}
