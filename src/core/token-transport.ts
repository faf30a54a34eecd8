/**
 * Where a provider may send its token: over `https://`, or plain `http://` only to a loopback
 * address, where nobody on the network can read it. Config files are checked with it when they
 * are read, and the providers check again before they send anything.
 */
import { isIPv4 } from "node:net";

/**
 * Whether `hostname` (as `URL.hostname` gives it) is a loopback address: `localhost`, 127.0.0.0/8
 * or `::1`.
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  if (h === "localhost") return true;
  if (isIPv4(h)) return h.startsWith("127.");
  return h === "[::1]" || h === "::1";
}

/**
 * Why a provider must not send its token to `url`, or undefined when it may.
 * @param url - an http(s) URL (other schemes are the caller's rule)
 * @example tokenTransportRule("http://vault.example.com:8200") // "… plain http:// …"
 */
export function tokenTransportRule(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined; // not a URL: the caller's own rule says so
  }
  if (u.protocol !== "http:" || isLoopbackHost(u.hostname)) return undefined;
  return `would send its token over plain http:// to ${u.host}, where the network can read it; use https://, or http:// only to a loopback address (127.0.0.1, ::1, localhost)`;
}
