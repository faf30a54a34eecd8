/**
 * A rotation policy as a client sends it (`PUT /v1/rotation/{name}`, docs/design.md §12), checked
 * strictly: the period in coffer's one duration grammar, the generator within crypto/generate.ts's
 * limits, and the apply target well formed (a runbook must exist, be valid and need no approvals;
 * a PostgreSQL target names a secret and a role). The route's JSON schema has already refused
 * unknown keys and wrong types; this checks what a schema cannot.
 */
import { CofferError } from "../errors.ts";
import { checkDuration, DURATION_GRAMMAR, DURATION_RULE } from "../core/durations.ts";
import { CHARSETS } from "../crypto/generate.ts";
import type { RunbookCatalog } from "../runbooks/catalog.ts";
import type { RotationPolicyInput } from "../storage/types.ts";
import type { RotationApply } from "../client/wire.ts";
import { applyProblem } from "./targets.ts";

/** The shortest period: a second (a rotation is a generate, an apply and a database write). */
export const MIN_EVERY_MS = 1000;
/** The longest period: ten years. */
export const MAX_EVERY_MS = 10 * 366 * 86_400_000;
/** The most characters (or words) a generator makes, as crypto/generate.ts allows. */
export const MAX_GENERATE_LENGTH = 4096;

/** The body of `PUT /v1/rotation/{name}` as the schema let it through. */
export interface RotationBody {
  every?: string;
  generate: { charset: string; length: number };
  apply?: RotationApply;
}

const invalid = (message: string): CofferError => new CofferError("E_INVALID_VALUE", `invalid rotation policy: ${message}`);

/**
 * Checks a policy body for the secret `name`.
 * @param runbooks - the server's runbooks, or undefined when none are configured
 * @returns what the storage keeps
 * @throws CofferError E_INVALID_VALUE saying which field is wrong and how
 */
export function checkRotationBody(name: string, body: RotationBody, runbooks: RunbookCatalog | undefined): RotationPolicyInput {
  let everyMs: number | null = null;
  if (body.every !== undefined) {
    const r = checkDuration(body.every, { min: MIN_EVERY_MS, max: MAX_EVERY_MS });
    if ("rule" in r) throw invalid(`every ${JSON.stringify(body.every).slice(0, 40)} ${r.rule === DURATION_RULE ? `must be a duration: ${DURATION_GRAMMAR}` : r.rule}`);
    everyMs = r.ok;
  }
  const { charset, length } = body.generate;
  if (!(CHARSETS as readonly string[]).includes(charset)) throw invalid(`generate.charset must be one of ${CHARSETS.join(", ")}`);
  if (!Number.isSafeInteger(length) || length < 1 || length > MAX_GENERATE_LENGTH) {
    throw invalid(`generate.length must be a whole number from 1 to ${MAX_GENERATE_LENGTH} (${charset === "words" ? "words" : "characters"})`);
  }
  const apply = body.apply ?? null;
  if (apply !== null) checkApply(name, apply, runbooks);
  return { name, every: body.every ?? null, everyMs, generate: { charset, length }, apply };
}

function checkApply(name: string, apply: NonNullable<RotationApply>, runbooks: RunbookCatalog | undefined): void {
  const why = applyProblem(apply, runbooks);
  if (why !== undefined) throw invalid(why);
  if ("postgres" in apply && apply.postgres.connection === name) throw invalid("apply.postgres.connection must be another secret than the one rotated");
}

/** The body's JSON schema (no other keys; the checks above do the rest). */
export const ROTATION_BODY_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["generate"],
  properties: {
    every: { type: "string", maxLength: 40 },
    generate: {
      type: "object",
      additionalProperties: false,
      required: ["charset", "length"],
      properties: { charset: { type: "string", maxLength: 16 }, length: { type: "integer" } },
    },
    apply: {
      anyOf: [
        { type: "null" },
        { type: "object", additionalProperties: false, required: ["runbook"], properties: { runbook: { type: "string", minLength: 1, maxLength: 128 } } },
        {
          type: "object", additionalProperties: false, required: ["postgres"],
          properties: {
            postgres: {
              type: "object", additionalProperties: false, required: ["connection", "role"],
              properties: { connection: { type: "string", minLength: 1, maxLength: 1024 }, role: { type: "string", minLength: 1, maxLength: 128 } },
            },
          },
        },
      ],
    },
  },
} as const;
