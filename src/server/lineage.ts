/**
 * Who is behind a caller: the principal an approval must differ from and an execution limit is
 * counted against (docs/design.md §10). A JWT subject or a certificate name is one principal
 * however many tokens carry it; an API token belongs to whoever made it, followed back through
 * the tokens that made tokens to the first maker that is not a token (`jwt:alice`, `cert:ci`,
 * `server-init` for the tokens the root token made). A `POST /dev-login` token is its own
 * development subject (`dev:NAME`).
 */
import type { ServerStorage } from "../storage/types.ts";
import type { Principal } from "./auth.ts";

/** The longest chain of tokens followed; a longer one (never made by coffer) is its own principal. */
const MAX_DEPTH = 64;

/** The principal behind `caller` (see the module comment). */
export async function principalOf(storage: ServerStorage, caller: Principal): Promise<string> {
  return caller.kind === "token" ? principalOfSubject(storage, caller.subject) : caller.subject;
}

/** The principal behind a subject as the audit names it (`token:<id>`, `jwt:<sub>`, …). */
export async function principalOfSubject(storage: ServerStorage, subject: string): Promise<string> {
  let current = subject;
  const seen = new Set<string>();
  for (let depth = 0; depth < MAX_DEPTH && current.startsWith("token:") && !seen.has(current); depth++) {
    seen.add(current);
    const token = await storage.findTokenById(current.slice("token:".length));
    if (token === undefined) return current;
    if (token.createdBy === "dev-login") return token.name;
    current = token.createdBy;
  }
  return current;
}
