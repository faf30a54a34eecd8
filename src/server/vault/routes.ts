/**
 * The Vault KV v2-compatible API (docs/design.md §13), on when `vault: { mount }` is configured:
 * `/v1/{mount}/data/…` (read, write with `options.cas`, JSON merge patch), `/v1/{mount}/metadata/…`
 * (read, list, delete) and `/v1/auth/token/lookup-self`. A Vault path is a coffer secret of the
 * same name and a Vault version a coffer version; the map ↔ bytes rule is core/kv-map.ts.
 *
 * Every route goes through the request context exactly as routes/secrets.ts does
 * (req.authorize, req.record, the storage driver, the sealer, change events), with the same
 * capabilities, so a Vault client can do nothing its token could not do through `/v1/secrets`.
 * Errors are Vault's `{"errors":[…]}`; a missing or bad token is Vault's 403 "permission denied".
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { CofferError, isCofferError } from "../../errors.ts";
import { assertValue } from "../../core/names.ts";
import { mapToValue, valueToMap, type KvMap } from "../../core/kv-map.ts";
import { AuthError } from "../auth.ts";
import { auditsAuthFailure, authenticate, type ServerParts } from "../context.ts";
import type { StoredVersion } from "../../storage/types.ts";
import { envelope, sendVaultError, vaultCredential, vaultErrorOf, vaultPath, VaultError } from "./shape.ts";
import { changeVersions, type VersionChangeKind } from "../routes/secrets.ts";
import { checkVersionList } from "../../storage/ops-versions.ts";

/** Vault's names for the audit detail of a request that came through this API. */
const VIA = { via: "vault" } as const;
const MERGE_PATCH = "application/merge-patch+json";

/** One route of the mount: method, path under `/v1/{mount}`, handler. */
interface MountRoute {
  method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE";
  url: string;
  handler: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
}

/** What the Vault API needs of the app besides the server's parts: the per-subject rate limit. */
export interface VaultHooks {
  limit(req: FastifyRequest, reply: FastifyReply): Promise<void>;
}

/**
 * Registers the Vault API on `app` for `s.config.vault.mount` (nothing when it is not configured):
 * its own hooks (namespace refusal, the Vault token header, authentication, the per-subject limit)
 * and error shape, then {@link mountRoutes} under `/v1/{mount}` and lookup-self.
 */
