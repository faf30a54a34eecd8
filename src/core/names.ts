/**
 * The rules for names and values (docs/design.md §5), shared by the library, the CLI and (later) the
 * server's JSON schemas. Every check throws an error that names the rule.
 */
import { CofferError, show, ValidationError } from "../errors.ts";

/** A secret name: path-like segments of [A-Za-z0-9_.-], each starting with a letter or digit. */
export const SECRET_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.\\-]*(/[A-Za-z0-9][A-Za-z0-9_.\\-]*)*$";
export const SECRET_NAME_MAX = 256;
/** An environment variable name. */
export const ENV_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$";
/** Default upper bound of a value, in bytes. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;

const SECRET_NAME_RE = new RegExp(SECRET_NAME_PATTERN);
const ENV_NAME_RE = new RegExp(ENV_NAME_PATTERN);

/** The rule of a secret name, in words. */
export const SECRET_NAME_RULE =
  "names are path-like segments of letters, digits, '_', '.', '-', each starting with a letter or digit, " +
  `separated by single '/', no '..', at most ${SECRET_NAME_MAX} characters`;
const NAME_RULE = `${SECRET_NAME_RULE} (e.g. db/prod/password)`;

/**
 * Checks a secret name against docs/design.md §5.
 * @throws ValidationError E_INVALID_NAME naming the rule
 */
export function assertSecretName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0) {
    throw new ValidationError("E_INVALID_NAME", `invalid secret name: empty; ${NAME_RULE}`);
  }
  const shown = show(name);
  if (name.length > SECRET_NAME_MAX) {
    throw new ValidationError("E_INVALID_NAME", `invalid secret name ${shown}: longer than ${SECRET_NAME_MAX} characters`);
  }
  if (!SECRET_NAME_RE.test(name) || name.includes("..")) {
    throw new ValidationError("E_INVALID_NAME", `invalid secret name ${shown}: ${NAME_RULE}`);
  }
}

/** True when `name` is a valid secret name. */
export function isSecretName(name: unknown): name is string {
  return typeof name === "string" && name.length <= SECRET_NAME_MAX && SECRET_NAME_RE.test(name) && !name.includes("..");
}

/**
 * Checks an environment variable name.
 * @throws ValidationError E_INVALID_NAME naming the rule
 */
export function assertEnvName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !ENV_NAME_RE.test(name)) {
    throw new ValidationError(
      "E_INVALID_NAME",
      `invalid environment variable name ${JSON.stringify(String(name).slice(0, 80))}: must match ${ENV_NAME_PATTERN}`,
    );
  }
}

/**
 * Why `bytes` cannot be an environment variable's value, or undefined when it can. A variable is a
 * C string of text: no NUL, and valid UTF-8 (Node hands a child UTF-8), or the child would get
 * other bytes than the secret's. The answer never holds the value.
 */
export function envValueProblem(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return "its value holds a NUL byte, which no environment variable can carry";
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return "its value is not UTF-8 text";
  }
  return undefined;
}

/**
 * Checks a value's size. The message gives sizes, never content. An empty value is a value
 * (`FLAG=` in a .env file), stored and delivered as it is.
 * @throws CofferError E_INVALID_VALUE when larger than `max`
 */
export function assertValue(value: Uint8Array, max = DEFAULT_MAX_VALUE_BYTES): void {
  if (value.length > max) {
    throw new CofferError(
      "E_INVALID_VALUE",
      `invalid value: ${value.length} bytes is over the limit of ${max} bytes`,
    );
  }
}

/**
 * Checks a version number: a whole number ≥ `min` (1 for a version, 0 for a check-and-set
 * `ifVersion`, where 0 means "must be new").
 * @throws CofferError E_INVALID_VALUE naming the rule
 */
export function assertVersion(v: number, min: 0 | 1 = 1): number {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new CofferError("E_INVALID_VALUE", `invalid version ${String(v)}: must be a whole number ≥ ${min}`);
  }
  return v;
}
