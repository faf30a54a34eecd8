/**
 * The server process the rotation fault test kills (rotation.fault.ts): a team server whose one
 * apply target writes the candidate it was given to the marker file (test only: this stands in
 * for the target, e.g. the database that now holds the new password) and then kills its own
 * process with SIGKILL, between apply and write. Prints its URL on stdout once listening.
 *
 * With `postgres`, the target is the real PostgreSQL one: the process dies once the role's
 * password has been changed and the new value tested there.
 *
 * Usage: node rotation-crash-child.ts DATA_DIR CONFIG_YAML_FILE MARKER_FILE idempotent|not-idempotent|postgres
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseServerConfig } from "../../src/server/config.ts";
import { startServer } from "../../src/server/server.ts";
import { targetFactory } from "../../src/rotation/targets.ts";

const [dataDir, configFile, marker, kind] = process.argv.slice(2) as [string, string, string, string];
const config = parseServerConfig(readFileSync(configFile, "utf8"), configFile, {}, { listen: "127.0.0.1:0" });
const server = await startServer({
  dataDir, config, logger: false,
  rotation: {
    leaseMs: 1_500,
    targets: (apply) => ({
      label: "fake:crash",
      idempotent: kind !== "not-idempotent",
      async apply(ctx) {
        if (kind === "postgres") await targetFactory({})(apply).apply(ctx);
        writeFileSync(marker, ctx.newValue, { flush: true });
        process.kill(process.pid, "SIGKILL");
        await new Promise(() => {});
      },
    }),
  },
});
process.stdout.write(`${server.url}\n`);
