/**
 * Members (people and machines the store shares with), their grants, revocation, and the
 * exposure record that tells what a revoked member still knows.
 */
import { createPublicKey } from "node:crypto";
import { CofferError } from "../errors.ts";
import { bech32Decode } from "../crypto/bech32.ts";
import type { Store } from "../store/store.ts";
import { assertMemberName, cardFingerprint, formatCard, parseCard, type Card } from "../identity/card.ts";
import { assertPattern, selectGranted } from "./grants.ts";

/** A member as listed. */
export interface Member {
  name: string;
  card: string;
  fingerprint: string;
  recipient: string;
  addedAt: string;
  addedBy: string;
  revokedAt: string | null;
  grants: string[];
}

/** A secret version a member received in a bundle and that is still the current one. */
export interface Exposure {
  name: string;
  version: number;
  exportedAt: string;
}

interface MemberRow {
  name: string;
  card: string;
  fingerprint: string;
  recipient: string;
  added_at: string;
  added_by: string;
  revoked_at: string | null;
}

/**
 * Parses a card and checks its keys: the age recipient's bech32 checksum and length, and
 * that the Ed25519 key is a point on the curve (Node's key import does not check that).
 * @throws CofferError E_INVALID_VALUE naming what is wrong
 */
export async function validateCard(line: string): Promise<Card> {
  const card = parseCard(line);
  const decoded = bech32Decode(card.recipient);
  if (decoded === undefined || decoded.prefix !== "age" || decoded.bytes.length !== 32) {
    throw new CofferError("E_INVALID_VALUE", "invalid card: the age recipient's checksum does not verify");
  }
  const key = Buffer.from(card.signingKey, "base64url");
  const { ed25519 } = await import("@noble/curves/ed25519.js");
  try {
    ed25519.Point.fromBytes(key);
    createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: card.signingKey }, format: "jwk" });
  } catch (cause) {
    throw new CofferError("E_INVALID_VALUE", "invalid card: the Ed25519 signing key is not a valid public key", { cause });
  }
  return card;
}

/**
 * Adds a member under a local name, from their card.
 * @throws CofferError E_CONFLICT when the name or the card is already a member
 */
