/**
 * Reading a coffer server's JSON answers field by field: every client call checks each field it
 * returns, and a missing or mistyped one is E_PROVIDER naming the server and the field (the
 * server is of another version, or is not a coffer server), never a TypeError later.
 */
import { CofferError } from "../errors.ts";

/** The error for an answer without a usable `name` field: E_PROVIDER naming the server and `what` was asked. */
export function shapeError(url: string, what: string, name: string): CofferError {
  return new CofferError("E_PROVIDER", `server ${url}: answered for ${what} without a usable "${name}"; is it a coffer server of this version?`);
}

/** An own field of a JSON object, or undefined (for anything that is not an object too). */
export function field(v: unknown, name: string): unknown {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.hasOwn(v, name) ? (v as Record<string, unknown>)[name] : undefined;
}

/**
 * A string field.
 * @throws CofferError E_PROVIDER ({@link shapeError}) when it is not a string
 */
export function str(v: unknown, name: string, what: string, url: string): string {
  const s = field(v, name);
  if (typeof s !== "string") throw shapeError(url, what, name);
  return s;
}

/**
 * A whole-number field ≥ 0.
 * @throws CofferError E_PROVIDER ({@link shapeError}) when it is not one
 */
export function whole(v: unknown, name: string, what: string, url: string): number {
  const n = field(v, name);
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw shapeError(url, what, name);
  return n;
}
