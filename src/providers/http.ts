/**
 * HTTP plumbing shared by the clients of remote secret servers (`src/server/client.ts` for a
 * coffer server, `src/providers/vault.ts` for Vault): one request whose whole body is read as
 * text within a size limit. The messages stay the caller's, which names its server its own way.
 */
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
