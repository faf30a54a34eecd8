/**
 * Sharing a subset of the store: export to a member as a signed bundle, import a bundle from
 * a trusted sender. Every export is recorded (revocation lists what a member received);
 * every import lands all of its secrets or none.
 */
import { CofferError } from "../errors.ts";
import { assertSecretName, assertValue } from "../core/names.ts";
import type { Store } from "../store/store.ts";
import { internalsOf } from "../store/internal.ts";
import { cardOf, type Identity } from "../identity/identity.ts";
import { matchesAny, selectGranted } from "./grants.ts";
import { getMember } from "./members.ts";
import { newPayload, openBundle, sealBundle, type BundleSecret } from "./bundle.ts";

/** What an export produced. */
export interface ExportResult {
  /** the armored bundle */
  bundle: string;
  id: string;
  member: string;
  secrets: { name: string; version: number }[];
  expires: string | null;
}

/**
 * Exports to `member` every current secret their grants match, or the listed `names` (each
 * must be granted), as a bundle only they can open. Records the export before returning.
 * @param options.expiresInSeconds - lifetime of the bundle (null: never expires)
 * @throws CofferError E_NOT_FOUND, E_DENIED (revoked, or a listed secret not granted)
 */
export async function exportBundle(
  store: Store,
  identity: Identity,
  member: string,
  names: readonly string[] = [],
  options: { expiresInSeconds?: number | null } = {},
): Promise<ExportResult> {
  const m = getMember(store, member);
  if (m.revokedAt !== null) throw new CofferError("E_DENIED", `member "${member}" was revoked on ${m.revokedAt}; nothing can be exported to them`);
  if (m.grants.length === 0) throw new CofferError("E_DENIED", `member "${member}" has no grants; \`coffer grant ${member} PATTERN\` first`);
  for (const n of names) {
    assertSecretName(n);
    if (!matchesAny(n, m.grants)) {
      throw new CofferError("E_DENIED", `secret "${n}" is not granted to "${member}" (grants: ${m.grants.join(", ")}); nothing was exported`);
    }
  }
  const info = new Map(store.list().map((i) => [i.name, i]));
  const chosen = names.length > 0 ? [...new Set(names)] : selectGranted([...info.keys()], m.grants);
  if (chosen.length === 0) throw new CofferError("E_NOT_FOUND", `no secret matches the grants of "${member}" (${m.grants.join(", ")})`);
  const secrets: BundleSecret[] = chosen.map((name) => {
    const secret = store.get(name);
    try {
      return { name, version: secret.version, value: Buffer.from(secret.bytes()).toString("base64"), description: info.get(name)?.description ?? null };
    } finally {
      secret.dispose();
    }
  });
  const seconds = options.expiresInSeconds === undefined ? 7 * 86400 : options.expiresInSeconds;
  const expires = seconds === null ? null : new Date(Date.now() + seconds * 1000);
  const payload = newPayload(cardOf(identity), m.card, secrets, expires);
  const bundle = await sealBundle(payload, identity, m.recipient);
  // Record before the bundle leaves this function: revocation must never under-report.
  const { driver, write } = internalsOf(store);
  write(() => {
    driver.sharing.recordExport(payload.id, member, secrets, payload.created, store.actor);
    store.appendAudit({
      action: "export", name: null, version: null,
      detail: { member, bundle: payload.id, secrets: secrets.map((s) => `${s.name}@${s.version}`) },
    });
  });
  return { bundle, id: payload.id, member, secrets: secrets.map((s) => ({ name: s.name, version: s.version })), expires: payload.expires };
}

/** Options of {@link importBundle}. */
export interface ImportOptions {
  /** trust the sender whose card has this fingerprint (checked with them out of band) */
  trust?: string;
  /** asks the user whether to trust a sender not yet trusted (a terminal prompt) */
  confirmTrust?: (sender: { name: string; fingerprint: string }) => Promise<boolean>;
  /** accept versions older than the ones held, and overwrite secrets that came from elsewhere */
  force?: boolean;
}

/** What an import did. */
export interface ImportResult {
  from: string;
  fingerprint: string;
  bundle: string;
  imported: { name: string; version: number; sourceVersion: number }[];
  /** already held at that source version */
  unchanged: string[];
}

/**
 * Imports a bundle: opens and checks it (see {@link openBundle}), refuses a version older than
 * the one held from that sender (no silent rollback) and a secret that exists here but did not
 * come from that sender, unless `force`. Writes every secret, the sender's trust and the audit
 * record in one transaction; a refused bundle writes nothing.
 */
export async function importBundle(store: Store, identity: Identity, file: Uint8Array, options: ImportOptions = {}): Promise<ImportResult> {
  let trustNow = false;
  const { driver, write } = internalsOf(store);
  const opened = await openBundle(file, identity, async (sender) => {
    if (driver.sharing.trustedCard(sender.fingerprint) === sender.card) return true;
    if (options.trust !== undefined && options.trust.toUpperCase() !== sender.fingerprint) {
      // Not the same as no --trust at all: the user expected someone else (fingerprints are public).
      throw new CofferError(
        "E_UNTRUSTED",
        `--trust ${options.trust} does not match this bundle's sender "${sender.name}", whose fingerprint is ${sender.fingerprint}; ` +
          "it is not from the sender you expected, or the fingerprint was mistyped: check it with them; nothing was imported",
      );
    }
    trustNow = options.trust !== undefined || (await options.confirmTrust?.(sender)) === true;
    return trustNow;
  });
  const { payload, fingerprint } = opened;
  const values = payload.secrets.map((s) => {
    assertSecretName(s.name);
    const bytes = Buffer.from(s.value, "base64");
    assertValue(bytes);
    return { ...s, bytes };
  });
  try {
    return write(() => {
      const imported: ImportResult["imported"] = [];
      const unchanged: string[] = [];
      const now = new Date().toISOString();
      for (const s of values) {
        const held = driver.sharing.importSource(s.name);
        const fromSender = held !== undefined && held.source === fingerprint;
        if (options.force !== true) {
          if (fromSender && s.version < held.sourceVersion) {
            throw new CofferError(
              "E_CONFLICT",
              `"${s.name}" v${s.version} in the bundle is older than v${held.sourceVersion} already imported from "${opened.sender.name}": refusing a rollback (--force accepts it); nothing was imported`,
            );
          }
          if (fromSender && s.version === held.sourceVersion) {
            unchanged.push(s.name);
            continue;
          }
          if (!fromSender && store.list(s.name, { deleted: true }).some((i) => i.name === s.name)) {
            throw new CofferError(
              "E_CONFLICT",
              `"${s.name}" exists here and did not come from "${opened.sender.name}"; --force overwrites it; nothing was imported`,
            );
          }
        }
        // A value from someone else is not one this store generated: its generator is forgotten.
        const w = store.set(s.name, s.bytes, { generator: null, ...(s.description !== null && { description: s.description }) });
        driver.sharing.recordImport(s.name, fingerprint, s.version, payload.id, now);
        imported.push({ name: s.name, version: w.version, sourceVersion: s.version });
      }
      if (trustNow) driver.sharing.trust(fingerprint, opened.senderCard, now);
      store.appendAudit({
        action: "import", name: null, version: null,
        detail: { from: opened.sender.name, fingerprint, bundle: payload.id, secrets: imported.map((i) => `${i.name}@${i.version}`), unchanged: unchanged.length },
      });
      return { from: opened.sender.name, fingerprint, bundle: payload.id, imported, unchanged };
    });
  } finally {
    for (const v of values) v.bytes.fill(0);
  }
}
