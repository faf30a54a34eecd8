/**
 * The local store's sharing tables as typed statements (docs/design.md §7): members and their
 * grants, trusted senders, the record of every export, where each imported secret came from.
 * `src/sharing/` decides; this only reads and writes rows. Each write joins the transaction
 * that is open (the caller's), so a change and its audit record land together.
 */
import type { SqliteDriver } from "./sqlite.ts";

/** A `members` row. */
export interface MemberRow {
  name: string;
  card: string;
  fingerprint: string;
  recipient: string;
  signing_key: string;
  added_at: string;
  added_by: string;
  revoked_at: string | null;
}

export class SharingTables {
  readonly #d: SqliteDriver;

  constructor(driver: SqliteDriver) {
    this.#d = driver;
  }

  /** A member by name or by card fingerprint. */
  member(by: { name: string } | { fingerprint: string }): MemberRow | undefined {
    const [column, value] = "name" in by ? ["name", by.name] : ["fingerprint", by.fingerprint];
    return this.#d.stmt(`SELECT * FROM members WHERE ${column} = ?`).get(value) as MemberRow | undefined;
  }

  /** Every member, sorted by name. */
  members(): MemberRow[] {
    return this.#d.stmt("SELECT * FROM members ORDER BY name").all() as unknown as MemberRow[];
  }

  addMember(m: Omit<MemberRow, "revoked_at">): void {
    this.#d.stmt("INSERT INTO members (name, card, recipient, signing_key, fingerprint, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(m.name, m.card, m.recipient, m.signing_key, m.fingerprint, m.added_at, m.added_by);
  }

  /** Marks a member revoked at `at` and removes their grants. */
  revokeMember(name: string, at: string): void {
    this.#d.stmt("UPDATE members SET revoked_at = ? WHERE name = ?").run(at, name);
    this.#d.stmt("DELETE FROM grants WHERE member = ?").run(name);
  }

  /** A member's granted patterns, sorted. */
  grants(member: string): string[] {
    return (this.#d.stmt("SELECT pattern FROM grants WHERE member = ? ORDER BY pattern").all(member) as { pattern: string }[]).map((g) => g.pattern);
  }

  /** Grants `pattern`; false when it was granted already. */
  addGrant(member: string, pattern: string, at: string, by: string): boolean {
    return Number(this.#d.stmt("INSERT OR IGNORE INTO grants (member, pattern, granted_at, granted_by) VALUES (?, ?, ?, ?)").run(member, pattern, at, by).changes) > 0;
  }

  /** Removes a grant; false when there was none. */
  removeGrant(member: string, pattern: string): boolean {
    return Number(this.#d.stmt("DELETE FROM grants WHERE member = ? AND pattern = ?").run(member, pattern).changes) > 0;
  }

  /** Records that bundle `bundleId` carried these versions to `member`. */
  recordExport(bundleId: string, member: string, secrets: readonly { name: string; version: number }[], at: string, by: string): void {
    const insert = this.#d.stmt("INSERT INTO exports (bundle_id, member, name, version, exported_at, exported_by) VALUES (?, ?, ?, ?, ?, ?)");
    for (const s of secrets) insert.run(bundleId, member, s.name, s.version, at, by);
  }

  /** The versions `member` received that are still their secret's current one, by name. */
  exposure(member: string): { name: string; version: number; exportedAt: string }[] {
    return (this.#d.stmt(
      `SELECT e.name AS name, e.version AS version, max(e.exported_at) AS exportedAt
         FROM exports e JOIN secrets s ON s.name = e.name AND s.latest = e.version
        WHERE e.member = ? GROUP BY e.name, e.version ORDER BY e.name`,
    ).all(member) as { name: string; version: number; exportedAt: string }[]).map((r) => ({ name: r.name, version: r.version, exportedAt: r.exportedAt }));
  }

  /** The card trusted under `fingerprint`, if any. */
  trustedCard(fingerprint: string): string | undefined {
    return (this.#d.stmt("SELECT card FROM trusted WHERE fingerprint = ?").get(fingerprint) as { card: string } | undefined)?.card;
  }

  trust(fingerprint: string, card: string, at: string): void {
    this.#d.stmt("INSERT OR REPLACE INTO trusted (fingerprint, card, trusted_at) VALUES (?, ?, ?)").run(fingerprint, card, at);
  }

  /** Where the imported secret `name` came from, if it was imported. */
  importSource(name: string): { source: string; sourceVersion: number } | undefined {
    const row = this.#d.stmt("SELECT source, source_version FROM imports WHERE name = ?").get(name) as { source: string; source_version: number } | undefined;
    return row === undefined ? undefined : { source: row.source, sourceVersion: row.source_version };
  }

  recordImport(name: string, source: string, sourceVersion: number, bundleId: string, at: string): void {
    this.#d.stmt(
      `INSERT INTO imports (name, source, source_version, bundle_id, imported_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET source = excluded.source, source_version = excluded.source_version,
         bundle_id = excluded.bundle_id, imported_at = excluded.imported_at`,
    ).run(name, source, sourceVersion, bundleId, at);
  }
}
