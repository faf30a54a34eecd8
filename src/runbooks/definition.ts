/**
 * One runbook file (issue 13): its JSON Schema ({@link RUNBOOK_SCHEMA}), checked by the one config
 * checker (config/schema-check.ts), and the checks of the params a caller sends
 * ({@link checkParams}). A runbook file is reviewed input, but it is still parsed as hostile
 * input: at most {@link MAX_RUNBOOK_BYTES}, the yaml package with no custom tags (an unknown tag
 * is a problem), at most {@link MAX_RUNBOOK_ALIASES} aliases (on top of the checker's own budget
 * on how much they expand), unknown keys refused with `file:line`, every problem at once.
 *
 * Names: params, `secrets:` and `files:` keys become environment variables of the script, so
 * each follows the env-name rule, is never on coffer's one dangerous list (config/dangerous-env.ts:
 * PATH, HOME, LD_*, NODE_OPTIONS, BASH_ENV, PYTHON*, …) and never a name the executor sets itself
 * ({@link RESERVED_ENV_NAMES}: PATH, HOME, LANG, TMPDIR, PWD, COFFER_*), and each is used once
 * across the three maps. There is no opt-in: a runbook that needs such a variable sets it in
 * its script.
 *
 * Patterns: a param's `pattern` is a JavaScript regular expression with the `u` flag, at most
 * {@link MAX_PATTERN_LENGTH} characters, compiled once at parse time and always tested against the
 * WHOLE value (it is wrapped as `^(?:pattern)$`, so `[a-z]+` cannot be met by `x; rm -rf /`
 * whether or not its author wrote the anchors). Values are at most {@link MAX_PARAM_BYTES}, and a
 * match runs under a {@link MATCH_TIMEOUT_MS} watchdog (node:vm's timeout interrupts a
 * backtracking regular expression), so a pattern with catastrophic backtracking refuses a value
 * instead of stalling the server.
 */
import { createContext, Script, type Context } from "node:vm";
import { isAlias, visit } from "yaml";
import { isDangerousEnvName } from "../config/dangerous-env.ts";
import { SchemaChecker, type Formats, type Schema } from "../config/schema-check.ts";
import { parseYaml, show } from "../config/yaml-checker.ts";
import { checkDuration, DURATION_RULE } from "../core/durations.ts";
import { ENV_NAME_PATTERN, isSecretName, SECRET_NAME_MAX, SECRET_NAME_PATTERN, SECRET_NAME_RULE } from "../core/names.ts";
import { checkSize, SIZE_RULE } from "../core/sizes.ts";
import { CofferError } from "../errors.ts";

export { claimsMatch } from "./claims.ts";

/** The largest runbook file: 256 KiB. */
export const MAX_RUNBOOK_BYTES = 256 * 1024;
/** The most aliases (`*name`) a runbook file may hold. */
export const MAX_RUNBOOK_ALIASES = 64;
/** The longest param pattern, in characters. */
export const MAX_PATTERN_LENGTH = 256;
/** The largest param value (and default), in UTF-8 bytes: 4 KiB. */
export const MAX_PARAM_BYTES = 4096;
/** How long one pattern may take on one value before the value is refused. */
export const MATCH_TIMEOUT_MS = 50;
/** The most params a request may send before it is refused whole (bounds the work and the message). */
export const MAX_GIVEN_PARAMS = 256;

/** `timeout:` default and bounds, in ms. */
export const DEFAULT_TIMEOUT_MS = 10 * 60_000;
export const MIN_TIMEOUT_MS = 1000;
export const MAX_TIMEOUT_MS = 24 * 3_600_000;
/** `outputLimit:` default and bounds, in bytes. */
export const DEFAULT_OUTPUT_LIMIT = 10 * 1024 * 1024;
export const MIN_OUTPUT_LIMIT = 1024;
export const MAX_OUTPUT_LIMIT = 1024 ** 3;
/** `approvals:` at most. */
export const MAX_APPROVALS = 10;
/** `concurrency:` at most. */
export const MAX_CONCURRENCY = 1000;
/** `shell:` default. */
export const DEFAULT_SHELL = "/bin/sh";

