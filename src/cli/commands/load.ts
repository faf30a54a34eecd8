import { randomBytes } from "node:crypto";
import { appendFileSync, lstatSync, readlinkSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, isAbsolute, join, normalize, resolve as resolvePath } from "node:path";
import { CofferError } from "../../errors.ts";
import { formatDocker, formatDotenv } from "../../deliver/formats/dotenv.ts";
import { formatGithub } from "../../deliver/formats/github.ts";
import { formatJson, formatShell } from "../../deliver/formats/shell.ts";
import type { ResolvedPlan } from "../../deliver/resolve.ts";
import {
  createRuntimeDir, LOAD_FILE, recordedDir, recordedDirs, removeRecordedDir, runtimeBase, writeRuntimeFile,
} from "../../deliver/runtime-dir.ts";
import type { Command, Context } from "../command.ts";
import { auditDelivery } from "../../deliver/audit.ts";
import { DELIVERY_FLAGS, loadPlan, projectKey, withResolved } from "../delivery.ts";
import { stringFlag } from "../open.ts";

const FORMATS = ["dotenv", "shell", "json", "github", "docker"] as const;
type Format = (typeof FORMATS)[number];

export const load: Command = {
  name: "load",
  summary: "print an environment's secrets as dotenv, shell, JSON, for GitHub Actions or Docker",
  usage: "[-e ENV] [--config F] [--format dotenv|shell|json|github|docker] [-s LINK]\n       coffer load --clean [--all]",
  details: [
    "dotenv (default) quotes every value so that the dotenv package, dotenvx and a POSIX shell",
    "(`set -a; . ./.env`) read it back exactly and expand or run nothing; a value no quoting carries",
    "in all three (a ' with \" $ ` or \\, a carriage return, a trailing \\) is refused, naming the",
    "variable. docker is raw `K=value` lines for `docker run --env-file` (a value with a line break",
    "is refused). shell is `export K='…'` lines for `eval`/`source` in bash. github prints",
    "::add-mask:: for every value and appends the variables to $GITHUB_ENV (multi-line values with",
    "a random delimiter). files: entries are written to a private runtime dir that stays after",
    "coffer exits, and their variables hold the paths. -s LINK writes the dotenv file into that dir",
    "and makes LINK a symlink to it, so no secret sits in the project dir. LINK may only replace a",
    "link coffer made; anything else there is refused. A dir stays while its LINK points at it, or",
    "(without -s) while the terminal session that ran load lives; a later run or load sweeps the",
    "rest. --clean removes this project's dirs (and the links to them) now; --all every project's.",
  ].join("\n"),
  examples: [
    "eval \"$(coffer load --format shell)\"",
    "coffer load -e ci --format github",
    "coffer load --format docker > app.env && docker run --env-file app.env IMAGE",
    "coffer load -s .env && npm run dev",
    "coffer load --clean",
  ],
  flags: {
    ...DELIVERY_FLAGS,
    format: { type: "string", arg: "FMT", help: "dotenv (default), shell, json, github or docker" },
    symlink: { type: "string", short: "s", arg: "LINK", help: "write a dotenv file in the runtime dir and symlink LINK to it" },
    clean: { type: "boolean", help: "remove the runtime dirs load made for this project (and links to them)" },
    all: { type: "boolean", help: "with --clean: every project's, not only this one's" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "load takes no arguments; see `coffer load --help`");
    if (ctx.flags.clean === true) return clean(ctx);
    if (ctx.flags.all === true) throw new CofferError("E_USAGE", "--all goes with --clean");
    const format = (stringFlag(ctx, "format") ?? "dotenv") as Format;
    if (!FORMATS.includes(format)) throw new CofferError("E_INVALID_VALUE", `invalid --format ${JSON.stringify(format)}: one of ${FORMATS.join(", ")}`);
    const symlink = stringFlag(ctx, "symlink");
    const link = symlink !== undefined ? resolvePath(symlink) : undefined;
    if (link !== undefined && format !== "dotenv") throw new CofferError("E_USAGE", "-s LINK writes a dotenv file; leave out --format");
    if (format === "github" && (ctx.env.GITHUB_ENV === undefined || ctx.env.GITHUB_ENV === "")) {
      throw new CofferError("E_USAGE", "--format github appends to $GITHUB_ENV, which is not set (it is, inside GitHub Actions)");
    }
    const base = runtimeBase({ env: ctx.env });
    const previous = link !== undefined ? checkLink(link, base) : undefined;
    const project = projectKey(ctx);
    const plan = loadPlan(ctx);
    await withResolved(ctx, plan, (resolved, providers) => {
      const needDir = link !== undefined || resolved.files.length > 0;
      const dir = needDir
        ? createRuntimeDir({ kind: "load", env: ctx.env, warn: (m) => ctx.say(`coffer: ${m}`), project, ...(link !== undefined && { link }) })
        : undefined;
      try {
        const vars = variables(resolved, dir?.path);
        if (link !== undefined) {
          const file = writeRuntimeFile(dir!.path, LOAD_FILE, Buffer.from(formatDotenv(vars)), 0o400);
          replaceLink(link, file);
          // The old dir goes only when its record says it was made for this very LINK.
          if (previous !== undefined && recordedDir(base, previous)?.owner.link === link) removeRecordedDir(base, previous, "load");
          ctx.say(`${symlink!} -> ${file} (${vars.length} variables; in memory until reboot or the next load -s)`);
        } else if (format === "github") {
          const out = formatGithub(vars);
          appendFileSync(ctx.env.GITHUB_ENV!, out.envFile);
          ctx.out(out.stdout);
        } else {
          const write = { shell: formatShell, json: formatJson, docker: formatDocker, dotenv: formatDotenv }[format];
          ctx.out(write(vars));
        }
      } catch (err) {
        dir?.remove();
        throw err;
      }
      if (dir !== undefined && link === undefined) ctx.say(`coffer: files are in ${dir.path} while this terminal session lasts (or until \`coffer load --clean\`)`);
      auditDelivery(providers, plan, `load ${format}`);
    });
  },
};

