/**
 * The console's calls to the coffer API on its own origin. The credential goes in the
 * Authorization header of each call, never in a URL or a cookie; an error answer becomes an
 * {@link ApiError} carrying the server's code and its one-line message (a 403 names the missing
 * capability).
 */
import { SseParser, type SseEvent } from "../src/client/sse.ts";

/** A failed call: the HTTP status (0: the server could not be reached), the server's code and message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly problems: string[];
  constructor(status: number, code: string, message: string, problems: string[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.problems = problems;
  }
}

/** Who the credential is (`GET /v1/auth/self`). */
export interface Self {
  subject: string;
  kind: string;
  roles: string[];
  expiresAt: string | null;
}

/** Calls the API with `token`; resolves with the JSON answer (undefined for an empty one). */
export async function call<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, cache: "no-store", credentials: "omit", ...(body !== undefined && { body: JSON.stringify(body) }) });
  } catch {
    throw new ApiError(0, "E_UNREACHABLE", "cannot reach the coffer server; check that it is running and try again");
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) throw errorOf(res.status, json);
  return json as T;
}

function errorOf(status: number, json: unknown): ApiError {
  const e = (json as { error?: { code?: unknown; message?: unknown; problems?: unknown } } | undefined)?.error;
  const code = typeof e?.code === "string" ? e.code : `HTTP_${status}`;
  const message = typeof e?.message === "string" ? e.message : `the server answered ${status}`;
  const problems = Array.isArray(e?.problems) ? e.problems.filter((p): p is string => typeof p === "string") : [];
  return new ApiError(status, code, message, problems);
}

/**
 * Reads a server-sent event stream with fetch (EventSource cannot send the Authorization
 * header). Calls `onEvent` for each event until the stream ends or `signal` aborts.
 */
export async function stream(token: string, path: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(path, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, cache: "no-store", credentials: "omit", signal });
  } catch (err) {
    if (signal.aborted) return;
    throw new ApiError(0, "E_UNREACHABLE", `cannot reach the coffer server (${(err as Error).message})`);
  }
  if (!res.ok || res.body === null) throw errorOf(res.status, await res.json().catch(() => undefined));
  const parser = new SseParser(onEvent);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(value);
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    parser.end();
  }
}

/**
 * `app/db/password` → `/v1/secrets/app/db/password`. A valid name needs no encoding; one that
 * does is encoded, and the server refuses it with its name rule.
 */
export const secretPath = (name: string, prefix = "/v1/secrets/"): string => `${prefix}${name.split("/").map(encodeURIComponent).join("/")}`;
