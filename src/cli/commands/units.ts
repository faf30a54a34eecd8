import { accessSync, chmodSync, constants, existsSync, mkdirSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isBinary } from "../../core/assets.ts";
import { parseUnitSecrets, renderUnits, splitCommandLine } from "../../agent/units.ts";
import type { UnitSource, UnitStyle } from "../../agent/units.ts";
import { CofferError } from "../../errors.ts";
import type { Command, Context } from "../command.ts";
import { stringFlag } from "../open.ts";

function required(ctx: Context, flag: string, example: string): string {
  const v = stringFlag(ctx, flag);
  if (v === undefined || v === "") throw new CofferError("E_USAGE", `--${flag} is required, e.g. --${flag} ${example}`);
  return v;
}

/**
 * The command line of this coffer: the single executable itself, or Node with the bundle's bin.js
 * (next to this chunk when bundled, else in the clone's dist/bundle).
 */
function defaultCoffer(): string[] {
  if (isBinary()) return [realpathSync(process.execPath)];
  const here = dirname(fileURLToPath(import.meta.url));
  for (const bin of [join(here, "bin.js"), resolve(here, "../../../dist/bundle/bin.js")]) {
    if (existsSync(bin)) return [realpathSync(process.execPath), realpathSync(bin)];
  }
  throw new CofferError("E_USAGE", "cannot find coffer's dist/bundle/bin.js (run `npm run build` in the clone), or give --coffer \"/abs/node /abs/bin.js\"");
}

/** A bare program name is looked up on PATH, a relative path made absolute: the unit needs an absolute one. */
function absoluteProgram(ctx: Context, program: string): string {
  if (isAbsolute(program)) return program;
  if (program.includes("/")) return resolve(program);
  for (const dir of (ctx.env.PATH ?? "").split(delimiter)) {
    if (dir === "" || !isAbsolute(dir)) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; next PATH entry
    }
  }
  throw new CofferError("E_USAGE", `--exec: ${JSON.stringify(program)} is not on PATH; give its absolute path`);
}

