/**
 * The client half of remote.ts, loaded only when a command talks to a server: the URL from
 * `--server`, COFFER_SERVER or the one saved login; the token from COFFER_TOKEN or the one
 * saved for that URL, with the TLS files saved beside it.
 */
import { CofferError } from "../errors.ts";
import { CofferClient } from "../client/client.ts";
import { normaliseServerUrl } from "../client/server-url.ts";
import { loadServerTls, loadToken, savedServers, tokenFilePath } from "../client/token-file.ts";
import type { Context } from "./command.ts";
import { namedServer } from "./remote.ts";

/**
 * A client of the command's server (see the module comment).
 * @throws CofferError E_USAGE when no server is given and none or several are saved;
 *   E_UNAUTHENTICATED when there is no token for it; E_INVALID_VALUE for a bad URL
 */
export function clientOf(ctx: Context): CofferClient {
  const given = namedServer(ctx);
  let url: string;
  if (given !== undefined) url = normaliseServerUrl(given);
  else {
    const saved = savedServers(ctx.env);
    if (saved.length !== 1) {
      throw new CofferError("E_USAGE", saved.length === 0
        ? "no server: run `coffer login URL` first, or give --server URL (or set COFFER_SERVER)"
        : `tokens are saved for ${saved.length} servers (${saved.join(", ")}) in ${tokenFilePath(ctx.env)}: give --server URL`);
    }
    url = saved[0]!;
  }
  const fromEnv = ctx.env.COFFER_TOKEN?.trim();
  const token = fromEnv !== undefined && fromEnv !== "" ? fromEnv : loadToken(url, ctx.env);
  if (token === undefined) throw new CofferError("E_UNAUTHENTICATED", `no token for ${url}: run \`coffer login ${url}\` or set COFFER_TOKEN`);
  const tls = loadServerTls(url, ctx.env);
  // Every command's 401 says how to get a working credential again.
  const loginHint = `run \`coffer login ${url}\` again (or check COFFER_TOKEN)`;
  return new CofferClient({ url, token, loginHint, ...(tls !== undefined && { tls }) });
}

