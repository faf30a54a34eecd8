/**
 * The settings of `coffer agent` (issue 5), each with one grammar for the command line
 * (`--secrets ID[=ENV_NAME],…`, `--on-change`, `--poll-interval`, `--mode`, `--owner`: problems
 * are CofferError `E_USAGE`) and for agent.yml (config.ts attaches a line to the same rules).
 * Messages name inputs, never secret values (there are none here).
 *
 * Layout of the agent's directory DIR (decided here, used by the agent and `coffer units`):
 * - DIR is flat. Each ID is written to `DIR/<fileNameOf(id)>`: the ID with every `/` replaced
 *   by `_` (`db/password` → `DIR/db_password`), the same name systemd's `LoadCredential=` needs
 *   (units.ts `LoadCredential=`). No subdirectories: atomic replacement, cleanup and credentials
 *   stay one-level. The name never holds `/`, never starts with `.` and is never `.` or `..`,
 *   so it cannot leave DIR; see {@link fileNameOf}.
 * - Two IDs with the same file name (`a/b` and `a_b`) are refused.
 * - `DIR/secrets.env` holds the env lines, so the ID `secrets.env` is refused.
 * - Names starting with `.` never collide with an ID: they are free for the agent's temp files.
 */
import { show } from "../config/yaml-checker.ts";
import type { Checked } from "../providers/grammar.ts";
import { checkDuration } from "../core/durations.ts";
import { checkFileMode } from "../core/file-mode.ts";
import { CofferError } from "../errors.ts";
import type { ProviderSpec } from "../providers/provider.ts";
import { assertSecretName, ENV_NAME_PATTERN, isSecretName } from "../core/names.ts";

/** One secret the agent delivers: its ID (a secret name) and its variable in `secrets.env`. */
export interface AgentSecret {
  id: string;
  env: string;
}

/** What the agent does after it replaced the files because a secret changed. */
export type OnChange =
  | { kind: "exit" }
  | { kind: "restart-unit"; unit: string }
  | { kind: "signal"; signal: NodeJS.Signals }
  | { kind: "exec"; command: string }
  | { kind: "none" };

/** One service's settings from the agent config file (unset options are absent: the caller defaults them). */
export interface AgentSettings {
  /** the backend with the service's `override:` applied */
  provider: ProviderSpec;
  /** vault only: read the token from this file at start (absolute path) */
  tokenFile?: string;
  secrets: AgentSecret[];
  dir?: string;
  watch?: boolean;
  pollIntervalMs?: number;
  onChange?: OnChange;
  mode?: number;
  owner?: string;
}

/** The env file's name in DIR. */
export const SECRETS_ENV_FILE = "secrets.env";
/** Bounds of `--poll-interval` / `pollInterval`, in ms. */
export const MIN_POLL_INTERVAL_MS = 100;
export const MAX_POLL_INTERVAL_MS = 60 * 60 * 1000;
/** The signals `--on-change signal:NAME` may send. */
export const ON_CHANGE_SIGNALS = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT"] as const satisfies readonly NodeJS.Signals[];
/** A systemd unit name for `restart-unit:` (also: not starting with `-`, at most 255 characters). */
export const UNIT_NAME_PATTERN = "^[a-zA-Z0-9:_.@\\-]+$";
/** A user for `--owner`: a name (at most 32 characters) or a numeric uid. */
export const OWNER_PATTERN = "^([A-Za-z_][A-Za-z0-9_.-]*\\$?|[0-9]+)$";

const ENV_NAME_RE = new RegExp(ENV_NAME_PATTERN);
const UNIT_NAME_RE = new RegExp(UNIT_NAME_PATTERN);
const OWNER_RE = new RegExp(OWNER_PATTERN);

const ON_CHANGE_FORMS = "exit, restart-unit:NAME, signal:HUP|USR1|USR2|TERM|INT, exec:CMD or none";
const SECRETS_FORM = "ID[=ENV_NAME],… (e.g. db/password,api/key=API_KEY)";

const usage = (message: string): CofferError => new CofferError("E_USAGE", message);

function orThrow<T>(r: Checked<T>, prefix = ""): T {
  if ("ok" in r) return r.ok;
  throw usage(prefix + r.rule);
}

/* ---------------------------------------- secrets ----------------------------------------- */

