/**
 * HTTPS and mutual TLS for the team server: loading the certificate, key and client CA (checked
 * against each other), reloading them on SIGHUP without dropping connections, and mapping a
 * verified client certificate to roles through the config's `clients`.
 *
 * TLS 1.2 is the minimum. With `clientCa` the server asks every client for a certificate and
 * refuses, in the handshake, one that is missing or not issued by that CA (or issued without
 * the clientAuth purpose).
 */
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { Server as TlsServer } from "node:tls";
import { CofferError } from "../errors.ts";
import { readPrivateFile, readPublicFile } from "../core/fs-secure.ts";
import type { ServerConfig } from "./config.ts";

/** The TLS files of the server config. */
export type TlsFiles = NonNullable<ServerConfig["tls"]>;

/** What {@link loadTlsOptions} returns: options for `https.createServer` / `tls.createServer`. */
export type TlsServerOptions = ReturnType<typeof loadTlsOptions>;

/** The identity a verified client certificate claims. */
export interface ClientCertificate {
  /** the subject's common name; undefined when absent or given more than once */
  cn: string | undefined;
  /** the DNS names of its subjectAltName, in order */
  dnsNames: string[];
  /** SHA-256 fingerprint, colon-separated hex (as node prints it) */
  fingerprint256: string;
}

/** Each file's name and setting (with its variable), for messages. */
const FILE = {
  cert: { what: "TLS certificate file", setting: "tls.cert (COFFER_TLS_CERT)" },
  key: { what: "TLS key file", setting: "tls.key (COFFER_TLS_KEY)" },
  clientCa: { what: "TLS client CA file", setting: "tls.clientCa (COFFER_TLS_CLIENT_CA)" },
} as const;

/**
 * Reads the PEM files and makes the server's TLS options.
 *
 * The key must be private to the user: group- or world-accessible, or owned by someone else, it is
 * refused with the `chmod`/`chown` to run. The certificate and CA are public (0644 as certbot
 * writes them is fine) but must be the user's or root's and writable by nobody else, since
 * whoever can replace the CA chooses which clients get in.
 * @example https.createServer(loadTlsOptions(config.tls), handler)
 * @throws PermissionsError E_PERMISSIONS; CofferError E_CONFIG when a file is missing or
 *   unreadable, is not PEM of the right kind, the key is encrypted, or the key does not match
 *   the certificate (the message names the files)
 */
export function loadTlsOptions(files: TlsFiles) {
  const key = readTlsFile(files.key, "key");
  const cert = readTlsFile(files.cert, "cert");
  const ca = files.clientCa === undefined ? undefined : readTlsFile(files.clientCa, "clientCa");

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(key.toString("latin1"));
    throw new CofferError(
      "E_CONFIG",
      encrypted
        ? `TLS key file ${files.key} is encrypted; give ${FILE.key.setting} an unencrypted key (e.g. \`openssl pkey -in KEY -out ${files.key}\`), kept 0600`
        : `TLS key file ${files.key} is not a PEM private key; check ${FILE.key.setting}`,
      { cause: err },
    );
  }
  if (privateKey.type !== "private") {
    throw new CofferError("E_CONFIG", `TLS key file ${files.key} holds no private key; check ${FILE.key.setting}`);
  }
  const certificate = parseCertificate(cert, files.cert, "cert");
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new CofferError(
      "E_CONFIG",
      `TLS key file ${files.key} does not match the certificate in ${files.cert} (its first certificate must be the server's); ` +
        `check ${FILE.key.setting} and ${FILE.cert.setting}`,
    );
  }
  if (ca !== undefined) parseCertificate(ca, files.clientCa!, "clientCa");

  const mtls = ca !== undefined;
  const options = { minVersion: "TLSv1.2" as const, requestCert: mtls, rejectUnauthorized: mtls, honorCipherOrder: true };
  return { key, cert, ...(ca !== undefined && { ca }), ...options };
}

