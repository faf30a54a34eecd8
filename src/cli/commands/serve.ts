import { resolve } from "node:path";
import { CofferError } from "../../errors.ts";
import type { Command, Context } from "../command.ts";
import { printJson } from "../open.ts";

const DATA_FLAG = { type: "string", arg: "DIR", help: "the server's data dir (master key, database)" } as const;
const CONFIG_FLAG = { type: "string", arg: "F", help: "the server config (YAML); every key can also come from COFFER_* variables" } as const;

async function config(ctx: Context) {
  const { loadServerConfig } = await import("../../server/config.ts");
  const file = typeof ctx.flags.config === "string" ? ctx.flags.config : undefined;
  const listen = typeof ctx.flags.listen === "string" ? ctx.flags.listen : undefined;
  return loadServerConfig({
    env: ctx.env,
    ...(file !== undefined && { file }),
    ...(listen !== undefined && { listen }),
    ...(ctx.flags.production === true && { production: true }),
  });
}

function dataDir(ctx: Context, usage: string): string {
  if (ctx.args.length > 0) throw new CofferError("E_USAGE", `unexpected argument "${ctx.args[0]}"; usage: ${usage}`);
  const dir = ctx.flags.data;
  if (typeof dir !== "string" || dir === "") throw new CofferError("E_USAGE", `missing --data DIR; usage: ${usage}`);
  return resolve(dir);
}

export const serverInit: Command = {
  name: "server init",
  usage: "--data DIR [--config F] [--json]",
  details: [
    "Creates DIR (0700) with master.key (0600: 32 random bytes every value is sealed under) and the",
    "database, then prints a root token once, as the last line on stdout. Only its hash is stored:",
    "keep it in a password manager, use it to create narrower tokens (POST /v1/tokens), and back up",
    "master.key apart from the database: without it the values cannot be read.",
  ].join("\n"),
  examples: ["coffer server init --data /var/lib/coffer", "coffer server init --data ./server-data --json"],
  flags: { data: DATA_FLAG, config: CONFIG_FLAG, json: { type: "boolean", help: "print the result as JSON" } },
  async run(ctx) {
    const dir = dataDir(ctx, "coffer server init --data DIR");
    const { initServer } = await import("../../server/server.ts");
    const result = await initServer(dir, await config(ctx));
    if (ctx.flags.json === true) return printJson(ctx, result);
    ctx.say(`coffer: server data dir ready at ${dir} (${result.storage}); the root token (shown once) follows`);
    ctx.out(`${result.rootToken}\n`);
  },
};

export const serverRootToken: Command = {
  name: "server root-token",
  usage: "--data DIR [--config F] [--json]",
  details: [
    "The way back when the root token is lost or leaked: with the data dir's master.key (and the",
    "database the config names, when it is PostgreSQL) it creates a new root token, revokes every",
    "other root token, records both in the audit chain (actor server-root-token), and prints the",
    "new token once, as the last line on stdout. It opens the database directly: the server need",
    "not run, and a running one sees the change at its next request.",
  ].join("\n"),
  examples: [
    "coffer server root-token --data /var/lib/coffer --config /etc/coffer/server.yml",
    "coffer server root-token --data ./server-data --json",
  ],
  flags: { data: DATA_FLAG, config: CONFIG_FLAG, json: { type: "boolean", help: "print the result as JSON" } },
  async run(ctx) {
    const dir = dataDir(ctx, "coffer server root-token --data DIR");
    const { replaceRootToken } = await import("../../server/server.ts");
    const result = await replaceRootToken(dir, await config(ctx));
    if (ctx.flags.json === true) return printJson(ctx, result);
    const old = result.revoked.length === 0 ? "no other root token was active" : `revoked the old root token${result.revoked.length > 1 ? "s" : ""} ${result.revoked.join(", ")}`;
    ctx.say(`coffer: new root token ${result.rootTokenId} (${result.storage}); ${old}; the token (shown once) follows`);
    ctx.out(`${result.rootToken}\n`);
  },
};

export const serve: Command = {
  name: "serve",
  usage: "--data DIR [--config F] [--listen HOST:PORT] [--production]",
  details: [
    "Serves the API on --listen (default 127.0.0.1:8200), docs at /docs, metrics at /metrics, and",
    "prints the address it is bound to. Logs JSON lines on stderr without credentials or values.",
    "A JWT secret under 32 bytes or a known default is refused (make one: openssl rand -base64 48).",
    "With --production, COFFER_PRODUCTION=1 or production: true in the config it also refuses devLogin",
    "and plain HTTP on a non-loopback address (with behindProxy too: keep the proxy on the same host).",
    "COFFER_ENV only picks the .coffer.yml environment: set to production (any spelling) without one",
    "of those switches, the server refuses to start. behindProxy: N trusts N hops of X-Forwarded-For",
    "(true = 1); trustedProxies: [CIDR, ...] trusts those proxies only.",
    "SIGTERM or SIGINT: stop accepting, finish requests, exit 0. With tls: it serves HTTPS (TLS 1.2",
    "or newer) and SIGHUP re-reads the certificate files without dropping connections; tls.clientCa",
    "turns on mutual TLS (clients: maps certificate names to roles).",
    "With runbooks: { dir } it serves the runbooks of that directory (see coffer runbook --help);",
    "SIGHUP re-reads them, and SIGTERM stops running scripts (status interrupted) before it exits.",
  ].join("\n"),
  examples: [
    "coffer serve --data /var/lib/coffer",
    "coffer serve --data ./server-data --config coffer-server.yml --listen 127.0.0.1:8300",
    "coffer serve --production --data /var/lib/coffer --config /etc/coffer/server.yml",
  ],
  flags: {
    data: DATA_FLAG,
    config: CONFIG_FLAG,
    listen: { type: "string", arg: "HOST:PORT", help: "address to listen on (default 127.0.0.1:8200; port 0 picks a free one)" },
    production: { type: "boolean", help: "apply the production checks (as COFFER_PRODUCTION=1 or production: true)" },
  },
  async run(ctx) {
    const dir = dataDir(ctx, "coffer serve --data DIR");
    const cfg = await config(ctx);
    const { startServer } = await import("../../server/server.ts");
    const server = await startServer({ dataDir: dir, config: cfg, reloadOnSighup: true });
    ctx.say(`coffer: serving on ${server.url} (docs at ${server.url}/docs)`);
    await new Promise<void>((done) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off("SIGTERM", stop);
        process.off("SIGINT", stop);
        ctx.say(`coffer: ${signal}: finishing requests, then stopping`);
        server.close().then(done, (err: unknown) => {
          ctx.say(`coffer: error while stopping: ${(err as Error).message}`);
          done();
        });
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      // Without tls and runbooks: there is nothing to reload; SIGHUP must not kill the server either.
      if (cfg.tls === undefined && cfg.runbooks === undefined) process.on("SIGHUP", () => ctx.say("coffer: SIGHUP: nothing to reload (no tls: or runbooks: configured)"));
    });
    ctx.say("coffer: stopped");
  },
};
