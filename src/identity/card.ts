/**
 * The public half of an identity as one line (docs/design.md §4):
 * `coffer-card:v1:<name>:<age1…>:<ed25519 public key, base64url>`, and its fingerprint.
 */
import { createHash } from "node:crypto";
import { CofferError, ValidationError } from "../errors.ts";

/** A member or identity name: letters, digits, `_ . @ -`, starting with a letter or digit. */
export const MEMBER_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.@\\-]{0,63}$";
const MEMBER_NAME_RE = new RegExp(MEMBER_NAME_PATTERN);

/** The parsed fields of a card. */
export interface Card {
  name: string;
  recipient: string;
  signingKey: string;
}

/**
 * Checks a member/identity name.
 * @throws ValidationError E_INVALID_NAME naming the rule
 */
export function assertMemberName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !MEMBER_NAME_RE.test(name)) {
    throw new ValidationError(
      "E_INVALID_NAME",
      `invalid name ${JSON.stringify(String(name).slice(0, 80))}: 1–64 letters, digits, '_', '.', '@', '-', starting with a letter or digit`,
    );
  }
}

/** Formats a card line. */
export function formatCard(card: Card): string {
  assertMemberName(card.name);
  return `coffer-card:v1:${card.name}:${card.recipient}:${card.signingKey}`;
}

/**
 * Parses a card line, checking each field's shape (the age recipient's checksum and the
 * Ed25519 key are checked where they are used).
 * @throws CofferError E_INVALID_VALUE naming the field
 */
export function parseCard(line: string): Card {
  const parts = line.trim().split(":");
  if (parts.length !== 5 || parts[0] !== "coffer-card" || parts[1] !== "v1") {
    throw new CofferError("E_INVALID_VALUE", "not a coffer card: expected coffer-card:v1:<name>:<age1…>:<ed25519 key>");
  }
  const [, , name, recipient, signingKey] = parts as [string, string, string, string, string];
  assertMemberName(name);
  if (!/^age1[02-9ac-hj-np-z]{58}$/.test(recipient)) {
    throw new CofferError("E_INVALID_VALUE", "invalid card: the recipient is not an age X25519 recipient (age1…)");
  }
  if (!/^[A-Za-z0-9_-]{43}$/.test(signingKey)) {
    throw new CofferError("E_INVALID_VALUE", "invalid card: the signing key is not 32 bytes of base64url");
  }
  return { name, recipient, signingKey };
}

/** The short fingerprint shown to humans: the first 16 base32 characters of SHA-256(card). */
export function cardFingerprint(cardLine: string): string {
  const digest = createHash("sha256").update(cardLine.trim(), "utf8").digest();
  return base32(digest.subarray(0, 10));
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

// RFC 4648 base32 of a multiple of 5 bytes (no padding needed): 10 bytes → 16 characters.
function base32(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i + 5 <= bytes.length; i += 5) {
    let block = 0n;
    for (let j = 0; j < 5; j++) block = (block << 8n) | BigInt(bytes[i + j]!);
    for (let j = 7; j >= 0; j--) out += BASE32[Number((block >> BigInt(5 * j)) & 31n)];
  }
  return out;
}