export async function vaultApi(app: FastifyInstance, s: ServerParts, hooks: VaultHooks): Promise<void> {
  const mount = s.config.vault?.mount;
  if (mount === undefined) return;
  await app.register(async (vault) => {
    vault.setErrorHandler(async (err: unknown, req, reply) => {
      const { status, errors } = vaultErrorOf(err);
      if (status >= 500) req.log.error({ code: (err as { code?: unknown }).code }, "vault request failed");
      return sendVaultError(reply, status, errors);
    });
    vault.addHook("onRequest", async (req, reply) => {
      vaultCredential(req);
      try {
        req.principal = await authenticate(s, req);
      } catch (err) {
        // Once on the record (a mount named like `secrets-kv` is audited by authenticate already).
        if (err instanceof AuthError && !auditsAuthFailure(req.routeOptions.url ?? "")) await req.record("unauthenticated", "auth.failed", { actor: "anonymous", detail: { reason: err.reason, route: req.routeOptions.url ?? null, ...VIA } });
        throw err;
      }
      await hooks.limit(req, reply);
    });
    vault.addHook("onSend", (_req, reply, payload, done) => {
      reply.header("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
      done(null, payload);
    });
    vault.get("/v1/auth/token/lookup-self", { schema: { summary: "Vault: who the token is (never the token itself)", tags: ["vault"] } }, (req) => lookupSelf(req, s));
    await vault.register(async (kv) => {
      const json = kv.getDefaultJsonParser("error", "error");
      kv.addContentTypeParser(MERGE_PATCH, { parseAs: "string" }, json);
      kv.setNotFoundHandler(async (req, reply) => {
        // A path of the mount whose method is not served: Vault's 405; any other path: its 404.
        const known = /^\/v1\/[^/]+\/(data|metadata)(\/|$)/.test(req.url);
        return known ? sendVaultError(reply, 405, ["unsupported operation"]) : sendVaultError(reply, 404, ["unsupported path"]);
      });
      for (const r of mountRoutes(s, `/v1/${mount}`)) kv.route({ method: r.method, url: r.url, schema: { summary: `Vault KV v2: ${r.method} ${r.url}`, tags: ["vault"] }, handler: r.handler });
    }, { prefix: `/v1/${mount}` });
  });
}

/**
 * The routes of the mount. The per-version ones (`DELETE /data/*`: soft delete of the latest
 * version; `POST /delete/*`, `POST /undelete/*`, `PUT|POST /destroy/*`) go through coffer's own
 * operations (routes/secrets.ts changeVersions: capability `delete`, audited under their own
 * actions), so a Vault client never does what coffer's API cannot.
 */
export function mountRoutes(s: ServerParts, base: string): MountRoute[] {
  const data = `${base}/data/`;
  const meta = `${base}/metadata/`;
  const write = (req: FastifyRequest, reply: FastifyReply) => writeData(req, reply, s, data);
  return [
    { method: "GET", url: "/data/*", handler: (req, reply) => readData(req, reply, s, data) },
    { method: "POST", url: "/data/*", handler: write },
    { method: "PUT", url: "/data/*", handler: write },
    { method: "PATCH", url: "/data/*", handler: (req) => patchData(req, s, data) },
    { method: "GET", url: "/metadata/*", handler: (req) => (isList(req) ? list(req, s, meta) : readMetadata(req, s, meta)) },
    { method: "GET", url: "/metadata", handler: (req) => (isList(req) ? list(req, s, meta) : Promise.reject(new VaultError(405, ["unsupported operation"]))) },
    { method: "DELETE", url: "/metadata/*", handler: (req, reply) => deleteMetadata(req, reply, s, meta) },
    { method: "DELETE", url: "/data/*", handler: (req, reply) => deleteLatest(req, reply, s, data) },
    { method: "POST", url: "/delete/*", handler: (req, reply) => changeListed(req, reply, s, `${base}/delete/`, "delete") },
    { method: "POST", url: "/undelete/*", handler: (req, reply) => changeListed(req, reply, s, `${base}/undelete/`, "undelete") },
    { method: "POST", url: "/destroy/*", handler: (req, reply) => changeListed(req, reply, s, `${base}/destroy/`, "destroy") },
    { method: "PUT", url: "/destroy/*", handler: (req, reply) => changeListed(req, reply, s, `${base}/destroy/`, "destroy") },
  ];
}

/* --------------------------------------------- data --------------------------------------------- */

async function readData(req: FastifyRequest, reply: FastifyReply, s: ServerParts, prefix: string): Promise<unknown> {
  const name = vaultPath(req, prefix);
  await req.authorize("read", name, "secret.read");
  const v = (req.query as Record<string, unknown>)["version"];
  if (v !== undefined && (typeof v !== "string" || !/^[0-9]{1,15}$/.test(v))) throw new VaultError(400, ["version must be a whole number"]);
  const wanted = v === undefined || Number(v) === 0 ? undefined : Number(v);
  const row = wanted === undefined ? await s.storage.readCurrent(name) : await s.storage.readVersion(name, wanted);
  if (row === undefined) {
    await req.record("not_found", "secret.read", { name, version: wanted ?? null, detail: VIA });
    // A version deleted or destroyed on its own, or the latest of a secret removed with `coffer rm`:
    // Vault's 404 with that version's metadata.
    const [state, versions] = await Promise.all([s.storage.state(name), s.storage.versions(name)]);
    const number = wanted ?? state?.latest;
    const v = versions?.find((x) => x.version === number);
    if (state === undefined || v === undefined) throw new CofferError("E_NOT_FOUND", "no such secret or version");
    const deletion = v.deletedAt ?? (v.version === state.latest && state.deletedAt !== null ? state.deletedAt : "");
    if (deletion === "" && !v.destroyed) throw new CofferError("E_NOT_FOUND", "no such secret or version");
    return reply.status(404).send(envelope(req, { data: null, metadata: { ...versionMetadata(v.createdAt, v.version), deletion_time: deletion, destroyed: v.destroyed } }));
  }
  const map = openMap(s, name, row);
  // Fail closed: the value leaves only once the read is on the record.
  await req.record("ok", "secret.read", { name, version: row.version, detail: VIA });
  return envelope(req, { data: map, metadata: versionMetadata(row.createdAt, row.version) });
}

async function writeData(req: FastifyRequest, reply: FastifyReply, s: ServerParts, prefix: string): Promise<unknown> {
  const name = vaultPath(req, prefix);
  await req.authorize("write", name, "secret.write");
  const body = req.body as { data?: unknown; options?: unknown } | null | undefined;
  if (!isMap(body) || !isMap(body.data)) throw new VaultError(400, ["no data provided"]);
  const result = await store(req, s, name, body.data, casOf(body.options));
  void reply;
  return envelope(req, versionMetadata(result.at, result.version));
}

async function patchData(req: FastifyRequest, s: ServerParts, prefix: string): Promise<unknown> {
  const name = vaultPath(req, prefix);
  await req.authorize("write", name, "secret.write");
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== MERGE_PATCH) throw new VaultError(415, [`PATCH needs Content-Type ${MERGE_PATCH}`]);
  const body = req.body as { data?: unknown; options?: unknown } | null | undefined;
  if (!isMap(body) || !isMap(body.data)) throw new VaultError(400, ["no data provided"]);
  const row = await s.storage.readCurrent(name);
  if (row === undefined) {
    await req.record("not_found", "secret.write", { name, detail: { ...VIA, op: "patch" } });
    throw new CofferError("E_NOT_FOUND", "no such secret");
  }
  const current = openMap(s, name, row);
  const merged = mergePatch(current, body.data) as KvMap;
  // Race-free: the patch applies to the version it read (or to the one options.cas names).
  const result = await store(req, s, name, merged, casOf(body.options) ?? row.version, "patch");
  return envelope(req, versionMetadata(result.at, result.version));
}

