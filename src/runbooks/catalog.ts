/**
 * The runbooks of the server's `runbooks.dir` (issue 13): every `NAME.yml` directly in the
 * directory, read at start and again on SIGHUP ({@link RunbookCatalog.reload}). A file that fails
 * any check is an invalid entry with its problems, listed and logged but never run.
 *
 * The directory is a place others could plant a script in, so it is read as hostile input:
 * - the directory must be owned by the server's user or root and not writable by group or others;
 * - each file must be a regular file (a symlink is refused: it could point anywhere, such as
 *   master.key), owned by the server's user or root, not writable by group or others; the file is
 *   checked again through the descriptor it is read from (a file swapped between the check and the
 *   read is refused), and read with a cap (definition.ts MAX_RUNBOOK_BYTES);
 * - a runbook's name is its file name, one segment of the secret-name rule.
 * {@link RunbookCatalog.get} looks names up in the loaded map only: a name from a request never
 * reaches the filesystem, so `../x`, `%2e%2e%2fx` or `a/b` can only be "no such runbook".
 */
import { lstatSync, readdirSync, statSync, type Stats } from "node:fs";
import { join } from "node:path";
import { readConfigFile } from "../config/read.ts";
import { show } from "../config/yaml-checker.ts";
import { CofferError } from "../errors.ts";
import { checkRunbook, isRunbookName, MAX_RUNBOOK_BYTES, RUNBOOK_NAME_RULE, type Runbook } from "./definition.ts";

/** The most runbook files one directory may hold; the rest are left out, with an error in the log. */
export const MAX_RUNBOOKS = 1000;

/** A loaded runbook, valid (it may run) or not (it never runs). */
export type CatalogEntry =
  | { readonly name: string; readonly file: string; readonly valid: true; readonly runbook: Runbook; readonly warnings: readonly string[] }
  | { readonly name: string; readonly file: string; readonly valid: false; readonly problems: readonly string[] };

/** A line for the server's log (never a value: runbook files hold none). */
export interface CatalogLogLine {
  level: "info" | "warn" | "error";
  message: string;
}

/** Where the catalog reads from and what it refuses. */
export interface CatalogOptions {
  /** the runbooks directory (absolute) */
  dir: string;
  /**
   * why bubblewrap cannot run here, or undefined when it can; asked once per load, and only when a
   * runbook asks for `isolation: sandbox`. When it names a problem, every sandbox runbook is invalid.
   */
  sandboxProblem?: () => string | undefined;
  /** when set (production without allowUnsandboxed), every tempdir runbook is invalid with this problem */
  refuseTempdir?: string;
  /** the user tempdir scripts run as (runbooks.runAs), for the load's warning */
  runAs?: string;
  /** the server's uid (default process.getuid()): files must be owned by it or by root */
  uid?: number;
}

/** The runbooks of one directory. */
export class RunbookCatalog {
  readonly #options: CatalogOptions;
  #entries = new Map<string, CatalogEntry>();
  #log: CatalogLogLine[] = [];
  #loaded = false;

  constructor(options: CatalogOptions) {
    this.#options = options;
  }

  /** The directory read. */
  get dir(): string {
    return this.#options.dir;
  }