function variables(resolved: ResolvedPlan, dir: string | undefined): [string, string][] {
  return [
    ...resolved.env.map((e) => [e.variable, e.value.reveal()] as [string, string]),
    ...resolved.files.map((f) => [f.variable, writeRuntimeFile(dir!, f.variable, f.value.bytes(), f.mode)] as [string, string]),
  ];
}

/**
 * LINK may be replaced only when it is a symlink of the form coffer makes: to
 * `BASE/<16 hex>/.env`, absolute, without `..` or `.`. A real file there (someone's own .env) is
 * never overwritten, and a link anywhere else (a committed `.env -> …/../bus`) is refused
 * before anything is resolved: its target is never removed.
 * @returns the dir the old link points into (it may be gone), to remove once it is replaced
 */
function checkLink(link: string, base: string): string | undefined {
  let st;
  try {
    st = lstatSync(link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CofferError("E_CONFLICT", `cannot use ${link} as LINK: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}; choose another LINK`);
  }
  if (!st.isSymbolicLink()) {
    throw new CofferError("E_CONFLICT", `${link} exists and is not a link coffer made; move it away, or choose another LINK`);
  }
  const target = readlinkSync(link);
  const dir = dirname(target);
  if (!isAbsolute(target) || normalize(target) !== target || basename(target) !== LOAD_FILE || dirname(dir) !== base || !/^[0-9a-f]{16}$/.test(basename(dir))) {
    throw new CofferError(
      "E_CONFLICT",
      `${link} is a link coffer did not make (it points to ${JSON.stringify(target)}, not into ${base}); remove it yourself if you do not need it, or choose another LINK`,
    );
  }
  return dir;
}

// The new link is made beside LINK and renamed over it: LINK is always a link, old or new.
function replaceLink(link: string, target: string): void {
  const tmp = join(dirname(link), `.${basename(link)}.coffer-${randomBytes(6).toString("hex")}`);
  symlinkSync(target, tmp);
  try {
    const st = lstatSync(link, { throwIfNoEntry: false });
    if (st !== undefined && !st.isSymbolicLink()) {
      throw new CofferError("E_CONFLICT", `${link} was replaced by something that is not a link while coffer was loading; left as it is`);
    }
    renameSync(tmp, link);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** `load --clean [--all]`: removes the load dirs recorded for this project (or all), and the links coffer made to them. */
function clean(ctx: Context): number {
  if (ctx.flags.format !== undefined || ctx.flags.symlink !== undefined) throw new CofferError("E_USAGE", "--clean takes no --format or -s");
  const all = ctx.flags.all === true;
  const base = runtimeBase({ env: ctx.env });
  const project = all ? undefined : projectKey(ctx);
  const dirs = recordedDirs(base).filter((d) => d.owner.kind === "load" && (all || d.owner.project === project));
  let count = 0;
  for (const d of dirs) {
    const link = d.owner.link;
    let linkGone = false;
    if (link !== undefined) {
      try {
        if (lstatSync(link).isSymbolicLink() && readlinkSync(link) === join(d.path, LOAD_FILE)) {
          rmSync(link);
          linkGone = true;
        }
      } catch {
        // no link any more: only the dir goes
      }
    }
    if (!removeRecordedDir(base, d.path, "load")) continue;
    count++;
    ctx.say(`removed ${d.path}${linkGone ? ` and the link ${link!}` : ""}`);
  }
  if (count === 0) ctx.say(`nothing to remove: no dirs of coffer load ${all ? "" : `for ${project!} `}in ${base}`);
  return 0;
}