/** Writes `map` as the next version of `name` (ifVersion: Vault's cas), audited and published as /v1/secrets writes are. */
async function store(req: FastifyRequest, s: ServerParts, name: string, map: KvMap, cas: number | undefined, op = "write"): Promise<{ version: number; at: string }> {
  const { bytes, plain } = mapToValue(map);
  try {
    assertValue(bytes, s.config.limits.valueBytes);
    const result = await s.storage.write({
      name,
      actor: req.caller().subject,
      ...(cas !== undefined && { ifVersion: cas }),
      seal: (version) => s.sealer.seal(name, version, bytes),
      auditDetail: { ...req.auditDetail("ok"), ...VIA, op, ...(!plain && { contentType: "application/json" }) },
    }).catch(async (err: unknown) => {
      if (isCofferError(err, "E_CONFLICT")) await req.record("conflict", "secret.write", { name, detail: { ifVersion: cas, ...VIA, op } });
      throw err;
    });
    void s.changes.publish({ name, version: result.version, action: "write", at: result.audit.at });
    return { version: result.version, at: result.audit.at };
  } finally {
    bytes.fill(0);
  }
}

/* ---------------------------------------- single versions ---------------------------------------- */

/** `DELETE /data/{path}`: soft-deletes the latest version (Vault: 204). */
async function deleteLatest(req: FastifyRequest, reply: FastifyReply, s: ServerParts, prefix: string): Promise<unknown> {
  const name = vaultPath(req, prefix);
  const state = await s.storage.state(name);
  // Unknown to coffer: refused as a read would be (403 before 404, so nothing is learnt).
  await changeVersions(req, s, "delete", name, state === undefined ? [1] : [state.latest], { ...VIA, op: "delete-latest" });
  return reply.status(204).send();
}

/** `POST /delete|undelete|destroy/{path}` with `{versions: [N…]}` (Vault: 204). */
async function changeListed(req: FastifyRequest, reply: FastifyReply, s: ServerParts, prefix: string, kind: VersionChangeKind): Promise<unknown> {
  const name = vaultPath(req, prefix);
  const body = req.body as { versions?: unknown } | null | undefined;
  if (!isMap(body) || !Array.isArray(body.versions) || body.versions.length === 0) throw new VaultError(400, ["no versions provided"]);
  const versions = checkVersionList(body.versions);
  await changeVersions(req, s, kind, name, versions, VIA);
  return reply.status(204).send();
}

/* ------------------------------------------- metadata ------------------------------------------- */

async function readMetadata(req: FastifyRequest, s: ServerParts, prefix: string): Promise<unknown> {
  const name = vaultPath(req, prefix);
  // coffer's own version listing (GET /v1/secrets/NAME/versions) needs list: so does this.
  await req.authorize("list", name, "secret.versions");
  const [versions, state] = await Promise.all([s.storage.versions(name), s.storage.state(name)]);
  await req.record(versions === undefined ? "not_found" : "ok", "secret.versions", { name, detail: VIA });
  if (versions === undefined || versions.length === 0 || state === undefined) throw new CofferError("E_NOT_FOUND", "no such secret");
  const first = versions[0]!;
  const last = versions[versions.length - 1]!;
  const entries = versions.map((v) => [String(v.version), {
    created_time: v.createdAt,
    // Deleted on its own, or the latest of a secret removed with `coffer rm`.
    deletion_time: v.deletedAt ?? (v.version === state.latest && state.deletedAt !== null ? state.deletedAt : ""),
    destroyed: v.destroyed,
  }]);
  return envelope(req, {
    cas_required: false,
    created_time: first.createdAt,
    current_version: state.latest,
    custom_metadata: null,
    delete_version_after: "0s",
    max_versions: 0,
    oldest_version: first.version,
    updated_time: last.createdAt,
    versions: Object.fromEntries(entries),
  });
}

