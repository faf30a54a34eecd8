/**
 * Where a client reaches a coffer server, and with what: the server URL in its one canonical
 * form, a token fit for a header, and the TLS files (a private CA, a client certificate) read
 * with coffer's file rules.
 */
import { isAbsolute } from "node:path";
import { CofferError } from "../errors.ts";
import { readPrivateFile, readPublicFile } from "../core/fs-secure.ts";
import type { ClientTls } from "./http.ts";
import { shorten } from "./server-error.ts";

/**
 * The TLS files a client of one server uses, as absolute paths: saved by `coffer login URL --ca F
 * --cert F --key F` beside the token (never in .coffer.yml: a committed file must not choose
 * which local key files are read).
 */
export interface ClientTlsFiles {
  /** CA certificates (PEM) trusted for this server instead of the system's */
  ca?: string;
  /** a client certificate (PEM) to present; goes with `key` */
  cert?: string;
  /** its private key (PEM, unencrypted), private to the user */
  key?: string;
}

/**
 * Checks the TLS files of a client: absolute paths, a certificate only with its key; the key
 * private to the user, the certificate and CA owned by the user or root and writable by no
 * one else.
 * @throws CofferError E_USAGE for a bad combination, E_CONFIG for a missing file; PermissionsError
 */
export function readClientTls(files: ClientTlsFiles, url: string): ClientTls {
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new CofferError("E_USAGE", "a client certificate needs its key: give both --cert and --key, or neither");
  }
  for (const p of [files.ca, files.cert, files.key]) {
    if (p !== undefined && !isAbsolute(p)) throw new CofferError("E_USAGE", `TLS file ${JSON.stringify(p)} is not an absolute path`);
  }
  if (!url.startsWith("https://")) {
    throw new CofferError("E_USAGE", `server ${url}: a CA or client certificate needs an https:// URL`);
  }
  const missing = (what: string, path: string) => () =>
    new CofferError("E_CONFIG", `${what} ${path} for server ${url} does not exist; run \`coffer login ${url}\` with the right --ca/--cert/--key`);
  return {
    ...(files.ca !== undefined && { ca: readPublicFile(files.ca, "CA file", missing("CA file", files.ca)) }),
    ...(files.cert !== undefined && { cert: readPublicFile(files.cert, "client certificate", missing("client certificate", files.cert)) }),
    ...(files.key !== undefined && { key: readPrivateFile(files.key, "client key file", missing("client key file", files.key)) }),
  };
}

/** Refuses (E_INVALID_VALUE) a token that cannot go in a header as it is. */
export function assertTokenText(token: string): void {
  if (!/^[\x21-\x7e]{1,8192}$/.test(token)) {
    throw new CofferError("E_INVALID_VALUE", "the token is empty, too long, or holds spaces or control characters; check how it was copied");
  }
}

/**
 * Checks a server URL and gives its canonical form: scheme, lower-case host, port only when
 * not the default, path without trailing slashes (`https://coffer.example.com/team`).
 * @throws CofferError E_INVALID_VALUE for a non-http(s) URL or one with credentials, query or fragment
 */
export function normaliseServerUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not echoed when it may hold credentials (user:password@).
    const shown = String(url).includes("@") ? "the server URL" : JSON.stringify(shorten(String(url), 100));
    throw new CofferError("E_INVALID_VALUE", `${shown} is not a URL; give the server's base URL, e.g. https://coffer.example.com`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new CofferError("E_INVALID_VALUE", `a server URL must be http:// or https://, not ${u.protocol}`);
  }
  if (u.username !== "" || u.password !== "") {
    // Never echo the URL here: it holds credentials.
    throw new CofferError("E_INVALID_VALUE", "a server URL must not hold credentials (user:password@); log in with `coffer login URL` instead");
  }
  if (u.search !== "" || u.hash !== "" || /[?#]/.test(url)) {
    throw new CofferError("E_INVALID_VALUE", "a server URL is scheme://host[:port][/path], without query or fragment");
  }
  return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
}

