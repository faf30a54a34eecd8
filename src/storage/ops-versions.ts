/**
 * Per-version delete, undelete and destroy (issue 16, docs/design.md §7), written once for both
 * dialects as the operations of `ops.ts` are. Vault's KV v2 semantics applied to coffer:
 *
 * - delete sets a version's `deleted_at`: reads of it are refused, its sealed value stays;
 * - undelete clears `deleted_at`;
 * - destroy overwrites the version's nonce and ciphertext with empty bytes and sets `destroyed_at`
 *   (the row — number, who, when — stays in the history); a destroyed version never comes back.
 *
 * Deleting a version already deleted or destroyed, undeleting one that is not deleted or was
 * destroyed, and destroying one already destroyed change nothing and are no error (as Vault).
 * Each call is one transaction: the secret's row is locked, a rotation in progress refuses it, and
 * one audit record per version asked for (detail `changed`, never a value) lands with the change.
 */
import { CofferError } from "../errors.ts";
import { assertVersion } from "../core/names.ts";
import { checkActor, normalizeDetail } from "./checks.ts";
import { all, appendAudit, get, refuseDuringRotation, run, type Dialect, type Op } from "./ops.ts";
import type { VersionsChange, VersionChangeKind } from "./types.ts";

/** The most versions one call may name. */
export const MAX_VERSIONS_PER_CHANGE = 100;

/**
 * Checks a list of versions given to a delete, undelete or destroy: 1 to
 * {@link MAX_VERSIONS_PER_CHANGE} whole numbers ≥ 1; returns them sorted, without repeats.
 * @throws CofferError E_INVALID_VALUE
 */
export function checkVersionList(versions: unknown, maxVersion = Number.MAX_SAFE_INTEGER): number[] {
  if (!Array.isArray(versions) || versions.length === 0 || versions.length > MAX_VERSIONS_PER_CHANGE) {
    throw new CofferError("E_INVALID_VALUE", `invalid versions: give 1 to ${MAX_VERSIONS_PER_CHANGE} version numbers`);
  }
  for (const v of versions) {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > maxVersion) {
      throw new CofferError("E_INVALID_VALUE", `invalid version ${JSON.stringify(v)}: versions are whole numbers from 1`);
    }
    assertVersion(v);
  }
  return [...new Set(versions as number[])].sort((a, b) => a - b);
}

type MarkRow = { version: number; deleted_at: string | null; destroyed_at: string | null };

/**
 * Deletes, undeletes or destroys `versions` of `name`, with audit record `action` for each one
 * asked for (detail: `auditDetail` and `changed`).
 * @returns the versions asked for as they are now, the secret's latest version, and whether a plain
 *   read of the secret changed (its current version was among those changed); undefined when the
 *   name was never written
 * @throws CofferError E_INVALID_VALUE naming the versions that do not exist (nothing changed);
 *   E_CONFLICT while a rotation of it is in progress
 */
export function* changeVersions(
  d: Dialect, kind: VersionChangeKind, name: string, versions: readonly number[], actor: string,
  auditDetail: Record<string, unknown> | null, action: string,
): Op<VersionsChange | undefined> {
  checkActor(`${kind}Versions`, actor);
  const asked = checkVersionList(versions, d.maxVersion);
  const detail = normalizeDetail(auditDetail);
  const secret = yield* get<{ latest: number; deleted_at: string | null }>(`SELECT latest, deleted_at FROM secrets WHERE name = ?${d.forUpdate}`, name);
  if (secret === undefined) return undefined;
  yield* refuseDuringRotation(d, name);
  const rows = yield* all<MarkRow>(
    "SELECT version, deleted_at, destroyed_at FROM versions WHERE name = ? AND version >= ? AND version <= ? ORDER BY version",
    name, asked[0]!, asked[asked.length - 1]!,
  );
  const byVersion = new Map(rows.map((r) => [Number(r.version), r]));
  const missing = asked.filter((v) => !byVersion.has(v));
  if (missing.length > 0) {
    throw new CofferError(
      "E_INVALID_VALUE",
      `secret "${name}" has no version ${missing.join(", ")} (versions 1–${secret.latest} were written); nothing was changed`,
    );
  }
  const now = new Date().toISOString();
  const changed = new Set<number>();
  for (const v of asked) {
    const r = byVersion.get(v)!;
    if (kind === "delete" && r.deleted_at === null && r.destroyed_at === null) {
      yield* run("UPDATE versions SET deleted_at = ? WHERE name = ? AND version = ?", now, name, v);
      r.deleted_at = now;
    } else if (kind === "undelete" && r.deleted_at !== null && r.destroyed_at === null) {
      yield* run("UPDATE versions SET deleted_at = NULL WHERE name = ? AND version = ?", name, v);
      r.deleted_at = null;
    } else if (kind === "destroy" && r.destroyed_at === null) {
      // The value is gone for good: empty bytes over the sealed ones (SQLite's secure_delete zeroes
      // the space they held; the caller checkpoints the WAL after the commit).
      yield* run("UPDATE versions SET nonce = ?, ciphertext = ?, destroyed_at = ? WHERE name = ? AND version = ?", EMPTY, EMPTY, now, name, v);
      r.destroyed_at = now;
    } else {
      continue;
    }
    changed.add(v);
  }
  yield* appendAudit(d, asked.map((v) => ({ at: now, actor, action, name, version: v, detail: { ...detail, changed: changed.has(v) } })));
  return {
    latest: secret.latest,
    versions: asked.map((v) => {
      const r = byVersion.get(v)!;
      return { version: v, deletedAt: r.deleted_at, destroyed: r.destroyed_at !== null };
    }),
    changed: [...changed],
    currentChanged: secret.deleted_at === null && changed.has(secret.latest),
  };
}

const EMPTY = new Uint8Array(0);
