/**
 * coffer's library API. Re-exports only.
 *
 * @example
 * import { openStore } from "coffer";
 * const store = await openStore();
 * const apiKey = store.get("payments/stripe").reveal();
 *
 * @example
 * import { connect } from "coffer";
 * const coffer = connect({ url: "https://coffer.internal:8200", cache: { ttl: "5m", staleIfError: "24h" } });
 * const password = await coffer.get("db/prod/password");
 */
// First: on a Node older than coffer needs, importing or requiring coffer throws that line.
import "./node-floor.ts";
export { openStore, createStore, Store } from "./store/store.ts";
export type { OpenStoreOptions, SetOptions, WriteResult, RotateResult, SecretInfo, VersionInfo, VersionState } from "./store/store.ts";
export type { GeneratorSettings } from "./crypto/generate.ts";
export { Secret } from "./core/secret.ts";
export type { SecretMeta } from "./core/secret.ts";
export type { AuditEntry, AuditRecord, AuditVerification } from "./core/audit.ts";
export { resolvePaths } from "./core/paths.ts";
export type { CofferPaths, PathOptions } from "./core/paths.ts";
export { initCoffer } from "./store/init.ts";
export type { InitOptions, InitResult } from "./store/init.ts";
export { CofferError, DecryptError, PermissionsError, ValidationError, ERROR_CODES, isCofferError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export { assertSecretName, isSecretName, SECRET_NAME_PATTERN, ENV_NAME_PATTERN, DEFAULT_MAX_VALUE_BYTES } from "./core/names.ts";
export type { Identity, PassphraseSource } from "./identity/identity.ts";
export { cardOf, loadIdentity, signingKeyOf } from "./identity/identity.ts";
export { cardFingerprint, parseCard } from "./identity/card.ts";
export type { Card } from "./identity/card.ts";
export { addMember, listMembers, getMember, grant, ungrant, revoke, revokeAndRotate, exposure } from "./sharing/members.ts";
export type { Member, Exposure, RevokeRotation } from "./sharing/members.ts";
export { exportBundle, importBundle } from "./sharing/sharing.ts";
export type { ExportResult, ImportOptions, ImportResult } from "./sharing/sharing.ts";
export { importDotenv } from "./sharing/import-dotenv.ts";
export type { DotenvImportResult } from "./sharing/import-dotenv.ts";
export { backupStore, restoreBackup } from "./store/backup.ts";
export type { BackupOptions, BackupResult, RestoreOptions, RestoreResult } from "./store/backup.ts";
export { connect } from "./app/connect.ts";
export type { Connection, ConnectOptions, ConnectCacheOptions, ChangeEvent, ConnectionEvents } from "./app/connect.ts";
export type { StaleEvent } from "./client/cache.ts";
export type { ServerSecretInfo, ServerVersionInfo } from "./client/client.ts";
export { load } from "./app/load.ts";
export type { LoadOptions, Loaded } from "./app/load.ts";
