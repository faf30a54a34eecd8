import { CofferError } from "../../errors.ts";
import { resolvePlan } from "../../deliver/resolve.ts";
import { runWatching, runWithSecrets } from "../../deliver/run.ts";
import { describeRef } from "../../providers/provider.ts";
import type { SecretRef } from "../../providers/provider.ts";
import type { ResolvedPlan } from "../../deliver/resolve.ts";
import { requireDuration } from "../../core/durations.ts";
import type { Command } from "../command.ts";
import { auditDelivery } from "../../deliver/audit.ts";
import { DELIVERY_FLAGS, loadPlan, withResolved } from "../delivery.ts";

export const run: Command = {
  name: "run",
  usage: "[-e ENV] [--config F] [--mask] [--dir D] [--watch [--restart-grace 10s]] -- CMD [ARGS…]",
  details: [
    "Resolves every secret the environment names first; if any fails, CMD is not started.",
    "env: entries become environment variables; files: entries become files (0400 unless a mode",
    "is given) in a private runtime dir, and the variable holds the file's path. The dir is",
    "$XDG_RUNTIME_DIR/coffer/<id> (else /dev/shm/coffer-<uid>/<id>, with a warning), 0700, and is",
    "removed when CMD ends, however it ends; a later run sweeps dirs left by a killed coffer.",
    "Every catchable terminating signal (HUP, INT, QUIT, TERM, ALRM, VTALRM, XCPU, XFSZ, PROF, USR1,",
    "USR2) is passed to CMD; coffer exits with CMD's status (128+n if it died of signal n; 127 if",
    "CMD is not found, 126 if it cannot be executed, as in a shell). A dir is swept only once no",
    "process of its run's process group is left. --mask replaces each value, and its base64, URL,",
    "JSON and XML encoded forms (also the password inside HTTP Basic auth), in CMD's output with ***.",
    "--watch restarts CMD when a secret changes (as `infisical run --watch`): the server provider",
    "is told of changes by the server's event stream (polling when it is down), folder watches its",
    "dir; store and env secrets are not watched (a warning names them). On a change every secret",
    "is resolved again; if that fails CMD keeps running with its values (a warning says why); else",
    "CMD gets SIGTERM (SIGKILL after --restart-grace) and starts again with the new values, and",
    "coffer says which variables changed (never values). coffer exits when CMD exits by itself;",
    "HUP, INT, QUIT and TERM also end the watching.",
    "Server secrets survive an outage: every read is kept in an encrypted cache (under your identity,",
    "else a key file in the cache dir); when the server cannot be reached (network, timeout, 5xx) the",
    "cached value is used up to the provider's staleIfError (default 24h) after it was read, with a",
    "warning saying since when it is stale. --offline asks no server at all and fails when a secret is",
    "not cached or is too old.",
  ].join("\n"),
  examples: [
    "coffer run -- npm start",
    "coffer run -e ci --mask -- npm test",
    "coffer run -e dev --dir /run/user/1000/app -- ./server",
    "coffer run -e prod --watch --restart-grace 30s -- ./server",
    "coffer run -e prod --offline -- ./server",
  ],
  passthrough: true,
  flags: {
    ...DELIVERY_FLAGS,
    mask: { type: "boolean", help: "mask every delivered value in CMD's stdout and stderr" },
    dir: { type: "string", arg: "D", help: "create the runtime dir under D instead" },
    watch: { type: "boolean", help: "restart CMD with the new values when a secret changes" },
    "restart-grace": { type: "string", arg: "DUR", help: "with --watch: how long CMD has to stop after SIGTERM before SIGKILL, 1ms to 1d (default 10s)" },
  },
  async run(ctx) {
    const [command, ...args] = ctx.args;
    if (command === undefined) throw new CofferError("E_USAGE", "no command after --; e.g. `coffer run -- npm start`");
    const watch = ctx.flags.watch === true;
    if (!watch && ctx.flags["restart-grace"] !== undefined) throw new CofferError("E_USAGE", "--restart-grace goes with --watch");
    // at most 1d: a longer timer would overflow setTimeout and fire at once
    const grace = ctx.flags["restart-grace"];
    const graceMs = typeof grace === "string" ? requireDuration(grace, "--restart-grace", { min: 1, max: 86_400_000 }) : 10_000;
    const plan = loadPlan(ctx);
    return withResolved(ctx, plan, async (resolved, providers) => {
      let maskerFor: ((r: ResolvedPlan) => () => NodeJS.ReadWriteStream) | null = null;
      if (ctx.flags.mask === true) {
        const { createMasker, tooShortToMask } = await import("../../core/mask.ts");
        maskerFor = (r) => {
          const all = [...r.env, ...r.files];
          const values = all.map((e) => e.value.reveal());
          for (const i of tooShortToMask(values)) ctx.say(`coffer: warning: ${all[i]!.variable} is shorter than 4 bytes and is not masked`);
          return () => createMasker(values);
        };
      }
      auditDelivery(providers, plan, "run", command);
      if (watch) {
        const refs: { variable: string; ref: SecretRef }[] = [...plan.env, ...plan.files];
        return await runWatching({
          command,
          args,
          resolved,
          resolve: async () => {
            const next = await resolvePlan(plan, providers);
            auditDelivery(providers, plan, "run --watch", command);
            return next;
          },
          watch: (onChange) => {
            const { stop, unwatched } = providers.watch(refs.map((r) => r.ref), () => onChange());
            if (unwatched.length === refs.length) {
              stop();
              throw new CofferError("E_USAGE", `--watch: nothing to watch; the providers of ${refs.length === 0 ? "this environment" : "every secret"} cannot watch (store and env cannot; server and folder can)`);
            }
            if (unwatched.length > 0) {
              const names = refs.filter((r) => unwatched.includes(r.ref)).map((r) => `${r.variable} (${describeRef(r.ref)})`);
              ctx.say(`coffer: warning: not watched (their provider cannot watch): ${names.join(", ")}`);
            }
            return stop;
          },
          baseEnv: ctx.env,
          ...(typeof ctx.flags.dir === "string" && { dir: ctx.flags.dir }),
          masker: maskerFor,
          graceMs,
          umask: ctx.umask,
          warn: (m) => ctx.say(`coffer: ${m}`),
          say: (m) => ctx.say(m),
        });
      }
      const masker = maskerFor === null ? null : maskerFor(resolved);
      return await runWithSecrets({
        command,
        args,
        resolved,
        baseEnv: ctx.env,
        ...(typeof ctx.flags.dir === "string" && { dir: ctx.flags.dir }),
        masker,
        umask: ctx.umask,
        warn: (m) => ctx.say(`coffer: ${m}`),
      });
    });
  },
};
