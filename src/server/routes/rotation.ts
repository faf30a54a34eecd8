/**
 * `/v1/rotation`: rotation policies of secrets (docs/design.md §12), under their own prefix so no
 * secret name can collide with them. `GET /v1/rotation/{name}` needs list on the name; `PUT`,
 * `DELETE` and `POST` (rotate now) need rotate; `GET /v1/rotation` lists the policies the caller
 * may list (`?due=true`: only those due). Every change is audited (`rotation.set`,
 * `rotation.delete`, `secret.rotate`); no answer ever holds a value.
 */
import type { FastifyInstance } from "fastify";
import { CofferError, isCofferError } from "../../errors.ts";
import { checkRotationBody, ROTATION_BODY_SCHEMA, type RotationBody } from "../../rotation/policy.ts";
import type { RotationEngine } from "../../rotation/engine.ts";
import type { RotationScheduler } from "../../rotation/scheduler.ts";
import type { StoredRotation } from "../../storage/types.ts";
import type { ServerParts } from "../context.ts";
import { isSecretName } from "../../core/names.ts";
import { isRunbookName } from "../../runbooks/definition.ts";
import {
  ROTATION_DELETED_SCHEMA, ROTATION_LIST_QUERY, ROTATION_LIST_SCHEMA, ROTATION_RESULT_SCHEMA, ROTATION_VIEW_SCHEMA, type RotationListQuery,
} from "../schemas.ts";
import { secretPath } from "./secrets.ts";

const ROTATION_PREFIX = "/v1/rotation/";

/** The rotation engine and scheduler of this instance, and whether any rotation is overdue. */
export interface RotationParts {
  engine: RotationEngine;
  scheduler: RotationScheduler;
  /** true when a rotation is overdue (as the scheduler last counted): health's `rotation` */
  overdue: () => boolean;
}

/** A stored rotation as the API shows it (client/wire.ts RotationView): never the candidate or the lease. */
export function rotationView(r: StoredRotation, now = Date.now()): Record<string, unknown> {
  return {
    name: r.name, every: r.every, generate: r.generate, apply: r.apply ?? null, state: r.state, nextAt: r.nextAt,
    due: r.nextAt !== null && Date.parse(r.nextAt) <= now,
    lastRotatedAt: r.lastRotatedAt, lastError: r.lastError, lastErrorAt: r.lastErrorAt, failures: r.failures,
    updatedAt: r.updatedAt, updatedBy: r.updatedBy,
  };
}

export function rotationRoutes(api: FastifyInstance, s: ServerParts): void {
  const { storage } = s;
  const parts = (): RotationParts => {
    if (s.rotation === undefined) throw new CofferError("E_UNAVAILABLE", "rotation is not running on this server instance");
    return s.rotation;
  };

  api.get<{ Querystring: RotationListQuery }>("/v1/rotation", {
    schema: { summary: "List the rotation policies of the secrets you may list (?due=true: only those due)", querystring: ROTATION_LIST_QUERY, response: { 200: ROTATION_LIST_SCHEMA } },
  }, async (req) => {
    const { roles } = req.caller();
    const now = Date.now();
    const { policy } = s;
    let list = (await storage.listRotations()).filter((r) => policy.allows(roles, "list", r.name));
    if (req.query.due === "true") list = list.filter((r) => r.nextAt !== null && Date.parse(r.nextAt) <= now);
    await req.record("ok", "rotation.list", { detail: { due: req.query.due === "true", count: list.length } });
    return { rotations: list.map((r) => rotationView(r, now)) };
  });

  api.get("/v1/rotation/*", {
    schema: { summary: "A secret's rotation policy and where it stands; needs list on the name", response: { 200: ROTATION_VIEW_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false, ROTATION_PREFIX);
    await req.authorize("list", name, "rotation.read");
    const r = await storage.getRotation(name);
    if (r === undefined) throw new CofferError("E_NOT_FOUND", `secret ${name} has no rotation policy`);
    return rotationView(r);
  });

  api.put<{ Body: RotationBody }>("/v1/rotation/*", {
    schema: { summary: "Set a secret's rotation policy (every, generate, apply); needs rotate", body: ROTATION_BODY_SCHEMA, response: { 200: ROTATION_VIEW_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false, ROTATION_PREFIX);
    await req.authorize("rotate", name, "rotation.set");
    // The apply acts later with the server's authority: the caller must hold what it uses, so a
    // policy never reads a connection string, or runs a runbook, that its maker could not.
    // (A name that breaks its rule is left to checkRotationBody's 400.)
    const apply = req.body.apply;
    if (apply != null && "postgres" in apply && isSecretName(apply.postgres.connection)) await req.authorize("read", apply.postgres.connection, "rotation.set");
    if (apply != null && "runbook" in apply && isRunbookName(apply.runbook)) await req.authorize("run", `runbook:${apply.runbook}`, "rotation.set");
    const policy = checkRotationBody(name, req.body, s.runbooks?.catalog);
    const stored = await storage.putRotation(policy, req.caller().subject, req.auditDetail("ok"));
    s.rotation?.scheduler.replan();
    return rotationView(stored);
  });

  api.delete("/v1/rotation/*", {
    schema: { summary: "Remove a secret's rotation policy (the secret stays); needs rotate", response: { 200: ROTATION_DELETED_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false, ROTATION_PREFIX);
    await req.authorize("rotate", name, "rotation.delete");
    if (!(await storage.deleteRotation(name, req.caller().subject, req.auditDetail("ok")))) {
      throw new CofferError("E_NOT_FOUND", `secret ${name} has no rotation policy`);
    }
    s.rotation?.scheduler.replan();
    return { name, deleted: true };
  });

  api.post("/v1/rotation/*", {
    schema: { summary: "Rotate a secret now: generate, apply, store; answers the new version or the failure (E_ROTATION); needs rotate", response: { 200: ROTATION_RESULT_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false, ROTATION_PREFIX);
    await req.authorize("rotate", name, "secret.rotate");
    try {
      const done = await parts().engine.rotate(name, req.caller().subject, { auditDetail: req.auditDetail("ok") });
      return done;
    } catch (err) {
      // a failure is on the record already (failRotation); a refusal before the claim is recorded here
      if (isCofferError(err, "E_NOT_FOUND") || isCofferError(err, "E_CONFLICT")) {
        await req.record(err.code === "E_NOT_FOUND" ? "not_found" : "conflict", "secret.rotate", { name });
      }
      throw err;
    } finally {
      s.rotation?.scheduler.replan();
    }
  });
}