/**
 * The default variable of an ID in `secrets.env`: upper-cased, every character other than
 * A-Z and 0-9 replaced by `_`, and `_` put in front when it would start with a digit
 * (`db/prod-password` → `DB_PROD_PASSWORD`, `1password/key` → `_1PASSWORD_KEY`).
 */
export function defaultEnvName(id: string): string {
  const name = id.toUpperCase().replace(/[^A-Z0-9]/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** The longest file name {@link fileNameOf} gives: leaves room in NAME_MAX (255) for a temp-file prefix and suffix. */
export const MAX_FILE_NAME = 200;

/**
 * The file name in DIR an ID is written to: the ID with every `/` replaced by `_`
 * (`db/password` → `db_password`). It cannot leave DIR: a valid secret name has only
 * `[A-Za-z0-9_.-]` and `/`, starts each segment with a letter or digit and has no `..`, so the
 * result has no `/`, does not start with `.` and is not `.` or `..`. Not injective (`a/b` and
 * `a_b` share a name): {@link parseSecretIds} and the config refuse such pairs.
 * @throws CofferError E_INVALID_NAME for an invalid secret name; E_USAGE for `secrets.env` (the
 *   env file) or a name longer than {@link MAX_FILE_NAME}
 */
export function fileNameOf(id: string): string {
  assertSecretName(id);
  const rule = fileRule(id);
  if (rule !== undefined) throw usage(rule);
  const name = id.replaceAll("/", "_");
  // Belt and braces: the name rules already guarantee this.
  if (name.includes("/") || name.startsWith(".") || name.includes("\0")) {
    throw new CofferError("E_INVALID_NAME", `invalid secret name ${show(id)}: not a plain file name`);
  }
  return name;
}

/** Why an (otherwise valid) ID cannot have a file in DIR, if it cannot. */
function fileRule(id: string): string | undefined {
  if (id === SECRETS_ENV_FILE) return `secret ${show(id)} cannot be delivered: DIR/${SECRETS_ENV_FILE} is the env file; deliver it from a subpath or rename it`;
  if (id.length > MAX_FILE_NAME) return `secret ${show(id)} cannot be delivered: its file name would be longer than ${MAX_FILE_NAME} characters`;
  return undefined;
}

export function secretItem(item: string): Checked<AgentSecret> {
  const eq = item.indexOf("=");
  const id = eq < 0 ? item : item.slice(0, eq);
  if (!isSecretName(id)) {
    return {
      rule: `invalid secret ID ${show(id)}: IDs are path-like segments of letters, digits, '_', '.', '-', each starting with a letter or digit, separated by single '/', at most 256 characters`,
    };
  }
  const env = eq < 0 ? defaultEnvName(id) : item.slice(eq + 1);
  if (!ENV_NAME_RE.test(env)) {
    return { rule: `${show(item)}: environment variable name ${show(env)} must match ${ENV_NAME_PATTERN}` };
  }
  return { ok: { id, env } };
}

/** Conflicts between entries, each reported at the later entry's index. */
export function secretConflicts(secrets: readonly AgentSecret[]): { index: number; rule: string }[] {
  const out: { index: number; rule: string }[] = [];
  secrets.forEach((s, i) => {
    const rule = fileRule(s.id);
    if (rule !== undefined) {
      out.push({ index: i, rule });
      return;
    }
    const file = s.id.replaceAll("/", "_");
    for (const earlier of secrets.slice(0, i)) {
      const both = `secrets ${show(earlier.id)} and ${show(s.id)}`;
      const clash = earlier.id === s.id
        ? `secret ${show(s.id)} is listed twice`
        : earlier.env === s.env
          ? `${both} both use the variable ${s.env}; give one another name with ID=ENV_NAME`
          : earlier.id.replaceAll("/", "_") === file
            ? `${both} would both be the file DIR/${file} ("/" becomes "_"); deliver only one`
            : undefined;
      if (clash !== undefined) return void out.push({ index: i, rule: clash });
    }
  });
  return out;
}

/**
 * Parses `--secrets ID[=ENV_NAME],…` (spaces around entries are ignored). ENV_NAME defaults to
 * {@link defaultEnvName}. Refuses invalid IDs or names, empty entries, an ID, a variable or a
 * file name ({@link fileNameOf}) given twice, and the ID `secrets.env`.
 * @throws CofferError E_USAGE naming the entry
 */
export function parseSecretIds(list: string): AgentSecret[] {
  if (list.trim() === "") throw usage(`--secrets is empty: give ${SECRETS_FORM}`);
  const secrets = list.split(",").map((raw, i) => {
    const item = raw.trim();
    if (item === "") throw usage(`--secrets: entry ${i + 1} is empty (a stray comma?); give ${SECRETS_FORM}`);
    return orThrow(secretItem(item), "--secrets: ");
  });
  const conflict = secretConflicts(secrets)[0];
  if (conflict !== undefined) throw usage(`--secrets: ${conflict.rule}`);
  return secrets;
}

/* --------------------------------------- on-change ---------------------------------------- */

export function onChange(s: string): Checked<OnChange> {
  const bad = (why: string): Checked<OnChange> => ({ rule: `invalid on-change action ${show(s)}: ${why}` });
  if (s === "exit" || s === "none") return { ok: { kind: s } };
  if (s.startsWith("restart-unit:")) {
    const unit = s.slice("restart-unit:".length);
    if (!UNIT_NAME_RE.test(unit) || unit.startsWith("-") || unit.length > 255) {
      return bad(`unit name ${show(unit)} must match ${UNIT_NAME_PATTERN}, not start with "-" and have at most 255 characters`);
    }
    return { ok: { kind: "restart-unit", unit } };
  }
  if (s.startsWith("signal:")) {
    const raw = s.slice("signal:".length).toUpperCase();
    const name = raw.startsWith("SIG") ? raw : `SIG${raw}`;
    const signal = ON_CHANGE_SIGNALS.find((x) => x === name);
    if (signal === undefined) return bad("signal must be one of HUP, USR1, USR2, TERM, INT (with or without SIG)");
    return { ok: { kind: "signal", signal } };
  }
  if (s.startsWith("exec:")) {
    const command = s.slice("exec:".length);
    if (command.trim() === "") return bad("exec: needs a command, e.g. exec:/usr/local/bin/reload");
    if (command.includes("\0")) return bad("the command must not contain NUL");
    return { ok: { kind: "exec", command } };
  }
  return bad(`use ${ON_CHANGE_FORMS}`);
}

/**
 * Parses `--on-change`: `exit`, `none`, `restart-unit:NAME` (a systemd unit name),
 * `signal:NAME` (HUP, USR1, USR2, TERM or INT, with or without SIG, any case) or `exec:CMD`.
 * @throws CofferError E_USAGE naming the accepted forms
 */
export function parseOnChange(s: string): OnChange {
  return orThrow(onChange(s));
}

/* --------------------------------- interval, mode, owner ---------------------------------- */

export function interval(s: string): Checked<number> {
  const r = checkDuration(s, { min: MIN_POLL_INTERVAL_MS, max: MAX_POLL_INTERVAL_MS });
  return "ok" in r ? r : { rule: `invalid interval ${show(s)}: ${r.rule}` };
}

/**
 * Parses `--poll-interval`: a duration (core/durations.ts: `30s`, `500ms`, `2m`), 100ms to 1h.
 * @returns milliseconds, between 100 and 3 600 000
 * @throws CofferError E_USAGE
 */
export function parseInterval(s: string): number {
  return orThrow(interval(s));
}

export function mode(s: string): Checked<number> {
  const r = checkFileMode(s);
  return "ok" in r ? r : { rule: `invalid mode ${show(s)}: ${r.rule}` };
}

/**
 * Parses `--mode`: the file-mode rule of core/file-mode.ts (3-4 octal digits; the owner reads,
 * group and others do not write, no setuid/setgid/sticky bits), as for `.coffer.yml` files.
 * @throws CofferError E_USAGE naming the broken rule
 */
export function parseMode(s: string): number {
  return orThrow(mode(s));
}

export function owner(s: string): Checked<string> {
  if (!OWNER_RE.test(s) || s.length > 32) {
    return { rule: `invalid owner ${show(s)}: a user name (letters, digits, '_', '.', '-', not starting with a digit, '.' or '-', at most 32 characters) or a numeric uid` };
  }
  return { ok: s };
}

/**
 * Checks `--owner`: a user name or a numeric uid (whether it exists is the agent's business).
 * @throws CofferError E_USAGE
 */
export function parseOwner(s: string): string {
  return orThrow(owner(s));
}
