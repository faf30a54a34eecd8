/**
 * How a coffer value (bytes) and a Vault KV v2 map (JSON object) become each other
 * (docs/design.md §13). No marker is stored: the rule is on the bytes alone, and every map a
 * Vault client writes reads back equal.
 *
 * - Bytes that are UTF-8 text of a JSON object in canonical form (canonicalJson of audit.ts: keys
 *   sorted, no spaces) are that map.
 * - Other UTF-8 text reads as `{"value": text}`; bytes that are not UTF-8 as `{"value_base64": …}`.
 * - Written, `{"value": text}` alone is stored as the plain text (unless the text would read
 *   back as a map), `{"value_base64": b}` alone as the bytes when they are not UTF-8; any other
 *   map as its canonical JSON.
 */
import { CofferError } from "../errors.ts";
import { canonicalJson } from "./audit.ts";

/** A Vault KV v2 map: keys to any JSON values. */
export type KvMap = Record<string, unknown>;

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The map a stored value reads as through the Vault API. */
export function valueToMap(bytes: Uint8Array): KvMap {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return { value_base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") };
  }
  return canonicalMap(text) ?? { value: text };
}

/** The map `text` is when it is the canonical JSON of an object, else undefined. */
export function canonicalMap(text: string): KvMap | undefined {
  if (!text.startsWith("{") || !text.endsWith("}")) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  return canonicalJson(parsed) === text ? (parsed as KvMap) : undefined;
}

/** The bytes to store for a map a Vault client writes; {@link valueToMap} gives the map back. */
export function mapToValue(map: KvMap): { bytes: Buffer; plain: boolean } {
  const keys = Object.keys(map);
  if (keys.length === 1 && keys[0] === "value" && typeof map["value"] === "string") {
    const text = map["value"];
    if (text.isWellFormed() && canonicalMap(text) === undefined) return { bytes: Buffer.from(text, "utf8"), plain: true };
  }
  if (keys.length === 1 && keys[0] === "value_base64" && typeof map["value_base64"] === "string") {
    const b64 = map["value_base64"];
    const bytes = Buffer.from(b64, "base64");
    if (bytes.toString("base64") === b64 && !isUtf8(bytes)) return { bytes, plain: true };
    bytes.fill(0);
  }
  return { bytes: Buffer.from(canonicalJson(map), "utf8"), plain: false };
}

/**
 * The value of `key` in a stored value read as a map (a string as its UTF-8 bytes, any other
 * JSON value as its JSON text): what a `.coffer.yml` reference's `key:` delivers.
 * @param shown - the reference as messages show it (never a value)
 * @throws CofferError E_NOT_FOUND when the map has no such key (the message names the keys)
 */
export function valueOfKey(bytes: Uint8Array, key: string, shown: string): Buffer {
  const map = valueToMap(bytes);
  if (!Object.hasOwn(map, key)) {
    const keys = Object.keys(map);
    throw new CofferError("E_NOT_FOUND", `${shown}: the secret has no key "${key}"; it has ${keys.length === 0 ? "no keys" : `the keys ${keys.join(", ")}`}`);
  }
  const v = map[key];
  return Buffer.from(typeof v === "string" ? v : JSON.stringify(v ?? null), "utf8");
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    UTF8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