/**
 * The variables the executor sets for every execution (exact names, or a prefix ending in `*`):
 * a runbook may not name one, so a param can never replace them.
 */
export const RESERVED_ENV_NAMES = ["PATH", "HOME", "LANG", "TMPDIR", "PWD", "COFFER_*"] as const;

/** One param of a runbook, as the API shows it. */
export interface ParamSpec {
  required: boolean;
  /** as written (the match is always against the whole value) */
  pattern: string | null;
  description: string | null;
  default: string | null;
}

/** A checked runbook file. Frozen. */
export interface Runbook {
  /** the file name without `.yml` */
  name: string;
  /** the file, as messages name it */
  file: string;
  description: string;
  /** the script, given to `shell` as a file */
  run: string;
  /** an absolute path */
  shell: string;
  /** env name → spec */
  params: Record<string, ParamSpec>;
  /** env name → secret name */
  secrets: Record<string, string>;
  /** env name → secret name, written to a 0400 file whose path the variable holds */
  files: Record<string, string>;
  timeoutMs: number;
  /** bytes of stdout and stderr together */
  outputLimit: number;
  /** at most this many running at once; null: no limit */
  concurrency: number | null;
  /** how many other principals must approve before it runs */
  approvals: number;
  isolation: "tempdir" | "sandbox";
  /** claim name → required value (a JWT's claim equal to it, or an array claim holding it); null: no rule */
  requireClaims: Record<string, string> | null;
}

/* ------------------------------------------ names ------------------------------------------ */

const ENV_NAME_RE = new RegExp(ENV_NAME_PATTERN);
const RESERVED_EXACT = new Set<string>(RESERVED_ENV_NAMES.filter((n) => !n.endsWith("*")));
const RESERVED_PREFIXES = RESERVED_ENV_NAMES.filter((n) => n.endsWith("*")).map((n) => n.slice(0, -1));

/**
 * Why `name` may not be a runbook's variable (param, secret or file), or undefined when it may.
 * @example runbookEnvNameRule("LD_PRELOAD") // "changes how programs load or run, so a runbook may not set it"
 */
export function runbookEnvNameRule(name: string): string | undefined {
  if (!ENV_NAME_RE.test(name)) return `must match ${ENV_NAME_PATTERN}`;
  if (RESERVED_EXACT.has(name) || RESERVED_PREFIXES.some((p) => name.startsWith(p))) {
    return `is set by the server for every execution (${RESERVED_ENV_NAMES.join(", ")}), so a runbook may not set it`;
  }
  if (isDangerousEnvName(name)) return "changes how programs load or run, so a runbook may not set it (set it inside the script if it must be)";
  return undefined;
}

/** Whether `name` is a runbook name: a secret name of one segment (no `/`). */
export function isRunbookName(name: unknown): name is string {
  return isSecretName(name) && !name.includes("/");
}

/** The rule of a runbook name, in words. */
export const RUNBOOK_NAME_RULE = "a runbook's name is its file name without .yml: one segment of letters, digits, '_', '.', '-', starting with a letter or digit";

/* ----------------------------------------- patterns ----------------------------------------- */

/** Compiled, anchored patterns of parsed params: compiled once, at parse time. */
const compiled = new WeakMap<ParamSpec, RegExp>();

/** The anchored regexp of `pattern` (`^(?:pattern)$`, u flag), or why it is not a param pattern. */
function compilePattern(pattern: string): { re: RegExp } | { rule: string } {
  if (pattern.length > MAX_PATTERN_LENGTH) return { rule: `is longer than ${MAX_PATTERN_LENGTH} characters` };
  try {
    // Alone first: a text that only compiles once wrapped (`a)|(b`) would change meaning.
    void new RegExp(pattern, "u");
    return { re: new RegExp(`^(?:${pattern})$`, "u") };
  } catch (err) {
    return { rule: `is not a JavaScript regular expression (u flag): ${(err as Error).message.replace(/^Invalid regular expression: /, "")}` };
  }
}

