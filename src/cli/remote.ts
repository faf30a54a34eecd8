/**
 * Which coffer server a command talks to, and with which token: `--server URL`, else the one
 * server `coffer login` saved a token for; the token from COFFER_TOKEN when it is set (CI), else
 * the one saved for that server, with the TLS files saved beside it.
 */
import { CofferError } from "../errors.ts";
import { CofferClient, normaliseServerUrl } from "../client/client.ts";
import { loadServerTls, loadToken, savedServers, tokenFilePath } from "../client/token-file.ts";
import type { Context, Flag } from "./command.ts";
import { stringFlag } from "./open.ts";

/** The `--server` flag of a command that talks to a coffer server. */
export const SERVER_FLAG: Flag = { type: "string", arg: "URL", help: "the coffer server (default: the one `coffer login` saved a token for)" };

/** Help lines on how the server and token are found. */
export const SERVER_HELP = [
  "The server is --server URL, else the one server `coffer login` saved a token for. The token is",
  "COFFER_TOKEN when it is set (CI), else the one `coffer login` saved for that server.",
].join("\n");

/**
 * A client of the command's server (see the module comment).
 * @throws CofferError E_USAGE when no server is given and none or several are saved;
 *   E_UNAUTHENTICATED when there is no token for it; E_INVALID_VALUE for a bad URL
 */
export function serverClient(ctx: Context): CofferClient {
  const given = stringFlag(ctx, "server");
  let url: string;
  if (given !== undefined) url = normaliseServerUrl(given);
  else {
    const saved = savedServers(ctx.env);
    if (saved.length !== 1) {
      throw new CofferError("E_USAGE", saved.length === 0
        ? "no server: run `coffer login URL` first, or give --server URL"
        : `tokens are saved for ${saved.length} servers (${saved.join(", ")}) in ${tokenFilePath(ctx.env)}: give --server URL`);
    }
    url = saved[0]!;
  }
  const fromEnv = ctx.env.COFFER_TOKEN?.trim();
  const token = fromEnv !== undefined && fromEnv !== "" ? fromEnv : loadToken(url, ctx.env);
  if (token === undefined) throw new CofferError("E_UNAUTHENTICATED", `no token for ${url}: run \`coffer login ${url}\` or set COFFER_TOKEN`);
  const tls = loadServerTls(url, ctx.env);
  return new CofferClient({ url, token, ...(tls !== undefined && { tls }) });
}
