/**
 * `/v1/audit`: read the hash-chained audit log (never values), filtered by subject, action or name
 * prefix, and verify its chain; both need read on `sys:audit`, and both are themselves audited.
 */
import type { FastifyInstance } from "fastify";
import type { ServerParts } from "../context.ts";
import { AUDIT_LOG_SCHEMA, AUDIT_QUERY, VERIFY_QUERY, VERIFY_SCHEMA, type AuditQuery, type VerifyQuery } from "../schemas.ts";

export function auditRoutes(api: FastifyInstance, s: ServerParts): void {
  api.get<{ Querystring: AuditQuery }>("/v1/audit", {
    schema: { summary: "Read the audit log (hash-chained; never values), oldest first (with ?before=SEQ: newest first, below SEQ); ?subject, ?action, ?prefix filter it; needs read on sys:audit", querystring: AUDIT_QUERY, response: { 200: AUDIT_LOG_SCHEMA } },
  }, async (req) => {
    await req.authorize("read", "sys:audit", "audit.read");
    const { since, after, before, limit, subject, action, prefix } = req.query;
    // The filters are applied in the storage query, so `after` (the last seq seen) and `limit` page through the matches.
    const records = await s.storage.auditLog({
      ...(since !== undefined && { since: new Date(since) }),
      ...(after !== undefined && { afterSeq: Number(after) }),
      ...(before !== undefined && { beforeSeq: Number(before) }),
      limit: limit === undefined ? 100 : Number(limit),
      ...(subject !== undefined && { actor: subject }),
      ...(action !== undefined && { action }),
      ...(prefix !== undefined && { namePrefix: prefix }),
    });
    const filters = { ...(subject !== undefined && { subject }), ...(action !== undefined && { action }), ...(prefix !== undefined && { prefix }) };
    await req.record("ok", "audit.read", { detail: { count: records.length, ...filters } });
    return { records };
  });

  api.get<{ Querystring: VerifyQuery }>("/v1/audit/verify", {
    schema: {
      summary: "Recompute the audit hash chain after the last verified checkpoint (?full=true: all of it); needs read on sys:audit",
      querystring: VERIFY_QUERY,
      response: { 200: VERIFY_SCHEMA },
    },
  }, async (req) => {
    await req.authorize("read", "sys:audit", "audit.verify");
    const full = req.query.full === "true";
    await s.audit.drain();
    const result = await s.verifier.verify(full);
    await req.record("ok", "audit.verify", { detail: { ok: result.ok, records: result.records, full } });
    return result;
  });
}