let matchContext: Context | undefined;
const MATCH_SCRIPT = new Script("re.test(v)");

/** Tests `re` on `value` under the watchdog; undefined when it took too long. */
function timedTest(re: RegExp, value: string): boolean | undefined {
  matchContext ??= createContext({ re: null, v: "" });
  matchContext["re"] = re;
  matchContext["v"] = value;
  try {
    return MATCH_SCRIPT.runInContext(matchContext, { timeout: MATCH_TIMEOUT_MS }) === true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_SCRIPT_EXECUTION_TIMEOUT") return undefined;
    throw err;
  } finally {
    matchContext["re"] = null;
    matchContext["v"] = "";
  }
}

// Control characters (C0, DEL, C1) other than newline and tab.
const CONTROL_RE = /(?![\n\t])\p{Cc}/u;

/** Why `value` may not be param `name`'s value (never showing the value), or undefined. */
function valueProblem(name: string, spec: ParamSpec, value: string, what = "param"): string | undefined {
  const who = `${what} ${show(name)}`;
  if (Buffer.byteLength(value, "utf8") > MAX_PARAM_BYTES) return `${who} is over ${MAX_PARAM_BYTES} bytes (4 KiB)`;
  if (!value.isWellFormed()) return `${who} is not well-formed Unicode (a lone surrogate)`;
  if (CONTROL_RE.test(value)) return `${who} holds a control character; only newline and tab are allowed`;
  if (spec.pattern === null) return undefined;
  let re = compiled.get(spec);
  if (re === undefined) {
    // A runbook built by hand rather than parsed: compile once and keep it.
    const r = compilePattern(spec.pattern);
    if ("rule" in r) return `${who}: its pattern ${r.rule}`;
    re = r.re;
    compiled.set(spec, re);
  }
  const ok = timedTest(re, value);
  if (ok === undefined) return `${who}: its pattern took longer than ${MATCH_TIMEOUT_MS} ms on the value, which is refused; simplify the pattern`;
  return ok ? undefined : `${who} does not match its pattern ${show(spec.pattern)} (the whole value must match)`;
}

/* ------------------------------------------ schema ------------------------------------------ */

const names = (section: string): Schema => ({
  type: "string",
  pattern: ENV_NAME_PATTERN,
  "x-format": "runbook-env-name",
  "x-rule": `${section}: variable {value} {rule}`,
});

const secretMap = (section: string, description: string): Schema => ({
  title: section,
  description,
  type: "object",
  propertyNames: names(section),
  additionalProperties: { $ref: "#/$defs/secretName" },
  "x-item": `${section} {key}`,
  "x-expect": "a map of variable names to secret names",
});

