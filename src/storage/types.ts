/**
 * The storage seam (docs/design.md §7): one asynchronous interface over two drivers, SQLite and
 * PostgreSQL. A driver only ever sees ciphertext, names, versions, token hashes and audit records.
 * Every method that changes something appends its audit record in the same transaction; audit
 * records of reads and denials come through {@link ServerStorage.appendAudit}, in batches.
 */
import type { AuditRecord, AuditVerification } from "../core/audit.ts";
import type { SecretListing, VersionInfo, VersionState } from "../core/secret.ts";

/** A value sealed with AES-256-GCM (nonce 12 bytes, ciphertext with its 16-byte tag). */
export interface SealedValue {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** One stored version of a secret: ciphertext and metadata. */
export interface StoredVersion extends SealedValue {
  name: string;
  version: number;
  /** ISO 8601 UTC */
  createdAt: string;
  /** the subject that wrote it */
  createdBy: string;
}

export type StoredSecretInfo = SecretListing;
export type StoredVersionInfo = VersionInfo;

/** Which change of single versions {@link ServerStorage.deleteVersions} and its kin make. */
export type VersionChangeKind = "delete" | "undelete" | "destroy";

export type { VersionState } from "../core/secret.ts";

/** What a delete, undelete or destroy of versions did. */
export interface VersionsChange {
  /** the secret's latest version (a delete of it does not change this: a plain read is refused instead) */
  latest: number;
  /** the versions asked for, ascending, as they are now */
  versions: VersionState[];
  /** the versions this call changed (the others already were so: no error) */
  changed: number[];
  /** whether a plain read of the secret changed: its current version was changed and the secret is not removed */
  currentChanged: boolean;
}

/** What the server appends to the audit chain. Never a value, token or JWT. */
export interface AuditInput {
  /** ISO 8601 UTC; the driver's clock when absent */
  at?: string;
  /** the subject: `token:<id>`, `jwt:<sub>`, `cert:<cn>` or `anonymous` */
  actor: string;
  /** secret.read, secret.write, secret.delete, secret.list, secret.versions, token.create, … */
  action: string;
  name: string | null;
  version: number | null;
  /** result, requestId, source address, … (never a value) */
  detail: Record<string, unknown> | null;
}

/** An API token as stored: its SHA-256 hash, never the token. */
export interface StoredToken {
  /** public id, 16 hex chars; shown in lists and used to revoke */
  id: string;
  /** a label chosen by its creator */
  name: string;
  /** SHA-256 of the whole token text (`cof_…`), 32 bytes */
  hash: Uint8Array;
  roles: string[];
  createdAt: string;
  createdBy: string;
  /** ISO 8601 UTC, or null for no expiry */
  expiresAt: string | null;
  /** ISO 8601 UTC once revoked */
  revokedAt: string | null;
}

/** Which audit records {@link ServerStorage.auditLog} gives (every filter is optional). */
export interface AuditLogOptions {
  /** at or after this time */
  since?: Date;
  /** with seq above this */
  afterSeq?: number;
  /** with seq below this, newest first: pages backwards from the end (the console's audit page) */
  beforeSeq?: number;
  /** at most this many */
  limit?: number;
  /** only this actor's records (a subject, e.g. `token:ab12…`) */
  actor?: string;
  /** only this action (`secret.read`, `token.create`, …) */
  action?: string;
  /** only records whose name starts with this */
  namePrefix?: string;
}

/** A request to write a new version. */
export interface WriteRequest {
  name: string;
  /** the subject writing, recorded as created_by/updated_by and the audit actor */
  actor: string;
  /** kept across versions until changed */
  description?: string;
  /** check-and-set: refuse (E_CONFLICT) unless the latest version is this; 0 = must be new */
  ifVersion?: number;
  /**
   * Seals the value for the version the driver is about to write. Called inside the write
   * transaction, once the new version number is known (it is part of the AAD).
   */
  seal: (version: number) => SealedValue;
  /** the audit record's detail (the driver adds the action, the name and the version) */
  auditDetail: Record<string, unknown> | null;
  /** the audit action (default `secret.write`; the server's rollback writes `secret.rollback`) */
  action?: string;
  /** the rotation lease this write belongs to: lets it through while that lease is held (§12) */
  rotationHolder?: string;
}

/** How {@link ServerStorage.verifyAudit} reads the chain. */
export interface AuditVerifyOptions {
  /** a head verified before: the record count and the hex hash of record `records` */
  from?: { records: number; hash: string };
  /** records per page (default {@link AUDIT_VERIFY_PAGE}) */
  pageSize?: number;
  /** called after each full page, before yielding, with the records checked so far */
  onPage?: (records: number) => void | Promise<void>;
}

/** Records read and checked per page before {@link ServerStorage.verifyAudit} yields. */
export const AUDIT_VERIFY_PAGE = 500;

/** Where an execution of a runbook is (docs/design.md §10). The last seven are final ({@link FINAL_STATUSES}). */
export type ExecutionStatus =
  | "pending-approval" | "running"
  | "succeeded" | "failed" | "timed-out" | "cancelled" | "rejected" | "interrupted" | "expired";

/** The statuses an execution never leaves. */
export const FINAL_STATUSES: ReadonlySet<ExecutionStatus> = new Set(["succeeded", "failed", "timed-out", "cancelled", "rejected", "interrupted", "expired"]);

/** One execution of a runbook, as stored. Never a secret value: `params` holds only the non-secret params. */
export interface StoredExecution {
  /** a UUIDv7 (text, lower case): ids sort by creation time */
  id: string;
  runbook: string;
  status: ExecutionStatus;
  /** the subject that asked for it (`token:<id>`, `jwt:<sub>`, `cert:<cn>`) */
  requestedBy: string;
  /** the principal it counts against: the requester, or for a token the subject its chain of makers starts from */
  principal: string;
  /** the params as given and defaulted (never a secret) */
  params: Record<string, string>;
  /** how many approvals from other principals it needs before it runs */
  approvalsRequired: number;
  /** the principals that approved, in order */
  approvals: string[];
  /** ISO 8601 UTC */
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** a pending execution ends `expired` after this time */
  expiresAt: string | null;
  exitCode: number | null;
  /** e.g. `SIGKILL` when the script was ended by a signal */
  signal: string | null;
  /** bytes of (masked) output stored */
  outputBytes: number;
  truncated: boolean;
  /** the server instance that runs (or ran) it */
  instance: string | null;
  /** someone asked to cancel it while it ran; the instance running it ends it */
  cancelRequested: boolean;
}

/** What {@link ServerStorage.createExecution} stores: a new execution, running or pending approval. */
export type NewExecution = Pick<StoredExecution, "id" | "runbook" | "requestedBy" | "principal" | "params" | "approvalsRequired" | "createdAt" | "expiresAt"> & {
  status: "running" | "pending-approval";
  /** for a running one: the instance that runs it (startedAt is createdAt) */
  instance: string | null;
};

/** A change of an execution's state, applied only while its status is one of `from`. */
export interface ExecutionChange {
  from: readonly ExecutionStatus[];
  status?: ExecutionStatus;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number | null;
  signal?: string | null;
  outputBytes?: number;
  truncated?: boolean;
  instance?: string;
  cancelRequested?: boolean;
  /** refuse (E_CONFLICT) when the change makes it `running` and this many of its runbook already run */
  concurrency?: number;
}

/** A server instance's heartbeat row. */
export interface InstanceBeat {
  id: string;
  host: string;
  pid: number;
  startedAt: string;
  heartbeatAt: string;
}

/** A rule of a role as stored: a policy pattern and the capabilities it grants (checked by the server). */
export interface RoleRuleInput {
  path: string;
  capabilities: string[];
}

/** A role kept in the server's database (issue 14). */
export interface StoredRole {
  name: string;
  rules: RoleRuleInput[];
  /** 1 when created, + 1 on each change */
  version: number;
  updatedAt: string;
  updatedBy: string;
}

/** Where a secret's rotation stands (docs/design.md §12). */
export type StoredRotationState = "ok" | "rotating" | "failing" | "unknown";

/** A rotation policy as the server checked it, to store (issue 15). */
export interface RotationPolicyInput {
  name: string;
  /** the period as written (`30d`), or null: only on demand */
  every: string | null;
  /** the period in milliseconds, or null */
  everyMs: number | null;
  /** the generator, e.g. `{charset: "alnum", length: 32}` (stored as JSON) */
  generate: { charset: string; length: number };
  /** the apply target, e.g. `{runbook: "x"}`, or null (stored as JSON) */
  apply: unknown;
}

/** A secret's rotation policy and where it stands, as stored. */
export interface StoredRotation extends RotationPolicyInput {
  state: StoredRotationState;
  /** ISO 8601 UTC; null without `every` */
  nextAt: string | null;
  lastRotatedAt: string | null;
  /** one line, never a value */
  lastError: string | null;
  lastErrorAt: string | null;
  failures: number;
  updatedAt: string;
  updatedBy: string;
  /** who holds the lease (an instance's rotation attempt) and until when, or null */
  leaseHolder: string | null;
  leaseUntil: string | null;
  /** the sealed candidate waiting to be stored as version `version`, or null */
  candidate: (SealedValue & { version: number }) | null;
}

/** How a rotation ended without a new version: recorded by {@link ServerStorage.failRotation}. */
export interface RotationFailure {
  /** `failing` (retried at `nextAt`) or `unknown` (a person must check the target) */
  state: "failing" | "unknown";
  /** one line, never a value */
  error: string;
  nextAt: string | null;
  /** the audit record `secret.rotate` (its actor and detail; the driver adds action, name) */
  audit: { actor: string; detail: Record<string, unknown> | null };
}

/** Which storage holds the server's state. */
export type StorageDriverName = "sqlite" | "postgres";

/** The server's state. One instance per process; safe for concurrent async use. */
export interface ServerStorage {
  readonly driver: StorageDriverName;
  /** 16 random bytes chosen when the storage was created; part of every value's AAD */
  readonly storeId: Buffer;

