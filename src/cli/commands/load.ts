import { appendFileSync, lstatSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { CofferError } from "../../errors.ts";
import { disposeResolved, resolvePlan, type ResolvedPlan } from "../../deliver/resolve.ts";
import { createRuntimeDir, runtimeBase, writeRuntimeFile } from "../../deliver/runtime-dir.ts";
import type { Command } from "../command.ts";
import { auditDelivery, DELIVERY_FLAGS, loadPlan, openProviders } from "../delivery.ts";

const FORMATS = ["dotenv", "shell", "json", "github"] as const;
type Format = (typeof FORMATS)[number];

export const load: Command = {
  name: "load",
  summary: "print an environment's secrets as dotenv, shell, JSON or for GitHub Actions",
  usage: "[-e ENV] [--config F] [--format dotenv|shell|json|github] [-s LINK]",
  details: [
    "dotenv (default) is read back by the dotenv package exactly; a value it cannot carry is refused,",
    "naming the variable. shell is `export K='…'` lines for `eval`/`source` in bash. github prints",
    "::add-mask:: for every value and appends the variables to $GITHUB_ENV (multi-line values with",
    "a random delimiter). files: entries are written to a private runtime dir that stays after",
    "coffer exits, and their variables hold the paths. -s LINK writes the dotenv file into that dir",
    "and makes LINK a symlink to it, so no secret sits in the project dir.",
  ].join("\n"),
  examples: [
    "eval \"$(coffer load --format shell)\"",
    "coffer load -e ci --format github",
    "coffer load -s .env && npm run dev",
  ],
  flags: {
    ...DELIVERY_FLAGS,
    format: { type: "string", arg: "FMT", help: "dotenv (default), shell, json or github" },
    symlink: { type: "string", short: "s", arg: "LINK", help: "write a dotenv file in the runtime dir and symlink LINK to it" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "load takes no arguments; see `coffer load --help`");
    const format = parseFormat(ctx.flags.format);
    const link = typeof ctx.flags.symlink === "string" ? resolvePath(ctx.flags.symlink) : undefined;
    if (link !== undefined && format !== "dotenv") throw new CofferError("E_USAGE", "-s LINK writes a dotenv file; leave out --format");
    if (format === "github" && (ctx.env.GITHUB_ENV === undefined || ctx.env.GITHUB_ENV === "")) {
      throw new CofferError("E_USAGE", "--format github appends to $GITHUB_ENV, which is not set (it is, inside GitHub Actions)");
    }
    if (link !== undefined) checkLink(link);
    const plan = loadPlan(ctx);
    const providers = openProviders(ctx, plan);
    try {
      const resolved = await resolvePlan(plan, providers);
      try {
        const formats = await import("../../deliver/format.ts");
        const needDir = link !== undefined || resolved.files.length > 0;
        const dir = needDir ? createRuntimeDir({ kind: "load", env: ctx.env, warn: (m) => ctx.say(`coffer: ${m}`) }) : undefined;
        try {
          const vars = variables(resolved, dir?.path);
          if (link !== undefined) {
            const file = writeRuntimeFile(dir!.path, ".env", Buffer.from(formats.formatDotenv(vars)), 0o400);
            replaceLink(link, file, ctx.env);
            ctx.say(`${ctx.flags.symlink as string} -> ${file} (${vars.length} variables; in memory until reboot or the next load -s)`);
          } else if (format === "github") {
            const out = formats.formatGithub(vars);
            appendFileSync(ctx.env.GITHUB_ENV!, out.envFile);
            ctx.out(out.stdout);
          } else {
            ctx.out(format === "shell" ? formats.formatShell(vars) : format === "json" ? formats.formatJson(vars) : formats.formatDotenv(vars));
          }
        } catch (err) {
          dir?.remove();
          throw err;
        }
        if (dir !== undefined && link === undefined) ctx.say(`coffer: files are in ${dir.path} until you remove it or reboot`);
        auditDelivery(providers, plan, `load ${format}`);
      } finally {
        disposeResolved(resolved);
      }
    } finally {
      await providers.close();
    }
  },
};

function parseFormat(v: string | boolean | string[] | undefined): Format {
  if (v === undefined) return "dotenv";
  if (typeof v !== "string" || !(FORMATS as readonly string[]).includes(v)) {
    throw new CofferError("E_INVALID_VALUE", `invalid --format ${JSON.stringify(String(v))}: one of ${FORMATS.join(", ")}`);
  }
  return v as Format;
}

function variables(resolved: ResolvedPlan, dir: string | undefined): [string, string][] {
  return [
    ...resolved.env.map((e) => [e.variable, e.value.reveal()] as [string, string]),
    ...resolved.files.map((f) => [f.variable, writeRuntimeFile(dir!, f.variable, f.value.bytes(), f.mode)] as [string, string]),
  ];
}

// LINK may be replaced only when it is a symlink coffer made (into a runtime dir): a real file
// there (someone's own .env) is never overwritten.
function checkLink(link: string): void {
  let st;
  try {
    st = lstatSync(link);
  } catch {
    return;
  }
  if (!st.isSymbolicLink()) {
    throw new CofferError("E_CONFLICT", `${link} exists and is not a link coffer made; move it away, or choose another LINK`);
  }
}

function replaceLink(link: string, target: string, env: NodeJS.ProcessEnv): void {
  let old: string | undefined;
  try {
    old = readlinkSync(link);
  } catch {
    old = undefined;
  }
  if (old !== undefined) rmSync(link);
  symlinkSync(target, link);
  // The dir the old link pointed into is this load's predecessor: it goes.
  const base = runtimeBase({ env });
  if (old !== undefined && dirname(dirname(old)) === base) rmSync(dirname(old), { recursive: true, force: true });
}