/** The JSON Schema of a runbook file, with coffer's `x-` message keywords (schema-check.ts). */
export const RUNBOOK_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "urn:coffer:schema:runbook.yml:1",
  title: "coffer runbook (one file of the server's runbooks.dir)",
  type: "object",
  additionalProperties: false,
  required: ["run"],
  properties: {
    description: { title: "Description", type: "string" },
    run: { title: "Script", description: "Given to shell as a file, never on argv.", type: "string", minLength: 1, "x-needs": "the script to run" },
    shell: {
      title: "Shell",
      type: "string",
      default: DEFAULT_SHELL,
      pattern: "^/[A-Za-z0-9._+/-]*$",
      "x-format": "shell",
      "x-rule": "{where} {value} {rule}",
    },
    params: {
      title: "Params",
      description: "Each becomes an environment variable of the same name.",
      type: "object",
      propertyNames: names("params"),
      additionalProperties: { $ref: "#/$defs/param" },
      "x-item": "param {key}",
      "x-expect": "a map of variable names to { pattern?, required?, description?, default? }",
    },
    secrets: secretMap("secrets", "Variable name → a secret of the server's store, whose value the variable holds."),
    files: secretMap("files", "Variable name → a secret written to a 0400 file in the execution directory; the variable holds its path."),
    timeout: { title: "Timeout", type: "string", default: "10m", "x-format": "runbook-timeout", "x-rule": "{where} {rule}, got {value}" },
    outputLimit: { title: "Output limit", type: "string", default: "10MiB", "x-format": "runbook-size", "x-rule": "{where} {rule}, got {value}" },
    concurrency: { title: "Concurrency", type: "integer", minimum: 1, maximum: MAX_CONCURRENCY },
    approvals: { title: "Approvals", type: "integer", minimum: 0, maximum: MAX_APPROVALS, default: 0 },
    isolation: { title: "Isolation", type: "string", enum: ["tempdir", "sandbox"], default: "tempdir" },
    require: {
      title: "Requirements",
      type: "object",
      additionalProperties: false,
      required: ["claims"],
      "x-sep": ".",
      properties: {
        claims: {
          title: "Required JWT claims",
          description: "Claim name → value; a JWT's claim must equal it (or, an array, hold it). Callers without a JWT never match.",
          type: "object",
          minProperties: 1,
          propertyNames: { type: "string", pattern: "^[^\\s\\p{Cc}]{1,256}$", "x-rule": "require.claims: claim name {value} must match {pattern}" },
          additionalProperties: { type: "string", minLength: 1 },
          "x-item": "require.claims {key}",
          "x-needs": "a map of claim names to values",
          "x-empty": "{where} is empty; name at least one claim, or remove require:",
        },
      },
    },
  },
  $defs: {
    secretName: {
      type: "string",
      pattern: SECRET_NAME_PATTERN,
      maxLength: SECRET_NAME_MAX,
      "x-format": "secret-name",
      "x-rule": `{where:}invalid secret name {value}: ${SECRET_NAME_RULE}`,
    },
    param: {
      type: "object",
      additionalProperties: false,
      properties: {
        required: { type: "boolean" },
        pattern: { type: "string", minLength: 1, "x-format": "runbook-pattern", "x-rule": "{where} {rule}" },
        description: { type: "string" },
        default: { type: "string" },
      },
    },
  },
};

const ruleOf = (r: { ok: unknown } | { rule: string }): string | undefined => ("rule" in r ? r.rule : undefined);

const RUNBOOK_FORMATS: Formats = {
  "runbook-env-name": (s) => runbookEnvNameRule(s),
  "secret-name": (s) => (isSecretName(s) ? undefined : SECRET_NAME_RULE),
  shell: (s) => (/^\/[A-Za-z0-9._+/-]*$/.test(s) && !s.split("/").includes("..") ? undefined : "must be an absolute path of letters, digits and ._+-/ (no ..)"),
  "runbook-timeout": (s, number) =>
    number === true ? `${DURATION_RULE}, got number ${s}` : ruleOf(checkDuration(s, { min: MIN_TIMEOUT_MS, max: MAX_TIMEOUT_MS })),
  "runbook-size": (s, number) =>
    number === true ? `${SIZE_RULE}, got number ${s}` : ruleOf(checkSize(s, { min: MIN_OUTPUT_LIMIT, max: MAX_OUTPUT_LIMIT })),
  "runbook-pattern": (s) => {
    const r = compilePattern(s);
    return "rule" in r ? r.rule : undefined;
  },
};

/* ------------------------------------------ parsing ------------------------------------------ */

interface Written {
  description?: string;
  run?: string;
  shell?: string;
  params?: Record<string, { required?: boolean; pattern?: string; description?: string; default?: string }>;
  secrets?: Record<string, string>;
  files?: Record<string, string>;
  timeout?: string;
  outputLimit?: string;
  concurrency?: number;
  approvals?: number;
  isolation?: "tempdir" | "sandbox";
  require?: { claims?: Record<string, string> };
}

