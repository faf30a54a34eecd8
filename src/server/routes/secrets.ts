/**
 * `/v1/secrets`: list, read (or list versions), write and delete secrets by name;
 * `/v1/rollback/{name}`: a new version holding an old version's value; `/v1/purge/{name}`: every
 * version destroyed (capability `purge`, which `delete` does not imply); `/v1/delete/{name}`,
 * `/v1/undelete/{name}`, `/v1/destroy/{name}`: single versions soft-deleted, brought back, or
 * destroyed for good (capability `delete`; Vault KV v2's semantics, issue 16). Values are
 * opened only for a caller the policy lets read, and leave only once the read is on the audit
 * record (fail closed); a 403 says what was refused, never whether the secret exists.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { CofferError, isCofferError } from "../../errors.ts";
import { assertSecretName, assertValue, isSecretName } from "../../core/names.ts";
import { goneVersionError, jsonValue } from "../../core/secret.ts";
import type { ServerParts } from "../context.ts";
import type { VersionsChange } from "../../storage/types.ts";
import {
  PREFIX_QUERY, PURGE_RESULT_SCHEMA, READ_QUERY, ROLLBACK_BODY, ROLLBACK_RESULT_SCHEMA, SECRET_LIST_SCHEMA, SECRET_READ_SCHEMA,
  VERSIONS_BODY, VERSIONS_RESULT_SCHEMA, WRITE_BODY, WRITE_RESULT_SCHEMA,
  type PrefixQuery, type ReadQuery, type RollbackBody, type VersionsBody, type WriteBody,
} from "../schemas.ts";

const SECRETS_PREFIX = "/v1/secrets/";
const ROLLBACK_PREFIX = "/v1/rollback/";
const PURGE_PREFIX = "/v1/purge/";
/** The per-version changes: route prefix → the storage method and the audit action. */
export const VERSION_CHANGES = [
  { prefix: "/v1/delete/", kind: "delete", action: "secret.delete-version", summary: "Soft-delete versions of a secret: reads of them are refused until undeleted; needs delete" },
  { prefix: "/v1/undelete/", kind: "undelete", action: "secret.undelete", summary: "Undelete versions of a secret (a destroyed version stays destroyed); needs delete" },
  { prefix: "/v1/destroy/", kind: "destroy", action: "secret.destroy", summary: "Destroy versions of a secret: their values are gone for good, their history rows stay; needs delete" },
] as const;
const VERSIONS_SUFFIX = "/versions";

/** A kind of per-version change. */
export type VersionChangeKind = (typeof VERSION_CHANGES)[number]["kind"];

/**
 * Deletes, undeletes or destroys `versions` of `name` for the caller (needs `delete`): the one
 * path of `/v1/delete|undelete|destroy/{name}` and of the Vault routes. Refusals are audited;
 * watchers hear when the current version's readability changed.
 * @throws CofferError E_DENIED, E_NOT_FOUND (no such secret), E_INVALID_VALUE (unknown versions), E_CONFLICT (rotation)
 */
export async function changeVersions(req: FastifyRequest, s: ServerParts, kind: VersionChangeKind, name: string, versions: number[], detail: Record<string, unknown> = {}): Promise<VersionsChange> {
  const { action } = VERSION_CHANGES.find((c) => c.kind === kind)!;
  await req.authorize("delete", name, action);
  const { storage } = s;
  const run = kind === "delete" ? storage.deleteVersions : kind === "undelete" ? storage.undeleteVersions : storage.destroyVersions;
  const result = await run.call(storage, name, versions, req.caller().subject, { ...req.auditDetail("ok"), ...detail }).catch(async (err: unknown) => {
    if (isCofferError(err, "E_INVALID_VALUE") || isCofferError(err, "E_CONFLICT")) {
      await req.record(isCofferError(err, "E_CONFLICT") ? "conflict" : "invalid", action, { name, detail: { versions, ...detail } });
    }
    throw err;
  });
  if (result === undefined) {
    await req.record("not_found", action, { name, detail: { versions, ...detail } });
    throw new CofferError("E_NOT_FOUND", `no secret "${name}"`);
  }
  // Watchers follow the current version's readability: gone after a delete or destroy, back after an undelete.
  if (result.currentChanged) void s.changes.publish({ name, version: result.latest, action: kind === "undelete" ? "write" : "delete", at: new Date().toISOString() });
  return result;
}

