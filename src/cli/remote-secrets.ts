/**
 * The server side of `coffer set/get/list/history/rm/rollback/audit` with `--server` (or
 * COFFER_SERVER): each function asks the team server and gives the answer in the shape the local
 * command prints, so a command prints both the same way and keeps one printing path.
 */
import type { AuditRecord, AuditVerification } from "../core/audit.ts";
import type { VersionInfo } from "../core/secret.ts";
import { ServerAdmin } from "../client/admin.ts";
import type { CofferClient, ServerSecretInfo } from "../client/client.ts";

/** What `coffer get` prints: a version's value (the caller zeroes `bytes`) and when it was written. */
export interface ReadValue {
  name: string;
  version: number;
  updatedAt: string;
  bytes: Buffer;
}

/** Reads `name` (or its `version`) from the server; the server audits the read. */
export async function remoteRead(client: CofferClient, name: string, version: number | undefined): Promise<ReadValue> {
  const s = await client.readSecret(name, version);
  return { name: s.name, version: s.version, updatedAt: s.updatedAt, bytes: s.value };
}

/** A row of `coffer list` from a server: what it lists, with no removed or rotation-due marks (it has neither). */
export type RemoteListing = ServerSecretInfo & { deletedAt: null; rotationDue: false };

/** Lists the secrets under `prefix` the caller may list. */
export async function remoteList(client: CofferClient, prefix: string): Promise<{ rows: RemoteListing[]; json: ServerSecretInfo[] }> {
  const json = await client.listSecrets(prefix);
  return { rows: json.map((r) => ({ ...r, deletedAt: null, rotationDue: false })), json };
}

/** A secret's versions, oldest first. */
export async function remoteHistory(client: CofferClient, name: string): Promise<VersionInfo[]> {
  return (await client.versions(name)).versions;
}

/** Every audit record since `since`, oldest first, page by page. */
export async function remoteAudit(client: CofferClient, since: Date | undefined, filters: { subject?: string; action?: string; prefix?: string }): Promise<AuditRecord[]> {
  return new ServerAdmin(client).auditLogAll({ ...filters, ...(since !== undefined && { since: since.toISOString() }) });
}

/** Recomputes the server's audit chain (from its last checkpoint, or `full`). */
export async function remoteVerify(client: CofferClient, full: boolean): Promise<AuditVerification> {
  return new ServerAdmin(client).verifyAudit(full);
}
