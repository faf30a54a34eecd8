/**
 * `import "coffer/config"` (or `node --import coffer/config app.js`): the environment's secrets in
 * `process.env` before the app's own code runs, as `import "dotenv/config"` does for a `.env` file.
 *
 * The environment is `COFFER_ENV`, else the project file's `default:`, else its only one. A
 * variable that is already set is left as it is (the shell, the container or the platform wins,
 * as with dotenv) unless `COFFER_OVERRIDE=1`. A `files:` variable is set to its file's path, and
 * `COFFER_RUNTIME_DIR` to their dir, as `coffer run` sets them; the files go when the process exits.
 *
 * `COFFER_OFFLINE=1` reads `server` secrets from the outage cache only (as `coffer run --offline`).
 *
 * It uses top-level await, so it is an ES module only: `require("coffer/config")` is not supported.
 * When a secret cannot be resolved the import throws, naming every variable that failed: an app
 * never starts with half its configuration.
 */
// First: on a Node older than coffer needs, the import throws that line.
import "../node-floor.ts";
import { load } from "./load.ts";

const loaded = await load(process.env.COFFER_OFFLINE === "1" ? { offline: true } : {});
const override = process.env.COFFER_OVERRIDE === "1";
const set: string[] = [];
const kept: string[] = [];

function put(variable: string, value: string): void {
  if (!override && Object.hasOwn(process.env, variable)) {
    kept.push(variable);
    return;
  }
  process.env[variable] = value;
  set.push(variable);
}

for (const [variable, secret] of Object.entries(loaded.env)) put(variable, secret.reveal());
for (const [variable, path] of Object.entries(loaded.files)) put(variable, path);
if (loaded.dir !== null) put("COFFER_RUNTIME_DIR", loaded.dir);

/** The project file the variables came from. */
export const file: string = loaded.file;
/** The environment delivered. */
export const environment: string = loaded.environment;
/** The variables this import set in `process.env`. */
export const variables: readonly string[] = Object.freeze(set);
/** The variables already set, which it left alone (set `COFFER_OVERRIDE=1` to replace them). */
export const skipped: readonly string[] = Object.freeze(kept);