export function secretRoutes(api: FastifyInstance, s: ServerParts): void {
  // Not the policy: it is replaced when a role changes (roles.ts), so it is read per request.
  const { storage, sealer } = s;
  const publish = (action: "write" | "delete", name: string, version: number): void => {
    void s.changes.publish({ name, version, action, at: new Date().toISOString() });
  };
  // The 404 of a read (or rollback) of a version deleted or destroyed on its own: the asked one, or the current one.
  const goneError = async (name: string, version: number | undefined): Promise<CofferError | undefined> => {
    const list = await storage.versions(name);
    return goneVersionError(name, list?.find((v) => (version === undefined ? v.current : v.version === version)));
  };

  api.get<{ Querystring: PrefixQuery }>("/v1/secrets", {
    schema: { summary: "List the secrets you may list (names and metadata, never values)", querystring: PREFIX_QUERY, response: { 200: SECRET_LIST_SCHEMA } },
  }, async (req) => {
    const { roles } = req.caller();
    const prefix = req.query.prefix ?? "";
    const { policy } = s;
    const all = policy.mayList(roles, prefix) ? await storage.list(prefix) : [];
    const secrets = all.filter((x) => policy.allows(roles, "list", x.name));
    // A secret with a rotation policy carries its state and last error (one query, only when there is something to list).
    const rotations = secrets.length === 0 ? new Map() : new Map((await storage.listRotations()).map((r) => [r.name, r]));
    await req.record("ok", "secret.list", { detail: { prefix, count: secrets.length } });
    return {
      secrets: secrets.map(({ name, version, description, updatedAt, updatedBy }) => {
        const r = rotations.get(name);
        const rotation = r === undefined ? {} : { rotation: { state: r.state, nextAt: r.nextAt, lastError: r.lastError, lastErrorAt: r.lastErrorAt } };
        return { name, version, description, updatedAt, updatedBy, ...rotation };
      }),
    };
  });

  api.get<{ Querystring: ReadQuery }>("/v1/secrets/*", {
    schema: { summary: "Read a secret (or, with a trailing /versions, list its versions)", querystring: READ_QUERY, response: { 200: SECRET_READ_SCHEMA } },
  }, async (req) => {
    const { name, versions } = secretPath(req, true);
    if (versions) {
      await req.authorize("list", name, "secret.versions");
      const list = await storage.versions(name);
      await req.record(list === undefined ? "not_found" : "ok", "secret.versions", { name });
      if (list === undefined) throw new CofferError("E_NOT_FOUND", `no secret "${name}"`);
      return { name, versions: list };
    }
    await req.authorize("read", name, "secret.read");
    const wanted = req.query.version === undefined ? undefined : Number(req.query.version);
    const row = wanted === undefined ? await storage.readCurrent(name) : await storage.readVersion(name, wanted);
    if (row === undefined) {
      await req.record("not_found", "secret.read", { name, version: wanted ?? null });
      throw (await goneError(name, wanted)) ??
        new CofferError("E_NOT_FOUND", wanted === undefined ? `no secret "${name}"` : `secret "${name}" has no version ${wanted}`);
    }
    const value = sealer.open(name, row.version, row);
    try {
      // Fail closed: the value leaves only once the read is on the record.
      await req.record("ok", "secret.read", { name, version: row.version });
      return { name, version: row.version, ...jsonValue(value), createdAt: row.createdAt, createdBy: row.createdBy, updatedAt: row.createdAt };
    } finally {
      value.fill(0);
    }
  });

  api.put<{ Body: WriteBody }>("/v1/secrets/*", {
    schema: { summary: "Write a new version of a secret", body: WRITE_BODY, response: { 200: WRITE_RESULT_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false);
    await req.authorize("write", name, "secret.write");
    const { value: text, valueBase64, description, ifVersion } = req.body;
    if ((text === undefined) === (valueBase64 === undefined)) {
      throw new CofferError("E_INVALID_VALUE", "invalid request: give exactly one of value (UTF-8 text) or valueBase64 (bytes)");
    }
    const value = text !== undefined ? Buffer.from(text, "utf8") : Buffer.from(valueBase64 ?? "", "base64");
    try {
      assertValue(value, s.config.limits.valueBytes);
      const result = await storage.write({
        name,
        actor: req.caller().subject,
        ...(description !== undefined && { description }),
        ...(ifVersion !== undefined && { ifVersion }),
        seal: (version) => sealer.seal(name, version, value),
        auditDetail: req.auditDetail("ok"),
      }).catch(async (err: unknown) => {
        if (isCofferError(err, "E_CONFLICT")) await req.record("conflict", "secret.write", { name, detail: { ifVersion } });
        throw err;
      });
      publish("write", name, result.version);
      return { name, version: result.version };
    } finally {
      value.fill(0);
    }
  });

  api.post<{ Body: RollbackBody }>("/v1/rollback/*", {
    schema: { summary: "Write a new version holding the value of an old one (also restores a deleted secret); needs write", body: ROLLBACK_BODY, response: { 200: ROLLBACK_RESULT_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false, ROLLBACK_PREFIX);
    await req.authorize("write", name, "secret.rollback");
    const from = req.body.version;
    const row = await storage.readVersion(name, from);
    if (row === undefined) {
      await req.record("not_found", "secret.rollback", { name, version: from });
      throw (await goneError(name, from)) ?? new CofferError("E_NOT_FOUND", `secret "${name}" has no version ${from}`);
    }
    const value = sealer.open(name, row.version, row);
    try {
      const result = await storage.write({
        name,
        actor: req.caller().subject,
        action: "secret.rollback",
        seal: (version) => sealer.seal(name, version, value),
        auditDetail: { from, ...req.auditDetail("ok") },
      });
      publish("write", name, result.version);
      return { name, version: result.version, from };
    } finally {
      value.fill(0);
    }
  });

  api.delete("/v1/secrets/*", {
    schema: { summary: "Delete a secret (its versions are kept)", response: { 200: WRITE_RESULT_SCHEMA } },
  }, async (req) => {
    const { name } = secretPath(req, false);
    await req.authorize("delete", name, "secret.delete");
    const result = await storage.remove(name, req.caller().subject, req.auditDetail("ok"));
    if (result === undefined) {
      await req.record("not_found", "secret.delete", { name });
      throw new CofferError("E_NOT_FOUND", `no secret "${name}"`);
    }
    publish("delete", name, result.version);
    return { name, version: result.version };
  });

  api.post("/v1/purge/*", {
    schema: {
      summary: "Destroy every version of a secret, live or removed: no rollback brings it back; needs purge (delete does not grant it)",
      response: { 200: PURGE_RESULT_SCHEMA },
    },
  }, async (req) => {
    const { name } = secretPath(req, false, PURGE_PREFIX);
    await req.authorize("purge", name, "secret.purge");
    const result = await storage.purge(name, req.caller().subject, req.auditDetail("ok"));
    if (result === undefined) {
      await req.record("not_found", "secret.purge", { name });
      throw new CofferError("E_NOT_FOUND", `no secret "${name}"`);
    }
    // Watchers see it gone, as after a delete (the event's version: the last one it had).
    publish("delete", name, result.version);
    return { name, versions: result.versions, purged: true };
  });

  for (const change of VERSION_CHANGES) {
    api.post<{ Body: VersionsBody }>(`${change.prefix}*`, {
      schema: { summary: change.summary, body: VERSIONS_BODY, response: { 200: VERSIONS_RESULT_SCHEMA } },
    }, async (req) => {
      const { name } = secretPath(req, false, change.prefix);
      const result = await changeVersions(req, s, change.kind, name, req.body.versions);
      return { name, versions: result.versions };
    });
  }
}

/**
 * The secret name of a `/v1/secrets/…` (or `prefix`…) request, taken from the raw URL: names never need
 * percent-encoding, so any `%` (an encoded `/` or `.` trying to slip past the name rule) is
 * refused, and so is everything the name rule refuses (`..`, empty segments, a leading `/`).
 */
export function secretPath(req: FastifyRequest, allowVersions: boolean, prefix = SECRETS_PREFIX): { name: string; versions: boolean } {
  const raw = (req.raw.url ?? "").split("?")[0] ?? "";
  let rest = raw.startsWith(prefix) ? raw.slice(prefix.length) : "";
  if (rest.includes("%")) {
    throw new CofferError("E_INVALID_NAME", "invalid secret name: percent-encoded characters are refused; names are letters, digits, '_', '.', '-' and '/' as they are");
  }
  let versions = false;
  if (rest.endsWith(VERSIONS_SUFFIX) && rest.length > VERSIONS_SUFFIX.length) {
    if (!allowVersions) {
      throw new CofferError("E_INVALID_NAME", `invalid secret name "${rest}": a last segment "versions" is reserved by the server API (GET …/NAME/versions lists versions)`);
    }
    rest = rest.slice(0, -VERSIONS_SUFFIX.length);
    versions = true;
  }
  if (!isSecretName(rest)) assertSecretName(rest);
  return { name: rest, versions };
}