async function list(req: FastifyRequest, s: ServerParts, prefix: string): Promise<unknown> {
  const folder = vaultPath(req, prefix, true);
  const under = folder === "" ? "" : `${folder}/`;
  const { roles } = req.caller();
  const { policy } = s;
  if (!policy.mayList(roles, under)) {
    s.metrics.denials.inc({ action: "secret.list" });
    await req.record("denied", "secret.list", { detail: { prefix: under, ...VIA } });
    throw new CofferError("E_DENIED", "permission denied");
  }
  const names = (await s.storage.list(under)).map((x) => x.name).filter((n) => policy.allows(roles, "list", n));
  const keys = new Set<string>();
  for (const n of names) {
    const rest = n.slice(under.length);
    const slash = rest.indexOf("/");
    keys.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  await req.record("ok", "secret.list", { detail: { prefix: under, count: keys.size, ...VIA } });
  if (keys.size === 0) throw new CofferError("E_NOT_FOUND", "nothing to list");
  return envelope(req, { keys: [...keys].sort() });
}

async function deleteMetadata(req: FastifyRequest, reply: FastifyReply, s: ServerParts, prefix: string): Promise<unknown> {
  const name = vaultPath(req, prefix);
  // Every version and the metadata gone for good: coffer's purge, with its capability (delete does not grant it).
  await req.authorize("purge", name, "secret.purge");
  const result = await s.storage.purge(name, req.caller().subject, { ...req.auditDetail("ok"), ...VIA });
  if (result === undefined) {
    await req.record("not_found", "secret.purge", { name, detail: VIA });
    throw new CofferError("E_NOT_FOUND", "no such secret");
  }
  void s.changes.publish({ name, version: result.version, action: "delete", at: new Date().toISOString() });
  return reply.status(204).send();
}

/* ---------------------------------------------- auth ---------------------------------------------- */

/** Vault's token lookup of the caller: the fields coffer has; the token itself is never sent back. */
async function lookupSelf(req: FastifyRequest, s: ServerParts): Promise<unknown> {
  const p = req.caller();
  const token = p.tokenId === undefined ? undefined : await s.storage.findTokenById(p.tokenId);
  const expires = p.expiresAt;
  const ttl = expires === null ? 0 : Math.max(0, Math.floor((expires.getTime() - Date.now()) / 1000));
  const created = token === undefined ? null : Math.floor(Date.parse(token.createdAt) / 1000);
  await req.record("ok", "token.lookup-self", { detail: VIA });
  return envelope(req, {
    accessor: p.tokenId ?? "",
    creation_time: created,
    creation_ttl: token?.expiresAt === null || token === undefined ? 0 : Math.floor((Date.parse(token.expiresAt) - Date.parse(token.createdAt)) / 1000),
    display_name: token === undefined ? p.subject : `token-${token.name}`,
    entity_id: "",
    expire_time: expires === null ? null : expires.toISOString(),
    explicit_max_ttl: 0,
    meta: null,
    num_uses: 0,
    orphan: true,
    path: "auth/token/create",
    policies: [...p.roles],
    renewable: false,
    ttl,
    type: "service",
  });
}

/* --------------------------------------------- helpers --------------------------------------------- */

function isList(req: FastifyRequest): boolean {
  const l = (req.query as Record<string, unknown>)["list"];
  return l === "true" || l === "1";
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** `options.cas` (Vault's check-and-set): a whole number, or absent. */
function casOf(options: unknown): number | undefined {
  if (options === undefined || options === null) return undefined;
  if (!isMap(options)) throw new VaultError(400, ["options must be an object"]);
  const cas = options["cas"];
  if (cas === undefined) return undefined;
  if (typeof cas !== "number" || !Number.isSafeInteger(cas) || cas < 0) throw new VaultError(400, ["options.cas must be a whole number"]);
  return cas;
}

function versionMetadata(createdAt: string, version: number): Record<string, unknown> {
  return { created_time: createdAt, custom_metadata: null, deletion_time: "", destroyed: false, version };
}

/** The map a stored version reads as; the opened bytes are zeroed at once. */
function openMap(s: ServerParts, name: string, row: StoredVersion): KvMap {
  const value = s.sealer.open(name, row.version, row);
  try {
    return valueToMap(value);
  } finally {
    value.fill(0);
  }
}

/** RFC 7396 JSON merge patch: `null` removes a key, objects merge, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return patch;
  const out: Record<string, unknown> = {};
  const set = (k: string, v: unknown): void => void Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  if (isMap(target)) for (const k of Object.keys(target)) set(k, target[k]);
  for (const k of Object.keys(patch)) {
    if (patch[k] === null) delete out[k];
    else set(k, mergePatch(out[k], patch[k]));
  }
  return out;
}
