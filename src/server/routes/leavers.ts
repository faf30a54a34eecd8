/**
 * When someone leaves (docs/design.md §12): after `DELETE /v1/tokens/{id}?rotate=true` revoked a
 * token, the secrets that token and its descendants (the tokens it made, and theirs) read —
 * found on the audit chain, `secret.read` records with result ok — are rotated, each through
 * the rotation engine (exempt from the per-caller execution limit), and what could not be is
 * listed to rotate by hand: no rotation policy, the caller may not rotate it, or its apply failed.
 */
import type { FastifyRequest } from "fastify";
import { isCofferError } from "../../errors.ts";
import type { ServerParts } from "../context.ts";

/** Audit records read at a time while looking for what a token read. */
const AUDIT_PAGE = 1000;

/** The rotation report of a revocation (client/wire.ts RotationReport). */
export interface LeaverReport {
  rotated: { name: string; version: number }[];
  manual: { name: string; reason: string }[];
}

/** The token `id` and every token made from it, recursively (by the tokens' `createdBy`). */
export async function tokenLineage(s: ServerParts, id: string): Promise<string[]> {
  const tokens = await s.storage.listTokens();
  const found = new Set([id]);
  for (let grew = true; grew;) {
    grew = false;
    for (const t of tokens) {
      if (!found.has(t.id) && t.createdBy.startsWith("token:") && found.has(t.createdBy.slice("token:".length))) {
        found.add(t.id);
        grew = true;
      }
    }
  }
  return [...found];
}

/** Rotates what the tokens of `id`'s lineage read; see the module comment. */
export async function rotateWhatTokensRead(s: ServerParts, req: FastifyRequest, id: string): Promise<LeaverReport> {
  const names = new Set<string>();
  for (const tokenId of await tokenLineage(s, id)) {
    // In pages: a busy token's reads may be millions of records; only the distinct names are kept.
    for (let afterSeq = 0; ;) {
      const page = await s.storage.auditLog({ actor: `token:${tokenId}`, action: "secret.read", afterSeq, limit: AUDIT_PAGE });
      for (const r of page) if (r.name !== null && r.detail?.result === "ok") names.add(r.name);
      if (page.length < AUDIT_PAGE) break;
      afterSeq = page.at(-1)!.seq;
    }
  }
  const report: LeaverReport = { rotated: [], manual: [] };
  const { roles, subject } = req.caller();
  for (const name of [...names].sort()) {
    if (!s.policy.allows(roles, "rotate", name)) {
      report.manual.push({ name, reason: "you may not rotate it (needs rotate)" });
      continue;
    }
    if ((await s.storage.getRotation(name)) === undefined) {
      report.manual.push({ name, reason: "no rotation policy" });
      continue;
    }
    if (s.rotation === undefined) {
      report.manual.push({ name, reason: "rotation is not running on this server instance" });
      continue;
    }
    try {
      const done = await s.rotation.engine.rotate(name, subject, { auditDetail: { ...req.auditDetail("ok"), revoked: id } });
      if (done !== undefined) report.rotated.push({ name, version: done.version });
    } catch (err) {
      report.manual.push({ name, reason: isCofferError(err) ? err.message : "the rotation failed unexpectedly" });
    }
  }
  return report;
}
