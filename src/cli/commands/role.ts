/**
 * `coffer role …` (issue 14): the roles of a coffer server — list, show, set (create or replace a
 * database role's rules) and rm — over src/client/roles.ts. Roles from the server's config file
 * are shown as managed by config and cannot be changed here. Data goes to stdout (tables,
 * `--json`), messages to stderr.
 */
import { CofferError } from "../../errors.ts";
import { parseRule, RoleClient, type RoleInfo } from "../../client/roles.ts";
import type { Command, Context, Flag } from "../command.ts";
import { table } from "../io.ts";
import { oneArg, printJson } from "../open.ts";
import { onServer, SERVER_FLAG, SERVER_HELP } from "../remote.ts";

const JSON_FLAG: Flag = { type: "boolean", help: "print machine-readable JSON on stdout" };
const RULE_HELP = [
  "A rule is PATH:CAPS, split at the last ':' (so 'sys:tokens:read' and 'runbook:*:run' work):",
  "PATH is a secret-name pattern (app/*, app/**, db/api-*), a system path (sys:tokens, sys:audit,",
  "sys:metrics, sys:roles) or runbook:NAME; CAPS are read, list, write, delete (purge on secret",
  "names only, never implied by delete; run, approve on runbooks), comma-separated. You can only",
  "grant what you hold yourself: each capability on a pattern that one of your own rules contains",
  "(root holds everything).",
].join("\n");

export const roleList: Command = {
  name: "role list",
  usage: "[--server URL] [--json]",
  details: ["Every role of the server: those of its config file (MANAGED config, read-only here) and",
    "those kept in its database (MANAGED api). Needs read on sys:roles.", "", SERVER_HELP].join("\n"),
  examples: ["coffer role list", "coffer role list --server https://coffer.example.com --json"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unknown argument "${ctx.args[0]}"; usage: coffer role list`);
    const roles = await call(ctx, (c) => c.list());
    if (ctx.flags.json === true) return printJson(ctx, roles);
    if (roles.length === 0) return ctx.say("no roles");
    ctx.out(table(["NAME", "MANAGED", "VERSION", "RULES"], roles.map((r) => [r.name, r.managedBy, r.version === null ? "" : String(r.version), rulesText(r)])));
  },
};

export const roleShow: Command = {
  name: "role show",
  usage: "NAME [--server URL] [--json]",
  details: ["A role's rules, one a line as PATH:CAPS, and who last changed it. Needs read on sys:roles.", "", SERVER_HELP].join("\n"),
  examples: ["coffer role show deployer", "coffer role show deployer --json"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the role NAME", "role show NAME");
    const r = await call(ctx, (c) => c.get(name));
    if (ctx.flags.json === true) return printJson(ctx, r);
    const lines = [
      `name:       ${r.name}`,
      `managed by: ${r.managedBy}${r.managedBy === "config" ? " (read-only here: edit the server's config file)" : ""}`,
      ...(r.version === null ? [] : [`version:    ${r.version}`, `updated:    ${r.updatedAt ?? ""} by ${r.updatedBy ?? ""}`]),
      `rules:${r.rules.length === 0 ? " none" : ""}`,
      ...r.rules.map((rule) => `  ${rule.path}:${rule.capabilities.join(",")}`),
      "",
    ];
    ctx.out(lines.join("\n"));
  },
};

export const roleSet: Command = {
  name: "role set",
  usage: "NAME --rule PATH:CAPS… [--server URL] [--json]",
  details: ["Creates the role in the server's database, or replaces all its rules with these. It takes",
    "effect at once on this server and on its other instances within about a second. Needs write",
    "on sys:roles; a config role's name is refused (E_CONFLICT).", "", RULE_HELP, "", SERVER_HELP].join("\n"),
  examples: [
    "coffer role set deployer --rule 'app/**:read,list,write'",
    "coffer role set ops --rule 'sys:tokens:read' --rule 'runbook:*:run'",
  ],
  flags: { rule: { type: "string", multiple: true, arg: "PATH:CAPS", help: "a rule (repeatable): PATH:CAPS, split at the last ':'" }, server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the role NAME", "role set NAME --rule PATH:CAPS…");
    const given = ctx.flags.rule;
    const texts = Array.isArray(given) ? given.map(String) : typeof given === "string" ? [given] : [];
    if (texts.length === 0) throw new CofferError("E_USAGE", "give at least one --rule PATH:CAPS, e.g. --rule 'app/**:read,list'");
    const rules = texts.map(parseRule);
    const r = await call(ctx, (c) => c.set(name, rules));
    if (ctx.flags.json === true) return printJson(ctx, r);
    ctx.say(`role ${r.name} set (version ${r.version ?? "?"}, ${r.rules.length} rule${r.rules.length === 1 ? "" : "s"})`);
  },
};

export const roleRm: Command = {
  name: "role rm",
  usage: "NAME [--server URL] [--json]",
  details: ["Deletes a role kept in the server's database; tokens naming it lose what it granted, on",
    "every instance within about a second. Needs delete on sys:roles; a config role cannot be",
    "deleted here (E_CONFLICT).", "", SERVER_HELP].join("\n"),
  examples: ["coffer role rm deployer", "coffer role rm deployer --json"],
  flags: { server: SERVER_FLAG, json: JSON_FLAG },
  async run(ctx) {
    const name = oneArg(ctx, "the role NAME", "role rm NAME");
    await call(ctx, (c) => c.remove(name));
    if (ctx.flags.json === true) return printJson(ctx, { name, deleted: true });
    ctx.say(`role ${name} deleted`);
  },
};

function rulesText(r: RoleInfo): string {
  const text = r.rules.map((rule) => `${rule.path}:${rule.capabilities.join(",")}`).join(" ");
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** Runs `fn` with the command's server ({@link onServer}: a 401 gets the hint to log in again). */
function call<T>(ctx: Context, fn: (c: RoleClient) => Promise<T>): Promise<T> {
  return onServer(ctx, (client) => fn(new RoleClient(client)));
}
