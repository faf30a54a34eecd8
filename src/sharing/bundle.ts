/**
 * Bundles (docs/design.md §4): a JSON payload {from card, to card, created, expires, secrets[]} signed
 * with the sender's Ed25519 key, then age-encrypted to the recipient and ASCII-armored. The
 * outer layer is plain age, so `age -d -i` opens it and shows the signed envelope.
 *
 * Opening checks in this order, and looks at nothing before its check has passed: age
 * decryption (addressed to this identity, untampered), the signature over the exact payload
 * bytes, the sender's trust, and only then the payload: recipient, expiry, contents.
 */
import { randomBytes, sign } from "node:crypto";
import { CofferError } from "../errors.ts";
import { decryptWithIdentity, encryptToRecipients } from "../crypto/age.ts";
import { verifyEd25519 } from "../crypto/keys.ts";
import { signingKeyOf, type Identity } from "../identity/identity.ts";
import { cardFingerprint, parseCard, type Card } from "../identity/card.ts";

export const BUNDLE_FORMAT = "coffer-bundle/v1";

/** The largest bundle file coffer reads: 64 MiB (64 secrets of 1 MiB, armored, fit easily). */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
const ENVELOPE_FORMAT = "coffer-signed/v1";

/** One secret in a bundle. */
export interface BundleSecret {
  name: string;
  /** the version in the sender's store */
  version: number;
  /** the value, base64 */
  value: string;
  description: string | null;
}

/** The signed content of a bundle. */
export interface BundlePayload {
  format: typeof BUNDLE_FORMAT;
  /** 16 random bytes, hex: names this bundle in export and import records */
  id: string;
  /** the sender's card */
  from: string;
  /** the recipient's card */
  to: string;
  created: string;
  expires: string | null;
  secrets: BundleSecret[];
}

/** A bundle opened and checked: the sender and the payload. */
export interface OpenedBundle {
  sender: Card;
  senderCard: string;
  fingerprint: string;
  payload: BundlePayload;
}

/** Decides whether a sender (signature already verified) is trusted; may ask the user. */
export type TrustDecision = (sender: { card: string; fingerprint: string; name: string }) => Promise<boolean>;

/** Builds a payload with a fresh id. */
export function newPayload(from: string, to: string, secrets: BundleSecret[], expires: Date | null, now = new Date()): BundlePayload {
  const id = randomBytes(16).toString("hex");
  return { format: BUNDLE_FORMAT, id, from, to, created: now.toISOString(), expires: expires?.toISOString() ?? null, secrets };
}

/**
 * Signs `payload` with the sender's identity and encrypts it to the recipient.
 * @returns the armored age file
 */
export async function sealBundle(payload: BundlePayload, sender: Identity, recipient: string): Promise<string> {
  const payloadBytes = Buffer.from(JSON.stringify(payload), "utf8");
  const signature = sign(null, payloadBytes, signingKeyOf(sender).privateKey);
  const envelope = JSON.stringify({
    format: ENVELOPE_FORMAT, from: payload.from, payload: payloadBytes.toString("base64"), signature: signature.toString("base64url"),
  });
  const encrypted = await encryptToRecipients(Buffer.from(envelope, "utf8"), [recipient]);
  const { armor } = await import("age-encryption");
  return armor.encode(encrypted);
}

/**
 * Opens a bundle with `identity`, checking decryption, signature, trust, recipient and expiry
 * in that order.
 * @throws CofferError E_DECRYPT, E_SIGNATURE, E_UNTRUSTED, E_MISADDRESSED, E_EXPIRED, E_INVALID_VALUE
 */
