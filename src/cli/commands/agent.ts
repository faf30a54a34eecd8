import { readFileSync } from "node:fs";
import { CofferError } from "../../errors.ts";
import { runAgent } from "../../agent/agent.ts";
import { isDangerousEnvName } from "../../config/dangerous-env.ts";
import { onTerminatingSignals } from "../../deliver/child.ts";
import { SECRETS_ENV_FILE, loadAgentConfig, parseInterval, parseMode, parseOnChange, parseOwner, parseProviderSpec, parseSecretIds } from "../../agent/config.ts";
import type { Command, Context } from "../command.ts";
import { stringFlag } from "../open.ts";

export const agent: Command = {
  name: "agent",
  usage:
    "--provider SPEC --dir DIR --secrets ID[=ENV],… [--watch] [--poll-interval 30s] [--on-change ACTION] [--mode 0400] [--owner USER]\n" +
    "       coffer agent --config /etc/coffer/agent.yml --service NAME",
  details: [
    "Fetches every secret first (any failure: exit non-zero, nothing written), writes DIR/<id> (the",
    "value, exactly) and DIR/secrets.env (for `coffer exec-env` or bash), each replaced atomically,",
    "then sends READY=1 to $NOTIFY_SOCKET (through systemd-notify; the unit needs NotifyAccess=all).",
    "With --watch it watches the folder (inotify) or polls other providers, rewrites on change and runs",
    "the on-change action: exit (default: systemd restarts side-car and service), restart-unit:NAME,",
    "signal:HUP (to --unit's main process), exec:CMD, none. A failed fetch while watching keeps the",
    "last good files and retries with backoff. SIGTERM (or any other catchable terminating signal:",
    "HUP, INT, QUIT, ALRM, USR1, USR2, …) removes the files and exits. Providers: folder:/path,",
    "store, env, vault:https://host:8200#mount (token from VAULT_TOKEN).",
  ].join("\n"),
  examples: [
    "coffer agent --provider folder:/etc/secrets --dir /tmp --secrets db/password=DB_PASSWORD,api/key --watch",
    "coffer agent --config /etc/coffer/agent.yml --service web",
  ],
  flags: {
    provider: { type: "string", arg: "SPEC", help: "folder:/path, store, env, or vault:https://…#mount" },
    dir: { type: "string", arg: "DIR", help: "where to write the files (default /tmp: the unit's PrivateTmp)" },
    secrets: { type: "string", arg: "IDS", help: "comma-separated ID or ID=ENV_NAME" },
    watch: { type: "boolean", help: "keep running and rewrite the files when a secret changes" },
    "poll-interval": { type: "string", arg: "DUR", help: "poll interval for providers that cannot watch (default 30s)" },
    "on-change": { type: "string", arg: "ACTION", help: "exit (default), restart-unit:NAME, signal:HUP, exec:CMD, none" },
    mode: { type: "string", arg: "MODE", help: "file mode (default 0400)" },
    owner: { type: "string", arg: "USER", help: "user to own the files: a user name or a numeric uid (the agent must run as root)" },
    unit: { type: "string", arg: "NAME", help: "the unit whose main process gets signal:SIG" },
    config: { type: "string", arg: "F", help: "an agent.yml with backends and per-service settings" },
    service: { type: "string", arg: "NAME", help: "with --config: the service entry to serve" },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new CofferError("E_USAGE", "agent takes no arguments; see `coffer agent --help`");
    const [config, service, provider, secrets] = ["config", "service", "provider", "secrets"].map((k) => stringFlag(ctx, k));
    let settings;
    if (config !== undefined) {
      if (service === undefined) throw new CofferError("E_USAGE", "--config needs --service NAME");
      if (provider !== undefined || secrets !== undefined) throw new CofferError("E_USAGE", "give --config or --provider/--secrets, not both");
      settings = loadAgentConfig(config, service);
    } else {
      if (provider === undefined || secrets === undefined) {
        throw new CofferError("E_USAGE", "missing --provider SPEC and --secrets IDS (or --config F --service NAME); see `coffer agent --help`");
      }
      settings = { provider: parseProviderSpec(provider), secrets: parseSecretIds(secrets) };
    }
    const dangerous = settings.secrets.map((s) => s.env).filter(isDangerousEnvName);
    if (dangerous.length > 0) {
      ctx.say(`coffer agent: warning: ${SECRETS_ENV_FILE} will set ${dangerous.join(", ")}, which ${dangerous.length === 1 ? "changes" : "change"} how programs load or run`);
    }
    // checked before anything is fetched or written (agent.yml's owner is checked by loadAgentConfig)
    const owner = flagOr(ctx, "owner", parseOwner, settings.owner);
    const unit = stringFlag(ctx, "unit") ?? service;
    const env: NodeJS.ProcessEnv = { ...ctx.env };
    const tokenFile = (settings as { tokenFile?: string }).tokenFile;
    if (tokenFile !== undefined && settings.provider.type === "vault") {
      env[settings.provider.tokenEnv ?? "VAULT_TOKEN"] = readTokenFile(tokenFile);
    }
    const controller = new AbortController();
    // Any catchable terminating signal stops the agent the same way: files removed, then exit.
    const off = onTerminatingSignals(() => controller.abort());
    try {
      const exit = await runAgent({
        provider: settings.provider,
        context: { env, ...(ctx.store !== undefined && { storePath: ctx.store }), warn: (m) => ctx.say(`coffer agent: warning: ${m}`) },
        dir: stringFlag(ctx, "dir") ?? settings.dir ?? "/tmp",
        secrets: settings.secrets,
        watch: ctx.flags.watch === true || settings.watch === true,
        pollIntervalMs: flagOr(ctx, "poll-interval", parseInterval, settings.pollIntervalMs ?? 30_000),
        onChange: flagOr(ctx, "on-change", parseOnChange, settings.onChange ?? { kind: "exit" }),
        mode: flagOr(ctx, "mode", parseMode, settings.mode ?? 0o400),
        ...(owner !== undefined && { owner }),
        ...(unit !== undefined && { unit }),
        log: (line) => ctx.say(`coffer agent: ${line}`),
        signal: controller.signal,
      });
      ctx.say(`coffer agent: ${exit.reason === "changed" ? "a secret changed: exiting so that systemd restarts the service" : "stopped; files removed"}`);
      return exit.code;
    } finally {
      off();
    }
  },
};

/** The flag's value parsed, else `fallback` (agent.yml's setting or the default). */
function flagOr<T>(ctx: Context, name: string, parse: (s: string) => T, fallback: T): T {
  const v = stringFlag(ctx, name);
  return v === undefined ? fallback : parse(v);
}

/**
 * The Vault token in `path` (agent.yml's `tokenFile`), trimmed.
 * @throws CofferError E_CONFIG naming the file when it cannot be read or is empty
 */
function readTokenFile(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new CofferError("E_CONFIG", `${path}: cannot read the Vault token file named by tokenFile (${code}); check the path, and that the agent's user may read it`, { cause: err });
  }
  if (token === "") throw new CofferError("E_CONFIG", `${path}: the Vault token file named by tokenFile is empty`);
  return token;
}
