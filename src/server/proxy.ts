/**
 * Whose address a request comes from, behind reverse proxies (docs/security.md, "Proxies"):
 * X-Forwarded-For is believed for exactly the configured number of hops (`behindProxy: N`) or
 * only from the configured proxies (`trustedProxies`); the client is the first untrusted
 * address from the right. Whatever the header says is checked before it is used: an entry that
 * is not an IP address (a forged 3,000-character "source") gives way to the socket's peer.
 */
import { isIP } from "node:net";
import type { ServerConfig } from "./config.ts";

/** fastify's `trustProxy` for the config: a hop-count function, the proxies' CIDRs, or off. */
export function trustProxyOption(config: Pick<ServerConfig, "behindProxy" | "trustedProxies">): false | string[] | ((address: string, hop: number) => boolean) {
  if (config.trustedProxies !== undefined) return [...config.trustedProxies];
  const hops = config.behindProxy;
  if (hops <= 0) return false;
  // fastify's own numeric trustProxy trusts nothing at all; hop i (0 = the socket's peer) is trusted while i < hops.
  return (_address: string, hop: number) => hop < hops;
}

/**
 * The client's address for rate limits and the audit: fastify's `req.ip` when it is an IP
 * address, else the socket's peer (never text a client wrote that is not an address).
 */
export function clientAddress(req: { ip: string; raw: { socket?: { remoteAddress?: string | undefined } | null } }): string {
  const ip = req.ip;
  if (typeof ip === "string" && ip.length <= 64 && isIP(ip) !== 0) return ip;
  return req.raw.socket?.remoteAddress ?? "unknown";
}