export async function openBundle(file: Uint8Array, identity: Identity, trusted: TrustDecision, now = new Date()): Promise<OpenedBundle> {
  if (file.length > MAX_BUNDLE_BYTES) {
    throw new CofferError("E_INVALID_VALUE", `invalid value: the bundle is over the limit of ${MAX_BUNDLE_BYTES} bytes (64 MiB)`);
  }
  const plain = Buffer.from(
    await decryptWithIdentity(await canonicalAge(file), identity.secretKey, "the bundle: it is not addressed to your identity, or it was tampered with"),
  );
  const envelope = parseJson(plain, "the bundle's envelope") as Record<string, unknown>;
  if (envelope.format !== ENVELOPE_FORMAT || typeof envelope.from !== "string" || typeof envelope.payload !== "string" || typeof envelope.signature !== "string") {
    throw new CofferError("E_INVALID_VALUE", "not a coffer bundle: the envelope lacks format, from, payload or signature");
  }
  let sender: Card;
  try {
    sender = parseCard(envelope.from);
  } catch {
    throw new CofferError("E_SIGNATURE", "the bundle's sender card is malformed: forged or tampered bundle");
  }
  const payloadBytes = Buffer.from(envelope.payload, "base64");
  const signature = Buffer.from(envelope.signature, "base64url");
  if (!verifyEd25519(sender.signingKey, payloadBytes, signature)) {
    throw new CofferError("E_SIGNATURE", `the bundle's signature does not verify against the sender card "${sender.name}": forged or tampered bundle`);
  }
  const senderCard = envelope.from;
  const fingerprint = cardFingerprint(senderCard);
  if (!(await trusted({ card: senderCard, fingerprint, name: sender.name }))) {
    throw new CofferError(
      "E_UNTRUSTED",
      `the bundle comes from "${sender.name}" (fingerprint ${fingerprint}), who is not a trusted sender; ` +
        `check that fingerprint with them, then run again with --trust ${fingerprint}`,
    );
  }
  const payload = checkPayload(parseJson(payloadBytes, "the bundle's payload"), senderCard);
  const to = parseCard(payload.to);
  if (to.recipient !== identity.recipient || to.signingKey !== signingKeyOf(identity).publicKey) {
    throw new CofferError("E_MISADDRESSED", `the bundle was made for "${to.name}" (${to.recipient}), not for you`);
  }
  if (payload.expires !== null && Date.parse(payload.expires) <= now.getTime()) {
    throw new CofferError("E_EXPIRED", `the bundle expired at ${payload.expires}; ask "${sender.name}" for a new one`);
  }
  return { sender, senderCard, fingerprint, payload };
}

// age's armor decoder tolerates whitespace around the file; a bundle is taken only in the exact
// form coffer writes (CRLF line ends allowed, as mail may add them), so that every changed byte
// of a bundle is refused rather than some being silently equivalent.
async function canonicalAge(file: Uint8Array): Promise<Uint8Array> {
  const text = Buffer.from(file).toString("latin1");
  if (!text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) return file;
  const { armor } = await import("age-encryption");
  const damaged = () => new CofferError("E_DECRYPT", "cannot decrypt the bundle: its armor is damaged or altered");
  let binary: Uint8Array;
  try {
    binary = armor.decode(text);
  } catch {
    throw damaged();
  }
  if (armor.encode(binary) !== text.replaceAll("\r\n", "\n")) throw damaged();
  return binary;
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8")) as unknown;
  } catch {
    throw new CofferError("E_INVALID_VALUE", `not a coffer bundle: ${what} is not JSON`);
  }
}

// The signature covers these bytes, so a failure here is a sender's bug, not an attack;
// still, nothing unchecked goes further.
function checkPayload(value: unknown, senderCard: string): BundlePayload {
  const p = value as Partial<BundlePayload> | null;
  const bad = (why: string) => new CofferError("E_INVALID_VALUE", `not a valid coffer bundle: ${why}`);
  if (p === null || typeof p !== "object" || p.format !== BUNDLE_FORMAT) throw bad(`format is not ${BUNDLE_FORMAT}`);
  if (p.from !== senderCard) throw bad("the signed sender differs from the envelope's");
  if (typeof p.id !== "string" || !/^[0-9a-f]{32}$/.test(p.id)) throw bad("id");
  if (typeof p.to !== "string") throw bad("to");
  if (typeof p.created !== "string" || Number.isNaN(Date.parse(p.created))) throw bad("created");
  if (p.expires !== null && (typeof p.expires !== "string" || Number.isNaN(Date.parse(p.expires)))) throw bad("expires");
  if (!Array.isArray(p.secrets)) throw bad("secrets");
  for (const s of p.secrets as unknown[]) {
    const e = s as Partial<BundleSecret> | null;
    if (
      e === null || typeof e !== "object" || typeof e.name !== "string" || typeof e.value !== "string" ||
      !Number.isSafeInteger(e.version) || (e.version ?? 0) < 1 || (e.description !== null && typeof e.description !== "string")
    ) {
      throw bad("a secret entry lacks name, version, value or description");
    }
  }
  return p as BundlePayload;
}