/**
 * On SIGHUP, re-reads the files and installs them with `server.setSecureContext`: connections
 * already open keep going on their old context; new handshakes use the new files. The session
 * ticket keys are renewed too (node's new context already has fresh ones; this makes it sure),
 * so no client resumes a session made under the old files: a client certificate is checked
 * again against the current CA. A reload that fails (any error
 * of {@link loadTlsOptions}) keeps the old context.
 * @param onReload - told the outcome of every reload, with the error when it failed
 * @returns a function that removes the handler (SIGHUP then has its default effect again
 *   unless someone else listens)
 */
export function reloadOnSighup(server: TlsServer, files: TlsFiles, onReload: (ok: boolean, error?: Error) => void): () => void {
  const handler = (): void => {
    try {
      server.setSecureContext(loadTlsOptions(files));
      server.setTicketKeys(randomBytes(48));
    } catch (err) {
      onReload(false, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    onReload(true);
  };
  process.on("SIGHUP", handler);
  return () => void process.off("SIGHUP", handler);
}

/**
 * The identity of the verified client certificate on a socket (`request.raw.socket` in
 * fastify).
 * @returns undefined when the socket is not TLS, no certificate was sent, or it did not verify
 */
export function clientCertificate(socket: Socket): ClientCertificate | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const peer = socket.getPeerCertificate(false) as Partial<ReturnType<TLSSocket["getPeerCertificate"]>>;
  if (peer === null || typeof peer !== "object" || peer.raw === undefined || typeof peer.fingerprint256 !== "string") return undefined;
  // Node gives a repeated attribute as an array: a certificate with two CNs names nobody.
  const cnField: unknown = (peer.subject as Record<string, unknown> | undefined)?.["CN"];
  const cn = typeof cnField === "string" ? cnField : undefined;
  const dnsNames = typeof peer.subjectaltname === "string" ? dnsAltNames(peer.subjectaltname) : [];
  return { cn, dnsNames, fingerprint256: peer.fingerprint256 };
}

/**
 * Maps a certificate to a principal through `clients`: its CN when listed, else the first of
 * its DNS names that is listed.
 * @returns `{ subject: "cert:<name>", roles }`, or undefined when no name is listed (the caller
 *   then refuses with 403, or asks for a bearer token)
 */
export function certificatePrincipal(
  cert: { cn: string | undefined; dnsNames: string[] },
  clients: Record<string, string[]>,
): { subject: string; roles: string[] } | undefined {
  const names = cert.cn === undefined ? cert.dnsNames : [cert.cn, ...cert.dnsNames];
  for (const name of names) {
    if (name !== "" && Object.hasOwn(clients, name)) {
      const roles = clients[name];
      if (Array.isArray(roles)) return { subject: `cert:${name}`, roles: [...roles] };
    }
  }
  return undefined;
}

/* ----------------------------------------- helpers ----------------------------------------- */

function readTlsFile(path: string, which: keyof typeof FILE): Buffer {
  const { what, setting } = FILE[which];
  const missing = () => new CofferError("E_CONFIG", `${what} ${path} does not exist; check ${setting}`);
  try {
    return which === "key" ? readPrivateFile(path, what, missing) : readPublicFile(path, what, missing);
  } catch (err) {
    if (err instanceof CofferError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new CofferError("E_CONFIG", `${what} ${path} cannot be read (${code}); check ${setting}`, { cause: err });
  }
}

function parseCertificate(pem: Buffer, path: string, which: "cert" | "clientCa"): X509Certificate {
  const { what, setting } = FILE[which];
  if (!pem.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) {
    throw new CofferError("E_CONFIG", `${what} ${path} holds no PEM certificate; check ${setting}`);
  }
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new CofferError("E_CONFIG", `${what} ${path} is not a valid PEM certificate; check ${setting}`, { cause: err });
  }
}

/**
 * The DNS names of node's `subjectaltname` text: `DNS:a, DNS:b, IP Address:1.2.3.4`, where a
 * value holding a comma, quote or other special character is a JSON string (`DNS:"a,b"`).
 */
export function dnsAltNames(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      // A JSON string: find its closing quote, skipping escapes.
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      end = j + 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        return out; // malformed: stop rather than guess
      }
    } else {
      const comma = text.indexOf(", ", colon + 1);
      end = comma === -1 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    if (type === "DNS" && value !== "") out.push(value);
    if (text.startsWith(", ", end)) i = end + 2;
    else break;
  }
  return out;
}
