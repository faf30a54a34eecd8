/**
 * Which coffer server a command talks to, and with which token: `--server URL`, else
 * COFFER_SERVER, else the one server `coffer login` saved a token for; the token from
 * COFFER_TOKEN when it is set (CI), else the one saved for that server, with the TLS files saved
 * beside it. {@link remoteClient} is the one place a command that works on the local store too
 * (set, get, list, …) decides "local or server".
 *
 * The HTTP client (node:https, TLS, sockets) loads only when a server is named: a local
 * `coffer get` must not pay for it at start-up (server-client.ts holds the rest).
 */
import { CofferError } from "../errors.ts";
import type { CofferClient } from "../client/client.ts";
import type { Context, Flag } from "./command.ts";
import { stringFlag } from "./open.ts";

/** The `--server` flag of a command that talks to a coffer server. */
export const SERVER_FLAG: Flag = { type: "string", arg: "URL", help: "the coffer server (default: the one `coffer login` saved a token for)" };

/** Help lines on how the server and token are found. */
export const SERVER_HELP = [
  "The server is --server URL, else COFFER_SERVER, else the one server `coffer login` saved a token",
  "for. The token is COFFER_TOKEN when it is set (CI), else the one `coffer login` saved for that server.",
].join("\n");

/** The `--server` flag of a command that works on the local store unless it is given. */
export const REMOTE_FLAG: Flag = { type: "string", arg: "URL", help: "work on this coffer server instead of the local store (also COFFER_SERVER)" };

/** Help lines of a command that works on the local store or, with --server, on a server. */
export const REMOTE_HELP = [
  "With --server URL (or COFFER_SERVER) it works on that team server instead of the local store,",
  "with the token `coffer login URL` saved (or COFFER_TOKEN); --server beats COFFER_SERVER.",
].join("\n");

/** The server named by `--server`, else by COFFER_SERVER (empty: unset), else undefined. */
export function namedServer(ctx: Context): string | undefined {
  const given = stringFlag(ctx, "server");
  if (given !== undefined) return given;
  const env = ctx.env.COFFER_SERVER;
  return env !== undefined && env.trim() !== "" ? env.trim() : undefined;
}

/**
 * For a command that works on the local store or a server: a client of the server named by
 * `--server` or COFFER_SERVER, or undefined (the local store). `localOnly` lists the command's
 * flags that mean nothing on a server (and `why` says so), refused when one is given with it.
 * @throws CofferError E_USAGE for a server with `--store` or with a local-only flag; what
 *   {@link serverClient} throws
 */
export async function remoteClient(ctx: Context, localOnly: Record<string, string> = {}): Promise<CofferClient | undefined> {
  const named = namedServer(ctx);
  if (named === undefined) return undefined;
  const via = stringFlag(ctx, "server") !== undefined ? "--server" : "COFFER_SERVER";
  if (ctx.store !== undefined) {
    throw new CofferError("E_USAGE", `--store names a local store and ${via} a server: give one of them (unset COFFER_SERVER to use the local store)`);
  }
  for (const [flag, why] of Object.entries(localOnly)) {
    if (ctx.flags[flag] !== undefined && ctx.flags[flag] !== false) throw new CofferError("E_USAGE", `--${flag} is not available against a server (${via}): ${why}`);
  }
  return serverClient(ctx);
}

/**
 * A client of the command's server: the one `--server` or COFFER_SERVER names, else the one
 * server `coffer login` saved a token for (server-client.ts).
 * @throws CofferError E_USAGE when no server is given and none or several are saved;
 *   E_UNAUTHENTICATED when there is no token for it; E_INVALID_VALUE for a bad URL
 */
export async function serverClient(ctx: Context): Promise<CofferClient> {
  return (await import("./server-client.ts")).clientOf(ctx);
}

/** Runs `fn` with a client of the command's server (see {@link serverClient}, whose 401s say to log in again). */
export async function onServer<T>(ctx: Context, fn: (client: CofferClient) => Promise<T>): Promise<T> {
  return fn(await serverClient(ctx));
}