export async function addMember(store: Store, name: string, cardLine: string): Promise<Member> {
  assertMemberName(name);
  const card = await validateCard(cardLine);
  const canonical = formatCard(card);
  const fingerprint = cardFingerprint(canonical);
  if (card.recipient === store.owner.recipient) {
    throw new CofferError("E_CONFLICT", "that card is your own identity's; members are other people and machines");
  }
  return store.transaction(() => {
    const byName = store.sql("SELECT name FROM members WHERE name = ?").get(name);
    if (byName !== undefined) throw new CofferError("E_CONFLICT", `a member named "${name}" exists already`);
    const byCard = store.sql("SELECT name FROM members WHERE fingerprint = ?").get(fingerprint) as { name: string } | undefined;
    if (byCard !== undefined) throw new CofferError("E_CONFLICT", `that card is already the member "${byCard.name}"`);
    const now = new Date().toISOString();
    store
      .sql("INSERT INTO members (name, card, recipient, signing_key, fingerprint, added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(name, canonical, card.recipient, card.signingKey, fingerprint, now, store.actor);
    store.appendAudit({ action: "users.add", name: null, version: null, detail: { member: name, fingerprint } });
    return getMember(store, name);
  });
}

/** Every member, sorted by name. */
export function listMembers(store: Store): Member[] {
  const rows = store.sql("SELECT * FROM members ORDER BY name").all() as unknown as MemberRow[];
  return rows.map((r) => toMember(store, r));
}

/**
 * One member.
 * @throws CofferError E_NOT_FOUND
 */
export function getMember(store: Store, name: string): Member {
  assertMemberName(name);
  const row = store.sql("SELECT * FROM members WHERE name = ?").get(name) as MemberRow | undefined;
  if (row === undefined) throw new CofferError("E_NOT_FOUND", `no member "${name}"; \`coffer users list\` shows who there is`);
  return toMember(store, row);
}

function toMember(store: Store, r: MemberRow): Member {
  const grants = (store.sql("SELECT pattern FROM grants WHERE member = ? ORDER BY pattern").all(r.name) as { pattern: string }[]).map(
    (g) => g.pattern,
  );
  return {
    name: r.name, card: r.card, fingerprint: r.fingerprint, recipient: r.recipient,
    addedAt: r.added_at, addedBy: r.added_by, revokedAt: r.revoked_at, grants,
  };
}

/**
 * Grants patterns to a member (already granted ones are left as they are).
 * @returns the patterns that were new
 * @throws CofferError E_NOT_FOUND, E_DENIED (revoked member), E_INVALID_NAME
 */
export function grant(store: Store, member: string, patterns: readonly string[]): string[] {
  for (const p of patterns) assertPattern(p);
  return store.transaction(() => {
    const m = getMember(store, member);
    if (m.revokedAt !== null) throw new CofferError("E_DENIED", `member "${member}" was revoked on ${m.revokedAt}; add them again to share anew`);
    const now = new Date().toISOString();
    const added = patterns.filter(
      (p) => store.sql("INSERT OR IGNORE INTO grants (member, pattern, granted_at, granted_by) VALUES (?, ?, ?, ?)").run(member, p, now, store.actor).changes > 0,
    );
    if (added.length > 0) store.appendAudit({ action: "grant", name: null, version: null, detail: { member, patterns: added } });
    return added;
  });
}

/**
 * Removes granted patterns from a member.
 * @returns the patterns that were removed
 * @throws CofferError E_NOT_FOUND
 */
export function ungrant(store: Store, member: string, patterns: readonly string[]): string[] {
  return store.transaction(() => {
    const { grants } = getMember(store, member);
    // A grant stored under an older rule may break today's; it can still be removed.
    for (const p of patterns) if (!grants.includes(p)) assertPattern(p);
    const removed = patterns.filter((p) => store.sql("DELETE FROM grants WHERE member = ? AND pattern = ?").run(member, p).changes > 0);
    if (removed.length > 0) store.appendAudit({ action: "ungrant", name: null, version: null, detail: { member, patterns: removed } });
    return removed;
  });
}

/**
 * The current secrets that a member's grants match, by name: what `export` would send them now.
 * @throws CofferError E_NOT_FOUND
 */
export function grantedNames(store: Store, member: string): string[] {
  const { grants } = getMember(store, member);
  return grants.length === 0 ? [] : selectGranted(store.list().map((i) => i.name), grants);
}

/**
 * What a member still knows: every (name, version) exported to them that is still the
 * secret's current version. Rotating a secret (a new version) takes it off the list.
 */
export function exposure(store: Store, member: string): Exposure[] {
  return (
    store
      .sql(
        `SELECT e.name AS name, e.version AS version, max(e.exported_at) AS exportedAt
           FROM exports e JOIN secrets s ON s.name = e.name AND s.latest = e.version
          WHERE e.member = ? GROUP BY e.name, e.version ORDER BY e.name`,
      )
      .all(member) as unknown as Exposure[]
  ).map((r) => ({ name: r.name, version: r.version, exportedAt: r.exportedAt }));
}

/**
 * Revokes a member: no further exports, grants removed.
 * @returns the secrets to rotate: what was exported to them and is still current
 * @throws CofferError E_NOT_FOUND
 */
export function revoke(store: Store, member: string): { member: string; revokedAt: string; toRotate: Exposure[] } {
  return store.transaction(() => {
    const m = getMember(store, member);
    const revokedAt = m.revokedAt ?? new Date().toISOString();
    if (m.revokedAt === null) {
      store.sql("UPDATE members SET revoked_at = ? WHERE name = ?").run(revokedAt, member);
      store.sql("DELETE FROM grants WHERE member = ?").run(member);
      store.appendAudit({ action: "revoke", name: null, version: null, detail: { member, fingerprint: m.fingerprint } });
    }
    return { member, revokedAt, toRotate: exposure(store, member) };
  });
}