  /**
   * Reads the directory and every runbook in it, replacing what was loaded.
   * @returns the log lines of this load (see {@link logLines})
   * @throws CofferError E_CONFIG when the directory cannot be read or is not safe (owner, mode);
   *   the catalog then keeps what it held
   */
  load(): CatalogLogLine[] {
    const dir = this.#options.dir;
    const uid = this.#options.uid ?? process.getuid?.() ?? 0;
    let names: string[];
    try {
      const st = statSync(dir);
      if (!st.isDirectory()) throw new CofferError("E_CONFIG", `runbooks.dir ${dir} is not a directory`);
      const why = ownerProblem(st, uid, "directory");
      if (why !== undefined) throw new CofferError("E_CONFIG", `runbooks.dir ${dir}: ${why}; anyone who can write it could add a script the server runs`);
      names = readdirSync(dir).sort();
    } catch (err) {
      if (err instanceof CofferError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      throw new CofferError("E_CONFIG", `runbooks.dir ${dir} cannot be read (${code}); check runbooks.dir (COFFER_RUNBOOKS_DIR) and its permissions`, { cause: err });
    }
    const log: CatalogLogLine[] = [];
    const files = names.filter((f) => f.endsWith(".yml"));
    for (const f of names.filter((n) => n.endsWith(".yaml"))) {
      log.push({ level: "warn", message: `runbooks: ${join(dir, f)} is ignored: runbook files end in .yml` });
    }
    if (files.length > MAX_RUNBOOKS) {
      log.push({ level: "error", message: `runbooks: ${dir} holds ${files.length} .yml files; only the first ${MAX_RUNBOOKS} by name are loaded` });
      files.length = MAX_RUNBOOKS;
    }
    let sandbox: { problem: string | undefined } | undefined;
    const sandboxProblem = (): string | undefined => (sandbox ??= { problem: this.#options.sandboxProblem?.() }).problem;

    const entries = new Map<string, CatalogEntry>();
    for (const f of files) {
      const entry = this.#entry(dir, f, uid, sandboxProblem);
      entries.set(entry.name, entry);
      if (!entry.valid) {
        log.push({ level: "error", message: `runbook ${show(entry.name)} (${entry.file}) is invalid and will not run: ${entry.problems.join("; ")}` });
      } else {
        for (const w of entry.warnings) log.push({ level: "warn", message: `runbook ${show(entry.name)} (${entry.file}): ${w}` });
      }
    }
    const valid = [...entries.values()].filter((e) => e.valid).length;
    log.push({ level: "info", message: `runbooks: loaded ${entries.size} from ${dir} (${valid} valid, ${entries.size - valid} invalid)` });
    this.#entries = entries;
    this.#log = log;
    this.#loaded = true;
    return log;
  }

  /**
   * Reads the directory again (on SIGHUP). When the directory itself cannot be read, the previous
   * runbooks stay and the result says so.
   * @returns whether the runbooks were replaced, and the lines to log
   */
  reload(): { reloaded: boolean; log: CatalogLogLine[] } {
    try {
      return { reloaded: true, log: this.load() };
    } catch (err) {
      const kept = this.#loaded ? `the ${this.#entries.size} runbooks loaded before stay in use` : "no runbooks are loaded";
      return { reloaded: false, log: [{ level: "error", message: `runbooks: reload failed, ${kept}: ${(err as Error).message}` }] };
    }
  }

  /**
   * The entry of `name`, from the loaded map only (never the filesystem): undefined for a name
   * that is not a loaded runbook, whatever it holds (`../x`, `a/b`, `%2e%2e%2fx`).
   */
  get(name: unknown): CatalogEntry | undefined {
    return typeof name === "string" ? this.#entries.get(name) : undefined;
  }

  /** Every entry, valid or not, sorted by name. */
  list(): CatalogEntry[] {
    return [...this.#entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The log lines of the last load: invalid runbooks and their problems, tempdir warnings, a summary. */
  logLines(): CatalogLogLine[] {
    return [...this.#log];
  }

  #entry(dir: string, fileName: string, uid: number, sandboxProblem: () => string | undefined): CatalogEntry {
    const name = fileName.slice(0, -".yml".length);
    const file = join(dir, fileName);
    const invalid = (...problems: string[]): CatalogEntry => Object.freeze({ name, file, valid: false, problems: Object.freeze(problems) });
    if (!isRunbookName(name)) return invalid(`${fileName}: runbook name ${show(name)} is not allowed: ${RUNBOOK_NAME_RULE}`);

    let before: Stats;
    try {
      before = lstatSync(file);
    } catch (err) {
      return invalid(`${fileName}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    if (before.isSymbolicLink()) return invalid(`${fileName} is a symbolic link: a runbook must be a regular file in the directory (a link could point anywhere)`);
    if (!before.isFile()) return invalid(`${fileName} is not a regular file`);
    let text: string;
    try {
      text = readConfigFile(file, "runbook file", (st) => {
        // What is read is what was checked: the same file, and its owner and mode are fine.
        if (st.dev !== before.dev || st.ino !== before.ino) throw new CofferError("E_CONFIG", `${fileName} was replaced while it was read; reload again`);
        const why = ownerProblem(st, uid, "file");
        if (why !== undefined) throw new CofferError("E_CONFIG", `${fileName}: ${why}; the server would run a script others can change`);
      }, MAX_RUNBOOK_BYTES);
    } catch (err) {
      if (!(err instanceof CofferError)) throw err;
      return invalid(err.message.replace(`${file}: `, `${fileName}: `));
    }
    const r = checkRunbook(name, fileName, text);
    if ("problems" in r) return invalid(...r.problems);
    const runbook = r.runbook;
    const problems: string[] = [];
    const shell = shellProblem(runbook.shell);
    if (shell !== undefined) problems.push(`${fileName}: shell ${runbook.shell} ${shell}`);
    if (runbook.isolation === "sandbox") {
      const why = sandboxProblem();
      if (why !== undefined) problems.push(`${fileName}: isolation: sandbox cannot run on this host: ${why}`);
    } else if (this.#options.refuseTempdir !== undefined) {
      problems.push(`${fileName}: ${this.#options.refuseTempdir}`);
    }
    if (problems.length > 0) return invalid(...problems);
    const warnings: string[] = [];
    if (runbook.isolation === "tempdir") {
      const as = this.#options.runAs !== undefined ? `as ${this.#options.runAs} (runbooks.runAs)` : `with the server's own privileges (uid ${uid})`;
      warnings.push(
        `isolation: tempdir runs the script ${as}, unsandboxed: ${this.#options.runAs !== undefined ? "it can read whatever that user can" : "it can read the data directory and master.key"}; use isolation: sandbox`,
      );
    }
    return Object.freeze({ name, file, valid: true, runbook, warnings: Object.freeze(warnings) });
  }
}

/** Why a file or directory others could change must not be trusted, or undefined. */
function ownerProblem(st: { uid: number; mode: number }, uid: number, what: string): string | undefined {
  if (st.uid !== uid && st.uid !== 0) return `the ${what} is owned by uid ${st.uid}, not by the server's user (uid ${uid}) or root`;
  if ((st.mode & 0o022) !== 0) return `group or others can write the ${what} (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}); chmod go-w it`;
  return undefined;
}

/** Why `shell` cannot run a script here, or undefined. */
function shellProblem(shell: string): string | undefined {
  try {
    const st = statSync(shell);
    if (!st.isFile()) return "is not a file on this host";
    if ((st.mode & 0o111) === 0) return "is not executable";
    return undefined;
  } catch (err) {
    return `cannot be found on this host (${(err as NodeJS.ErrnoException).code ?? "error"})`;
  }
}
