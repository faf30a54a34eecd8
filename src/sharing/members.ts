/**
 * Members (people and machines the store shares with), their grants, revocation, and the
 * exposure record that tells what a revoked member still knows.
 */
import { createPublicKey } from "node:crypto";
import { CofferError } from "../errors.ts";
import { bech32Decode } from "../crypto/bech32.ts";
import type { Store } from "../store/store.ts";
import { internalsOf } from "../store/internal.ts";
import type { MemberRow } from "../storage/sqlite-sharing.ts";
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
  const { driver, write } = internalsOf(store);
  return write(() => {
    if (driver.sharing.member({ name }) !== undefined) throw new CofferError("E_CONFLICT", `a member named "${name}" exists already`);
    const byCard = driver.sharing.member({ fingerprint });
    if (byCard !== undefined) throw new CofferError("E_CONFLICT", `that card is already the member "${byCard.name}"`);
    driver.sharing.addMember({
      name, card: canonical, recipient: card.recipient, signing_key: card.signingKey, fingerprint, added_at: new Date().toISOString(), added_by: store.actor,
    });
    store.appendAudit({ action: "users.add", name: null, version: null, detail: { member: name, fingerprint } });
    return getMember(store, name);
  });
}

/** Every member, sorted by name. */
export function listMembers(store: Store): Member[] {
  return internalsOf(store).driver.sharing.members().map((r) => toMember(store, r));
}

/**
 * One member.
 * @throws CofferError E_NOT_FOUND
 */
export function getMember(store: Store, name: string): Member {
  assertMemberName(name);
  const row = internalsOf(store).driver.sharing.member({ name });
  if (row === undefined) throw new CofferError("E_NOT_FOUND", `no member "${name}"; \`coffer users list\` shows who there is`);
  return toMember(store, row);
}

function toMember(store: Store, r: MemberRow): Member {
  return {
    name: r.name, card: r.card, fingerprint: r.fingerprint, recipient: r.recipient,
    addedAt: r.added_at, addedBy: r.added_by, revokedAt: r.revoked_at, grants: internalsOf(store).driver.sharing.grants(r.name),
  };
}

/**
 * Grants patterns to a member (already granted ones are left as they are).
 * @returns the patterns that were new
 * @throws CofferError E_NOT_FOUND, E_DENIED (revoked member), E_INVALID_NAME
 */
export function grant(store: Store, member: string, patterns: readonly string[]): string[] {
  for (const p of patterns) assertPattern(p);
  const { driver, write } = internalsOf(store);
  return write(() => {
    const m = getMember(store, member);
    if (m.revokedAt !== null) throw new CofferError("E_DENIED", `member "${member}" was revoked on ${m.revokedAt}; add them again to share anew`);
    const now = new Date().toISOString();
    const added = patterns.filter((p) => driver.sharing.addGrant(member, p, now, store.actor));
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
  const { driver, write } = internalsOf(store);
  return write(() => {
    const { grants } = getMember(store, member);
    // A grant stored under an older rule may break today's; it can still be removed.
    for (const p of patterns) if (!grants.includes(p)) assertPattern(p);
    const removed = patterns.filter((p) => driver.sharing.removeGrant(member, p));
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
  return internalsOf(store).driver.sharing.exposure(member);
}

/**
 * Revokes a member: no further exports, grants removed.
 * @returns the secrets to rotate: what was exported to them and is still current
 * @throws CofferError E_NOT_FOUND
 */
export function revoke(store: Store, member: string): { member: string; revokedAt: string; toRotate: Exposure[] } {
  const { driver, write } = internalsOf(store);
  return write(() => {
    const m = getMember(store, member);
    const revokedAt = m.revokedAt ?? new Date().toISOString();
    if (m.revokedAt === null) {
      driver.sharing.revokeMember(member, revokedAt);
      store.appendAudit({ action: "revoke", name: null, version: null, detail: { member, fingerprint: m.fingerprint } });
    }
    return { member, revokedAt, toRotate: exposure(store, member) };
  });
}

/** What {@link revokeAndRotate} did: the member revoked, the secrets rotated, those left to rotate by hand and why. */
export interface RevokeRotation {
  member: string;
  revokedAt: string;
  /** each exposed secret rotated from its generator: its new version */
  rotated: { name: string; version: number }[];
  /** each exposed secret that could not be rotated here, with why (no generator, or the error) */
  manual: { name: string; reason: string }[];
}

/**
 * Revokes a member ({@link revoke}), then rotates every secret they still know (the exposure:
 * exported to them, still current) that has a generator remembered (`set --generate`). One that
 * has none, or whose rotation failed, is left to rotate by hand, with why. Each rotation is its
 * own write: one that fails leaves the others done.
 * @throws CofferError E_NOT_FOUND (no such member)
 */
export async function revokeAndRotate(store: Store, member: string): Promise<RevokeRotation> {
  const { revokedAt, toRotate } = revoke(store, member);
  const rotated: RevokeRotation["rotated"] = [];
  const manual: RevokeRotation["manual"] = [];
  for (const name of [...new Set(toRotate.map((e) => e.name))]) {
    const info = store.list(name).find((s) => s.name === name);
    if (info !== undefined && info.generator === null) {
      manual.push({ name, reason: "no generator: its value was set by hand (rotate it with `coffer set`, or with --generate)" });
      continue;
    }
    try {
      const r = await store.rotate(name);
      rotated.push({ name, version: r.version });
    } catch (err) {
      if (!(err instanceof CofferError)) throw err;
      manual.push({ name, reason: `rotation failed: ${err.message}` });
    }
  }
  return { member, revokedAt, rotated, manual };
}
