/**
 * HTTP plumbing shared by the clients of remote secret servers (`src/client/client.ts` for a
 * coffer server, `src/providers/vault.ts` for Vault): one request whose whole body is read as
 * text within a size limit. The messages stay the caller's, which names its server its own way.
 */
import { Agent, request } from "node:https";
import { Readable } from "node:stream";
import { CofferError } from "../errors.ts";

/** How {@link fetchText} names its failures. */
export interface FetchTextOptions {
  /** the server, as messages name it (`server https://…`, `vault at https://…`) */
  where: string;
  /** the largest body read, in bytes; more is refused (E_PROVIDER) */
  maxBytes: number;
  /** the message for a body over the limit: its declared length, or undefined when it went over while being read */
  tooLarge: (declaredBytes: number | undefined) => string;
  /** the error for a request or body read that failed (network, timeout, abort) */
  failed: (err: unknown) => CofferError;
}

/**
 * Sends a request with `send` and reads its body as UTF-8 text.
 * @throws CofferError `options.failed(err)` when sending or reading fails; E_PROVIDER
 *   "`where`: `tooLarge(…)`" for a body over `maxBytes`
 */
export async function fetchText(send: () => Promise<Response>, options: FetchTextOptions): Promise<{ res: Response; text: string }> {
  let res: Response;
  try {
    res = await send();
  } catch (err) {
    throw options.failed(err);
  }
  try {
    return { res, text: await readCapped(res, options.maxBytes, options.tooLarge) };
  } catch (err) {
    if (err instanceof CofferError) throw new CofferError(err.code, `${options.where}: ${err.message}`);
    throw options.failed(err);
  }
}

/**
 * Reads the body as UTF-8, refusing (and cancelling) past `max` bytes; the bytes read are zeroed.
 * @throws CofferError E_PROVIDER `tooLarge(declared length)` when Content-Length is over `max`,
 *   `tooLarge(undefined)` when the body goes over it while being read
 */
export async function readCapped(res: Response, max: number, tooLarge: (declaredBytes: number | undefined) => string): Promise<string> {
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isFinite(length) && length > max) {
    await res.body?.cancel().catch(() => {});
    throw new CofferError("E_PROVIDER", tooLarge(length));
  }
  if (res.body === null) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      for (const c of chunks) c.fill(0);
      throw new CofferError("E_PROVIDER", tooLarge(undefined));
    }
    chunks.push(value);
  }
  const buf = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  const text = buf.toString("utf8");
  buf.fill(0);
  return text;
}

/** TLS material for a client's requests (PEM bytes). */
export interface ClientTls {
  /** the CA certificates to trust instead of the system's (as `curl --cacert`) */
  ca?: Buffer;
  /** a client certificate (chain) to present; needs `key` */
  cert?: Buffer;
  /** the client certificate's private key */
  key?: Buffer;
}

/**
 * A `fetch` for `https://` URLs that trusts `tls.ca` and presents `tls.cert`/`tls.key`, built on
 * node:https since node's own fetch takes TLS options only through undici's dispatcher, which
 * node does not export. It does what coffer's clients use: method, headers, a string or bytes
 * body, `signal`, and `redirect: "error"` (a 3xx is refused; none is ever followed). Failures
 * reject as fetch's do: `TypeError("fetch failed", {cause})`, or the signal's reason.
 */
export function tlsFetch(tls: ClientTls): typeof fetch {
  const agent = new Agent({
    minVersion: "TLSv1.2",
    ...(tls.ca !== undefined && { ca: tls.ca }),
    ...(tls.cert !== undefined && { cert: tls.cert }),
    ...(tls.key !== undefined && { key: tls.key }),
  });
  const failed = (cause: unknown): TypeError => new TypeError("fetch failed", { cause });
  return (async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol !== "https:") throw failed(Object.assign(new Error("TLS settings need an https:// URL"), { code: "ERR_NOT_HTTPS" }));
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    const body = init.body ?? undefined;
    if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)) throw failed(new Error("unsupported body"));
    const method = (init.method ?? "GET").toUpperCase();
    return new Promise<Response>((resolve, reject) => {
      const req = request(url, { method, headers: Object.fromEntries(new Headers(init.headers)), agent }, (res) => {
        const status = res.statusCode ?? 0;
        if ((status >= 300 && status < 400 && init.redirect === "error") || status < 200 || status > 599) {
          res.destroy();
          reject(failed(Object.assign(new Error(`unexpected status ${status}`), { code: status < 400 ? "UND_ERR_REDIRECT" : "ERR_BAD_STATUS" })));
          return;
        }
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) headers.append(k, one);
        }
        const empty = method === "HEAD" || [204, 205, 304].includes(status);
        if (empty) res.resume();
        resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? "", headers }));
      });
      const onAbort = (): void => void req.destroy(signal?.reason as Error);
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("close", () => signal?.removeEventListener("abort", onAbort));
      req.on("error", (err) => reject(signal?.aborted === true ? signal.reason : failed(err)));
      req.end(body);
    });
  }) as typeof fetch;
}
