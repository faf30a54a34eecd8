/**
 * The storage seam over either driver (docs/design.md §7): {@link ServerStorage}'s methods, once,
 * as operations of `ops.ts`, `ops-executions.ts`, `ops-roles.ts`, `ops-rotations.ts` and `ops-versions.ts` handed to a driver's runner, which runs reads
 * on a connection and changes in one transaction each.
 */
import { secretInfoFromRow, verifyAuditPages } from "./checks.ts";
import * as ops from "./ops.ts";
import * as exec from "./ops-executions.ts";
import * as roles from "./ops-roles.ts";
import * as rot from "./ops-rotations.ts";
import { changeVersions } from "./ops-versions.ts";
import type { ServerStorage, StorageDriverName } from "./types.ts";

/** How a driver runs an operation of ops.ts; `what` names it in error messages. */
export interface OpRunner {
  read<T>(what: string, op: () => ops.Op<T>): Promise<T>;
  /** `durable: false` may commit without an fsync (audit batches of reads and denials) */
  tx<T>(what: string, op: () => ops.Op<T>, durable?: boolean): Promise<T>;
  close(): Promise<void>;
  /**
   * After a purge committed: makes the freed space unreadable where the driver can (SQLite moves
   * its WAL, which still holds the old pages, into the zeroed file). Absent: nothing to do.
   */
  afterPurge?(): Promise<void>;
}

/** The storage seam of a driver. */
export function storageOver(driver: StorageDriverName, storeId: Buffer, d: ops.Dialect, r: OpRunner): ServerStorage {
  const storage: ServerStorage = {
    driver,
    storeId,
    getMeta: (key) => r.read("reading meta", () => ops.getMeta(key)),
    setMetaIfAbsent: (key, value) => r.tx("writing meta", () => ops.setMeta(key, value, true)),
    setMeta: async (key, value) => void (await r.tx("writing meta", () => ops.setMeta(key, value, false))),
    readCurrent: (name) => r.read("reading a secret", () => ops.readCurrent(name)),
    readVersion: (name, version) => r.read("reading a secret", () => ops.readVersion(d, name, version)),
    state: (name) => r.read("reading a secret", () => ops.state(name)),
    write: (request) => r.tx("writing a secret", () => ops.write(d, request)),
    list: async (prefix) => (await r.read("listing secrets", () => ops.list(prefix))).map(secretInfoFromRow),
    versions: (name) => r.read("reading a secret's versions", () => ops.versions(name)),
    remove: (name, actor, detail) => r.tx("deleting a secret", () => ops.remove(d, name, actor, detail)),
    purge: async (name, actor, detail) => {
      const purged = await r.tx("purging a secret", () => ops.purge(d, name, actor, detail));
      if (purged !== undefined) await r.afterPurge?.();
      return purged;
    },
    deleteVersions: (name, versions, actor, detail) =>
      r.tx("deleting versions of a secret", () => changeVersions(d, "delete", name, versions, actor, detail, "secret.delete-version")),
    undeleteVersions: (name, versions, actor, detail) =>
      r.tx("undeleting versions of a secret", () => changeVersions(d, "undelete", name, versions, actor, detail, "secret.undelete")),
    destroyVersions: async (name, versions, actor, detail) => {
      const done = await r.tx("destroying versions of a secret", () => changeVersions(d, "destroy", name, versions, actor, detail, "secret.destroy"));
      if (done !== undefined && done.changed.length > 0) await r.afterPurge?.();
      return done;
    },
    createToken: (token, actor, detail) => r.tx("creating a token", () => ops.createToken(d, token, actor, detail)),
    findToken: (hash) => r.read("reading a token", () => ops.findToken({ hash })),
    findTokenById: (id) => r.read("reading a token", () => ops.findToken({ id })),
    listTokens: () => r.read("listing tokens", () => ops.listTokens(d)),
    revokeToken: (id, actor, detail) => r.tx("revoking a token", () => ops.revokeToken(d, id, actor, detail)),
    createExecution: (execution, audit, concurrency) => r.tx("starting an execution", () => exec.createExecution(d, execution, audit, concurrency)),
    getExecution: (id) => r.read("reading an execution", () => exec.getExecution(id)),
    listExecutions: (options) => r.read("listing executions", () => exec.listExecutions(options)),
    updateExecution: (id, change, audit) => r.tx("updating an execution", () => exec.updateExecution(d, id, change, audit)),
    approveExecution: (id, principal, audit) => r.tx("approving an execution", () => exec.approveExecution(d, id, principal, audit)),
    // Output comes in many chunks: committed without an fsync each, as audit batches are.
    appendOutput: (id, seq, data, outputBytes, truncated) =>
      r.tx("storing an execution's output", () => exec.appendOutput(id, seq, data, outputBytes, truncated), false),
    readOutput: (id, afterSeq, limit) => r.read("reading an execution's output", () => exec.readOutput(d, id, afterSeq, limit)),
    heartbeat: (beat) => r.tx("recording a heartbeat", () => exec.heartbeat(beat), false),
    instances: () => r.read("reading instances", () => exec.instances()),
    retireInstance: (id) => r.tx("retiring an instance", () => exec.retireInstance(id)),
    runningExecutions: (instance) => r.read("listing running executions", () => exec.runningExecutions(instance)),
    expiredExecutions: (now) => r.read("listing expired executions", () => exec.expiredExecutions(now)),
    listRoles: () => r.read("listing roles", () => roles.listRoles()),
    getRole: (name) => r.read("reading a role", () => roles.getRole(name)),
    putRole: (name, rules, actor, detail) => r.tx("writing a role", () => roles.putRole(d, name, rules, actor, detail)),
    deleteRole: (name, actor, detail) => r.tx("deleting a role", () => roles.deleteRole(d, name, actor, detail)),
    rolesVersion: () => r.read("reading the roles version", () => roles.rolesVersion()),
    putRotation: (policy, actor, detail) => r.tx("writing a rotation policy", () => rot.putRotation(d, policy, actor, detail)),
    getRotation: (name) => r.read("reading a rotation", () => rot.getRotation(name)),
    listRotations: () => r.read("listing rotations", () => rot.listRotations()),
    deleteRotation: (name, actor, detail) => r.tx("deleting a rotation policy", () => rot.deleteRotation(d, name, actor, detail)),
    claimRotation: (name, holder, until, mode) => r.tx("claiming a rotation", () => rot.claimRotation(name, holder, until, mode)),
    renewRotation: (name, holder, until) => r.tx("renewing a rotation lease", () => rot.renewRotation(name, holder, until), false),
    storeRotationCandidate: (name, holder, seal) => r.tx("storing a rotation candidate", () => rot.storeRotationCandidate(d, name, holder, seal)),
    finishRotation: (name, holder, actor, detail) => r.tx("storing a rotated secret", () => rot.finishRotation(d, name, holder, actor, detail)),
    failRotation: (name, holder, failure) => r.tx("recording a failed rotation", () => rot.failRotation(d, name, holder, failure)),
    appendAudit: (entries) => r.tx("appending to the audit log", () => ops.appendAudit(d, entries), false),
    auditLog: (options = {}) => r.read("reading the audit log", () => ops.auditLog(d, options)),
    // A page per statement, checked as it comes and yielding between pages: a long chain is
    // never in memory at once, nor one long read holding the event loop.
    verifyAudit: (options = {}) => verifyAuditPages((afterSeq, limit) => storage.auditLog({ afterSeq, limit }), options),
    close: () => r.close(),
  };
  return storage;
}