  /** A value of the `meta` table (e.g. `key_check`). */
  getMeta(key: string): Promise<string | undefined>;
  /** Sets `key` unless it is already set; returns the value now stored. */
  setMetaIfAbsent(key: string, value: string): Promise<string>;
  /** Sets `key` to `value`, replacing what was there. */
  setMeta(key: string, value: string): Promise<void>;

  /**
   * The newest version of `name`, or undefined when there is none, the secret is deleted, or that
   * version was deleted or destroyed on its own ({@link ServerStorage.versions} says which).
   */
  readCurrent(name: string): Promise<StoredVersion | undefined>;
  /** Version `version` of `name` (also of a deleted secret), or undefined (also when that version was deleted or destroyed). */
  readVersion(name: string, version: number): Promise<StoredVersion | undefined>;
  /** Whether `name` exists: its latest version and deletion time, or undefined. */
  state(name: string): Promise<{ latest: number; deletedAt: string | null } | undefined>;
  /**
   * Writes the next version of a secret (the first creates it; a deleted one comes back) and
   * its audit record, in one transaction. Race-free: of two writers with the same `ifVersion`,
   * one wins and the other gets E_CONFLICT.
   * @throws CofferError E_CONFLICT when `ifVersion` does not match
   */
  write(request: WriteRequest): Promise<{ version: number; audit: AuditRecord }>;
  /** Live (not deleted) secrets whose names start with `prefix`, sorted by name. */
  list(prefix: string): Promise<StoredSecretInfo[]>;
  /** Every version of `name`, oldest first, or undefined when the name was never written. */
  versions(name: string): Promise<StoredVersionInfo[] | undefined>;
  /**
   * Soft-deletes a live secret (its versions stay) with audit record `secret.delete`.
   * @returns the latest version, or undefined when there is no live secret of that name
   */
  remove(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<{ version: number } | undefined>;
  /**
   * Destroys a secret, live or removed: every version, its row and its rotation policy, with audit record
   * `secret.purge` (detail gets `versions`, the count; never a value), in one transaction. The
   * name is then unknown, as if never written. SQLite zeroes the freed pages (secure_delete) and
   * checkpoints its WAL afterwards; PostgreSQL leaves dead tuples until VACUUM (docs/security.md).
   * @returns how many versions were destroyed and the latest version it had, or undefined when
   *   the name is unknown
   */
  purge(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<{ versions: number; version: number } | undefined>;
  /**
   * Soft-deletes versions of a secret (`ops-versions.ts`): reads of them are refused until they are
   * undeleted, their sealed values stay. One audit record `secret.delete-version` per version asked
   * for (detail gets `changed`), in one transaction. A version already deleted or destroyed is left
   * as it is (no error).
   * @param versions - 1 to 100 version numbers
   * @returns undefined when the name was never written
   * @throws CofferError E_INVALID_VALUE naming versions that do not exist; E_CONFLICT during a rotation
   */
  deleteVersions(name: string, versions: readonly number[], actor: string, auditDetail: Record<string, unknown> | null): Promise<VersionsChange | undefined>;
  /**
   * Undeletes versions (audit `secret.undelete`), as {@link ServerStorage.deleteVersions}. A version
   * not deleted, or destroyed, is left as it is (no error: a destroyed one never comes back).
   */
  undeleteVersions(name: string, versions: readonly number[], actor: string, auditDetail: Record<string, unknown> | null): Promise<VersionsChange | undefined>;
  /**
   * Destroys versions (audit `secret.destroy`), as {@link ServerStorage.deleteVersions}: their nonce
   * and ciphertext are overwritten with empty bytes, the rows stay marked destroyed. SQLite zeroes
   * the freed space (secure_delete) and checkpoints its WAL afterwards, as {@link ServerStorage.purge}.
   */
  destroyVersions(name: string, versions: readonly number[], actor: string, auditDetail: Record<string, unknown> | null): Promise<VersionsChange | undefined>;

  /** Stores a new token with audit record `token.create` (detail gets id, name, roles). */
  createToken(token: StoredToken, actor: string, auditDetail: Record<string, unknown> | null): Promise<void>;
  /** The token whose hash is `hash` (revoked and expired ones too: the caller decides). */
  findToken(hash: Uint8Array): Promise<StoredToken | undefined>;
  /** The token with this id (revoked and expired ones too), or undefined. */
  findTokenById(id: string): Promise<StoredToken | undefined>;
  /** Every token, newest first. */
  listTokens(): Promise<StoredToken[]>;
  /**
   * Revokes a token at once, with audit record `token.revoke`.
   * @returns false when no unrevoked token has that id
   */
  revokeToken(id: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean>;

  /**
   * Stores a new execution with its audit record (exactly `audit`, nothing added), in one
   * transaction. A running one gets `startedAt` = `createdAt`. When it is `running` and
   * `concurrency` is given, refuses if that many of its runbook already run, counted under a lock
   * per runbook so instances starting together never both get the last slot.
   * @throws CofferError E_CONFLICT when the runbook's concurrency is full (`runbook "NAME" already
   *   has N execution(s) running (concurrency C); wait for one to finish`) or the id is taken;
   *   TypeError when a field is malformed (the id must be a lower-case UUID)
   */
  createExecution(execution: NewExecution, audit: AuditInput, concurrency?: number): Promise<StoredExecution>;
  /** The execution with this id (any string: one that is no id finds nothing), or undefined. */
  getExecution(id: string): Promise<StoredExecution | undefined>;
  /**
   * Executions newest first (by id), with their approvals: of one runbook when given, with ids
   * below `before` (compared as text; it need not be a stored id), at most `limit`.
   */
  listExecutions(options: { runbook?: string; before?: string; limit: number }): Promise<StoredExecution[]>;
  /**
   * Applies `change` (and appends `audit`, if any) in one transaction when the execution's status
   * is one of `change.from`; returns the execution as it is now, or undefined when it was not in
   * one of those statuses (or does not exist): of two racing changes, one wins. Fields absent
   * from `change` are left as they are; `exitCode`/`signal` null clear them.
   * @throws CofferError E_CONFLICT when the change makes it `running`, it would apply, and
   *   `change.concurrency` executions of its runbook other than it already run (same message as
   *   createExecution's)
   */
  updateExecution(id: string, change: ExecutionChange, audit?: AuditInput): Promise<StoredExecution | undefined>;
  /**
   * Records `principal`'s approval of a pending execution with its audit record; an approver
   * counts once. Returns the execution as it is now and whether this approval was new (`audit`
   * is appended only then); undefined when it is not pending approval (or does not exist). It does
   * not start the execution: the caller does, with `updateExecution`, once enough approved.
   */
  approveExecution(id: string, principal: string, audit: AuditInput): Promise<{ execution: StoredExecution; added: boolean } | undefined>;
  /**
   * Appends a chunk of (masked) output as chunk `seq` (0, 1, …) and sets the execution's
   * `outputBytes` and `truncated`, in one transaction (committed without an fsync, as audit
   * batches are). Not audited.
   * @throws CofferError E_NOT_FOUND when there is no such execution, E_CONFLICT when chunk `seq` is stored already
   */
  appendOutput(id: string, seq: number, data: Uint8Array, outputBytes: number, truncated: boolean): Promise<void>;
  /** The output chunks with seq above `afterSeq` (-1: all), in order, at most `limit` of them. */
  readOutput(id: string, afterSeq: number, limit?: number): Promise<{ seq: number; data: Buffer }[]>;
  /** Records that instance `beat.id` is alive (inserting it the first time). */
  heartbeat(beat: InstanceBeat): Promise<void>;
  /** Every instance that ever beat (and was not retired), by id, with its last heartbeat. */
  instances(): Promise<InstanceBeat[]>;
  /** Removes an instance's heartbeat row (an unknown id is no error). */
  retireInstance(id: string): Promise<void>;
  /** The executions that are `running`, oldest first: of every instance, or of `instance` only. */
  runningExecutions(instance?: string): Promise<StoredExecution[]>;
  /** Pending executions whose `expiresAt` is before `now` (ISO 8601 UTC), oldest first. */
  expiredExecutions(now: string): Promise<StoredExecution[]>;

  /** The roles kept in the database, by name. */
  listRoles(): Promise<StoredRole[]>;
  /** The role of this name kept in the database, or undefined. */
  getRole(name: string): Promise<StoredRole | undefined>;
  /**
   * Creates a role (version 1) or replaces its rules (version + 1), bumps {@link rolesVersion} and
   * appends audit record `role.write` (detail gets role, version, rules), in one transaction. The
   * caller checks the name and the rules.
   */
  putRole(name: string, rules: readonly RoleRuleInput[], actor: string, auditDetail: Record<string, unknown> | null): Promise<StoredRole>;
  /**
   * Deletes a role, bumps {@link rolesVersion} and appends audit record `role.delete`, in one transaction.
   * @returns false when there is no such role (nothing changed, nothing audited)
   */
  deleteRole(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean>;
  /** A number that grows on every change to the roles (0 before the first): one cheap read. */
  rolesVersion(): Promise<number>;

  /**
   * Creates or replaces a secret's rotation policy with audit record `rotation.set`, in one
   * transaction. Its state is kept; `nextAt` becomes the last rotation (or now) + `everyMs`.
   */
  putRotation(policy: RotationPolicyInput, actor: string, auditDetail: Record<string, unknown> | null): Promise<StoredRotation>;
  /** The rotation of `name`, or undefined. */
  getRotation(name: string): Promise<StoredRotation | undefined>;
  /** Every rotation, by name. */
  listRotations(): Promise<StoredRotation[]>;
  /**
   * Deletes a rotation policy with audit record `rotation.delete`.
   * @returns false when there is none
   * @throws CofferError E_CONFLICT while a rotation of it is in progress
   */
  deleteRotation(name: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<boolean>;
  /**
   * Claims the rotation lease of `name` for `holder` until `until` with one conditional UPDATE,
   * when it is free (no holder, or the lease expired) and: `mode` `now` — no candidate waits;
   * `due` — also `nextAt` has passed; `recover` — a candidate waits. Of several instances, one wins.
   * @returns the rotation as claimed, or undefined when it was not free (or does not exist)
   */
  claimRotation(name: string, holder: string, until: string, mode: "now" | "due" | "recover"): Promise<StoredRotation | undefined>;
  /** Extends `holder`'s lease; false when it no longer holds it. */
  renewRotation(name: string, holder: string, until: string): Promise<boolean>;
  /**
   * Seals the candidate for the version it will become (latest + 1, passed to `seal`) and keeps
   * it under `holder`'s lease, before apply.
   * @returns that version
   * @throws CofferError E_CONFLICT when `holder` no longer holds the lease
   */
  storeRotationCandidate(name: string, holder: string, seal: (version: number) => SealedValue): Promise<number>;
  /**
   * Writes the candidate as the new version (audit `secret.rotate`, `auditDetail`), clears it,
   * sets state `ok`, `nextAt` = now + every, and releases the lease, in one transaction.
   * @throws CofferError E_CONFLICT when `holder` does not hold the lease or no candidate waits
   */
  finishRotation(name: string, holder: string, actor: string, auditDetail: Record<string, unknown> | null): Promise<{ version: number; rotatedAt: string; audit: AuditRecord }>;
  /**
   * Records a failed (or unknown) rotation: drops the candidate, releases `holder`'s lease, counts
   * the failure and appends its audit record, in one transaction. False when `holder` lost the lease.
   */
  failRotation(name: string, holder: string, failure: RotationFailure): Promise<boolean>;

  /** Appends records to the audit chain in one transaction, in order. */
  appendAudit(entries: readonly AuditInput[]): Promise<AuditRecord[]>;
  /** Audit records oldest first: at or after `since`, with seq above `afterSeq`, matching the filters, at most `limit`. */
  auditLog(options?: AuditLogOptions): Promise<AuditRecord[]>;
  /**
   * Recomputes the chain a page at a time (`verifyAuditPages` in checks.ts), yielding to the event
   * loop between pages: from the first record, or after `from` (a head verified before, whose
   * record must still have that hash). `records` counts the whole chain.
   */
  verifyAudit(options?: AuditVerifyOptions): Promise<AuditVerification>;

  /** Closes connections; pending calls finish first. */
  close(): Promise<void>;
}
