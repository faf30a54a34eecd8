/**
 * A runbook's `require: { claims: { k: v } }` against a caller's JWT claims (issue 13). Pure: the
 * server hands in the verified payload of the caller's JWT (Principal.claims), or undefined for a
 * caller authenticated another way, who never matches a claim rule.
 */

/**
 * Whether `claims` meet every requirement: each named claim (a top-level claim of exactly that
 * name; a dotted name is not a path) equals the required string, or is an array holding it.
 * @param required - claim name → value (a runbook's requireClaims)
 * @param claims - the caller's verified JWT payload; undefined: not a JWT caller
 * @returns false without claims, whatever is required
 * @example claimsMatch({ team: "ops" }, { team: ["dev", "ops"] }) // true
 */
export function claimsMatch(required: Readonly<Record<string, string>>, claims: Readonly<Record<string, unknown>> | undefined): boolean {
  if (claims === undefined || claims === null || typeof claims !== "object") return false;
  for (const [name, want] of Object.entries(required)) {
    // Own properties only: "__proto__" or "constructor" must not reach Object.prototype.
    if (!Object.hasOwn(claims, name)) return false;
    const have = claims[name];
    if (have === want) continue;
    if (Array.isArray(have) && have.includes(want)) continue;
    return false;
  }
  return true;
}