/**
 * Parses and checks one runbook file.
 * @param name - the runbook's name (its file name without `.yml`)
 * @param file - the name messages show (`deploy.yml`)
 * @param text - the file's text
 * @returns the runbook, frozen, with its params' patterns compiled
 * @throws CofferError E_CONFIG listing every problem as `file:line: rule` (the first
 *   MAX_SHOWN_PROBLEMS of them), or `file: rule` for a problem of the whole file (its size, its name)
 */
export function parseRunbook(name: string, file: string, text: string): Runbook {
  const r = checkRunbook(name, file, text);
  if ("runbook" in r) return r.runbook;
  throw new CofferError("E_CONFIG", r.problems.length === 1 ? r.problems[0]! : `${file}: ${r.problems.length} problems:\n  ${r.problems.join("\n  ")}`);
}

/**
 * {@link parseRunbook} returning the problems as a list (`file:line: rule` each) instead of throwing.
 */
export function checkRunbook(name: string, file: string, text: string): { runbook: Runbook } | { problems: string[] } {
  const whole: string[] = [];
  if (!isRunbookName(name)) whole.push(`${file}: runbook name ${show(name)} is not allowed: ${RUNBOOK_NAME_RULE}`);
  if (Buffer.byteLength(text, "utf8") > MAX_RUNBOOK_BYTES) {
    return { problems: [...whole, `${file}: the runbook file is larger than ${MAX_RUNBOOK_BYTES} bytes (256 KiB); move the script's bulk into a program the runbook calls`] };
  }
  let parsed: ReturnType<typeof parseYaml>;
  try {
    parsed = parseYaml(text, file);
  } catch (err) {
    return { problems: [...whole, ...problemsOf(err)] };
  }
  const { doc, lines } = parsed;
  const c = new SchemaChecker(file, doc, lines).use(RUNBOOK_SCHEMA, RUNBOOK_FORMATS);
  let aliases = 0;
  visit(doc, {
    Node: (_k, node) => {
      if (isAlias(node) && ++aliases === MAX_RUNBOOK_ALIASES + 1) c.problem(c.line(node), `more than ${MAX_RUNBOOK_ALIASES} aliases; write the entries out`);
    },
  });
  let top: Written | undefined;
  if (c.isEmpty(doc.contents)) c.problem(1, "the file is empty; a runbook needs at least run: (the script)");
  else if (aliases <= MAX_RUNBOOK_ALIASES) top = c.check(doc.contents, RUNBOOK_SCHEMA, "", 1) as Written | undefined;
  const runbook = top === undefined ? undefined : build(c, name, file, top);
  if (c.problems.length > 0 || whole.length > 0 || runbook === undefined) {
    const sorted = [...c.problems].sort((a, b) => a.line - b.line).map((p) => `${file}:${p.line}: ${p.rule.replace(/\s*\n\s*/g, " ")}`);
    return { problems: [...whole, ...sorted] };
  }
  return { runbook };
}

/** The problems of a thrown E_CONFIG message (one a line after a `N problems:` head). */
function problemsOf(err: unknown): string[] {
  if (!(err instanceof CofferError)) throw err;
  const lines = err.message.split("\n");
  return lines.length > 1 && / problems:$/.test(lines[0]!) ? lines.slice(1).map((l) => l.trim()) : [err.message];
}

