import { CofferError } from "../../errors.ts";
import { disposeResolved, resolvePlan } from "../../deliver/resolve.ts";
import { runWithSecrets } from "../../deliver/run.ts";
import type { Command } from "../command.ts";
import { auditDelivery, DELIVERY_FLAGS, loadPlan, openProviders } from "../delivery.ts";

export const run: Command = {
  name: "run",
  summary: "run a command with the secrets of an environment (.coffer.yml)",
  usage: "[-e ENV] [--config F] [--mask] [--dir D] -- CMD [ARGS…]",
  details: [
    "Resolves every secret the environment names first; if any fails, CMD is not started.",
    "env: entries become environment variables; files: entries become files (0400 unless a mode",
    "is given) in a private runtime dir, and the variable holds the file's path. The dir is",
    "$XDG_RUNTIME_DIR/coffer/<id> (else /dev/shm/coffer-<uid>/<id>, with a warning), 0700, and is",
    "removed when CMD ends, however it ends; a later run sweeps dirs left by a killed coffer.",
    "SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed to CMD; coffer exits with CMD's status",
    "(128+n if it died of signal n). --mask replaces each value, and its base64 and URL-encoded",
    "forms, in CMD's output with ***.",
  ].join("\n"),
  examples: ["coffer run -- npm start", "coffer run -e ci --mask -- npm test", "coffer run -e dev --dir /run/user/1000/app -- ./server"],
  passthrough: true,
  flags: {
    ...DELIVERY_FLAGS,
    mask: { type: "boolean", help: "mask every delivered value in CMD's stdout and stderr" },
    dir: { type: "string", arg: "D", help: "create the runtime dir under D instead" },
  },
  async run(ctx) {
    const [command, ...args] = ctx.args;
    if (command === undefined) throw new CofferError("E_USAGE", "no command after --; e.g. `coffer run -- npm start`");
    const plan = loadPlan(ctx);
    const providers = openProviders(ctx, plan);
    try {
      const resolved = await resolvePlan(plan, providers);
      try {
        let masker = null;
        if (ctx.flags.mask === true) {
          const { createMasker, tooShortToMask } = await import("../../deliver/mask.ts");
          const all = [...resolved.env, ...resolved.files];
          const values = all.map((e) => e.value.reveal());
          for (const i of tooShortToMask(values)) ctx.say(`coffer: warning: ${all[i]!.variable} is shorter than 4 bytes and is not masked`);
          masker = () => createMasker(values);
        }
        auditDelivery(providers, plan, "run", command);
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
      } finally {
        disposeResolved(resolved);
      }
    } finally {
      await providers.close();
    }
  },
};