export const units: Command = {
  name: "units",
  usage: "--name NAME --exec CMD --secrets IDS (--provider SPEC | --config F) --out DIR [--style side-car|credentials] [--user USER] [--coffer \"NODE BIN\"] [--force]",
  details: [
    "Writes NAME-secrets.service (runs `coffer agent`, which fetches the secrets, signals readiness",
    "and watches for changes) and NAME.service (your CMD), both hardened, into DIR (mode 0644).",
    "side-car (default): the agent writes /tmp/<id> and /tmp/secrets.env into a PrivateTmp the",
    "service joins; the service starts through `coffer exec-env /tmp/secrets.env -- CMD`; on a",
    "change the agent exits and both units restart. credentials: the agent writes /run/coffer/NAME",
    "and the service gets each file through LoadCredential= in $CREDENTIALS_DIRECTORY (`/` in an",
    "ID becomes `_`); on a change the agent restarts NAME.service. The service runs as a",
    "DynamicUser= unless --user. IDS: comma-separated ID or ID=ENV_NAME. CMD and --coffer are",
    "split like a shell would, without expansions. Install: see docs/systemd.md.",
  ].join("\n"),
  examples: [
    "coffer units --name web --exec '/usr/bin/web --port 8080' --secrets db/password=DB_PASSWORD,api-key --provider folder:/etc/web/secrets --out /etc/coffer/units",
    "coffer units --name web --exec /usr/bin/web --secrets db/password --config /etc/coffer/agent.yml --style credentials --user web --out ./units",
  ],
  flags: {
    name: { type: "string", arg: "NAME", help: "the service's unit name, without .service" },
    exec: { type: "string", arg: "CMD", help: "the service's command line (one string)" },
    secrets: { type: "string", arg: "IDS", help: "ID[=ENV_NAME],… the secrets the service gets" },
    provider: { type: "string", arg: "SPEC", help: "where the agent fetches: folder:/abs/dir, store, vault:https://…#mount" },
    config: { type: "string", arg: "F", help: "the agent config file instead (its entry for NAME lists the backend)" },
    out: { type: "string", arg: "DIR", help: "write the unit files here (created if missing)" },
    style: { type: "string", arg: "S", help: "side-car (PrivateTmp, default) or credentials (LoadCredential=)" },
    user: { type: "string", arg: "USER", help: "run the service as this user instead of DynamicUser=yes" },
    coffer: { type: "string", arg: "CMD", help: "how units run coffer (default: this node and this bin.js, absolute)" },
    force: { type: "boolean", help: "overwrite unit files that exist" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unexpected argument ${JSON.stringify(ctx.args[0])}; give CMD with --exec '…'`);
    const name = required(ctx, "name", "web");
    const provider = stringFlag(ctx, "provider");
    const config = stringFlag(ctx, "config");
    if ((provider === undefined) === (config === undefined)) {
      throw new CofferError("E_USAGE", "give exactly one of --provider SPEC and --config F");
    }
    const style = stringFlag(ctx, "style") ?? "side-car";
    if (style !== "side-car" && style !== "credentials") {
      throw new CofferError("E_USAGE", `--style ${JSON.stringify(style)}: side-car or credentials`);
    }
    const secretsFlag = stringFlag(ctx, "secrets");
    // With --config the agent reads the IDs from the config; the side-car style needs none here.
    const secrets = secretsFlag === undefined && config !== undefined && style === "side-car"
      ? []
      : parseUnitSecrets(required(ctx, "secrets", "db/password=DB_PASSWORD,api-key"));
    const out = resolve(required(ctx, "out", "./units"));
    const [program, ...rest] = splitCommandLine(required(ctx, "exec", "'/usr/bin/web --port 8080'"));
    if (program === undefined) throw new CofferError("E_USAGE", "--exec: an empty command line");
    const cofferFlag = stringFlag(ctx, "coffer");
    const coffer = cofferFlag === undefined ? defaultCoffer() : splitCommandLine(cofferFlag);
    const source: UnitSource = provider !== undefined
      ? { provider: provider.startsWith("folder:") ? `folder:${resolve(provider.slice("folder:".length))}` : provider }
      : { config: resolve(config!) };
    const user = stringFlag(ctx, "user");
    const rendered = renderUnits({
      name,
      exec: [absoluteProgram(ctx, program), ...rest],
      secrets,
      source,
      coffer,
      style: style satisfies UnitStyle,
      ...(user !== undefined && { user }),
    });

    const hidden = coffer.find((p) => /^\/(home|root|run\/user)(\/|$)/.test(p));
    if (hidden !== undefined) {
      ctx.say(`coffer: warning: ${hidden} is under /home, /root or /run/user, which ProtectHome=yes hides from the units; install coffer elsewhere (e.g. /opt/coffer) or use --coffer`);
    }
    const targets = rendered.map((u) => ({ ...u, path: join(out, u.filename) }));
    if (ctx.flags.force !== true) {
      const existing = targets.filter((t) => existsSync(t.path)).map((t) => t.path);
      if (existing.length > 0) throw new CofferError("E_CONFLICT", `${existing.join(", ")} exists; --force overwrites`);
    }
    if (mkdirSync(out, { recursive: true }) !== undefined) chmodSync(out, 0o755);
    for (const t of targets) {
      writeFileSync(t.path, t.text, { flag: ctx.flags.force === true ? "w" : "wx" });
      // Unit files hold no secret, and systemd tools run by others read them.
      chmodSync(t.path, 0o644);
      ctx.out(`${t.path}\n`);
    }
    ctx.say(`wrote ${targets.length} units; install with: systemctl link ${targets.map((t) => t.path).join(" ")} && systemctl daemon-reload && systemctl enable --now ${name}.service`);
  },
};