/** The rules that need the whole file, then the frozen runbook. */
function build(c: SchemaChecker, name: string, file: string, top: Written): Runbook | undefined {
  // One name, one variable: a second use of a name in params, secrets or files is a problem.
  const seen = new Map<string, string>();
  for (const section of ["params", "secrets", "files"] as const) {
    const map = top[section];
    if (map === undefined) continue;
    for (const key of Object.keys(map)) {
      const before = seen.get(key);
      if (before !== undefined) c.problem(c.at(map, key)?.key ?? 1, `${section}: variable ${show(key)} is already set by ${before}; each variable is set once`);
      else seen.set(key, section);
    }
  }
  const params = Object.create(null) as Record<string, ParamSpec>;
  for (const [key, p] of Object.entries(top.params ?? {})) {
    const line = c.at(top.params!, key)?.key ?? 1;
    const spec: ParamSpec = Object.freeze({
      required: p.required ?? false,
      pattern: p.pattern ?? null,
      description: p.description ?? null,
      default: p.default ?? null,
    });
    if (spec.pattern !== null) {
      const r = compilePattern(spec.pattern);
      if ("re" in r) compiled.set(spec, r.re);
    }
    if (spec.required && spec.default !== null) {
      c.problem(line, `param ${show(key)} is required and has a default; remove one (a default makes it optional)`);
    } else if (spec.default !== null) {
      const why = valueProblem(key, spec, spec.default, "default of param");
      if (why !== undefined) c.problem(c.lineOf(p, "default", line), why);
    }
    params[key] = spec;
  }
  const claims = top.require?.claims;
  if (top.run === undefined) return undefined;
  const runbook: Runbook = {
    name,
    file,
    description: top.description ?? "",
    run: top.run,
    shell: top.shell ?? DEFAULT_SHELL,
    params: Object.freeze(params),
    secrets: Object.freeze(Object.assign(Object.create(null) as Record<string, string>, top.secrets)),
    files: Object.freeze(Object.assign(Object.create(null) as Record<string, string>, top.files)),
    timeoutMs: top.timeout === undefined ? DEFAULT_TIMEOUT_MS : (checkDuration(top.timeout) as { ok: number }).ok,
    outputLimit: top.outputLimit === undefined ? DEFAULT_OUTPUT_LIMIT : (checkSize(top.outputLimit) as { ok: number }).ok,
    concurrency: top.concurrency ?? null,
    approvals: top.approvals ?? 0,
    isolation: top.isolation ?? "tempdir",
    requireClaims: claims === undefined ? null : Object.freeze(Object.assign(Object.create(null) as Record<string, string>, claims)),
  };
  return Object.freeze(runbook);
}

/* ------------------------------------------ params ------------------------------------------ */

/**
 * Checks the params a caller sent for `runbook` (hostile JSON): a plain object of strings (absent:
 * none); no name the runbook does not declare; every required one present; each value at most
 * 4 KiB, well-formed, without a control character other than newline and tab, and matched WHOLE
 * by its pattern. A problem names the param, never its value (a param may be sensitive).
 * @returns the params to run with (defaults filled in; an optional param without a default and
 *   not given is absent), or every problem
 */
export function checkParams(runbook: Runbook, given: unknown): { params: Record<string, string> } | { problems: string[] } {
  if (given === undefined) given = {};
  if (given === null || typeof given !== "object" || Array.isArray(given) || ![Object.prototype, null].includes(Object.getPrototypeOf(given))) {
    return { problems: ["params must be a JSON object of names to strings"] };
  }
  const keys = Object.keys(given);
  if (keys.length > MAX_GIVEN_PARAMS) return { problems: [`params: ${keys.length} given, more than the ${MAX_GIVEN_PARAMS} a request may send`] };
  const problems: string[] = [];
  const out = Object.create(null) as Record<string, string>;
  const declared = Object.keys(runbook.params);
  for (const key of keys) {
    if (!Object.hasOwn(runbook.params, key)) {
      problems.push(`unknown param ${show(key)}; runbook ${show(runbook.name)} takes ${declared.length === 0 ? "no params" : declared.join(", ")}`);
    }
  }
  for (const [key, spec] of Object.entries(runbook.params)) {
    const has = Object.hasOwn(given, key);
    const value: unknown = has ? (given as Record<string, unknown>)[key] : undefined;
    if (!has || value === undefined) {
      if (spec.required) problems.push(`param ${show(key)} is required`);
      else if (spec.default !== null) out[key] = spec.default;
      continue;
    }
    if (typeof value !== "string") {
      problems.push(`param ${show(key)} must be a string`);
      continue;
    }
    const why = valueProblem(key, spec, value);
    if (why !== undefined) problems.push(why);
    else out[key] = value;
  }
  return problems.length > 0 ? { problems } : { params: out };
}
