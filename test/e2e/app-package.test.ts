/**
 * coffer as an app's dependency (README "Use coffer from your app"): the packed tarball installed
 * into a fresh project with npm, and an app there that reads a secret with `connect()` from a
 * running `coffer serve`, gets its variables with `import "coffer/config"` from a `.coffer.yml`
 * that mixes the local store and the server, and type-checks against the published `.d.ts`
 * with `tsc --strict` (skipLibCheck off, so coffer's own declarations are checked too).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { cofferOk, putSecret, serveAppServer } from "./run-cli.ts";
import { NODE_DIR, npmEnv, packInto, REPO, sh } from "./npm.ts";

const API_KEY = "api-key-APP-PACKAGE-51c0";
const DB_URL = "postgres://app:db-APP-PACKAGE-9e2a@db/app";

const APP = `import "coffer/config";
import { connect, CofferError, type Secret } from "coffer";
import { environment, variables } from "coffer/config";

const server = connect(); // COFFER_SERVER and COFFER_TOKEN
const key: Secret = await server.get("app/api-key");
const missing = await server.get("app/nope").then(
  () => "found",
  (err: unknown) => (err instanceof CofferError ? err.code : "not a CofferError"),
);
console.log(JSON.stringify({
  connect: key.reveal(),
  printed: \`\${key}\`,
  version: key.meta.version ?? null,
  missing,
  environment,
  variables,
  DB_URL: process.env.DB_URL ?? null,
  API_KEY: process.env.API_KEY ?? null,
}));
server.close();
`;

/** The app's tsconfig: strict, and Node's types from the repo's @types/node (an app has its own; no registry needed). */
const TSCONFIG = {
  compilerOptions: { strict: true, target: "es2024", lib: ["es2024"], module: "nodenext", moduleResolution: "nodenext", typeRoots: [join(REPO, "node_modules", "@types")], types: ["node"], noEmit: true, allowImportingTsExtensions: true, skipLibCheck: false },
  include: ["app.ts"],
};

test("an app that installed the packed tarball reads a secret with connect(), gets its variables from the local store and the server with import \"coffer/config\", and type-checks with tsc --strict", async (t) => {
  const tmp = tempDir(t, "coffer-app-");
  const { tarball } = packInto(tmp);
  const app = join(tmp, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }, null, 2));
  const install = sh(`npm install --prefer-offline "${tarball}"`, { cwd: app, env: npmEnv() });
  assert.equal(install.status, 0, install.stderr);

  // The team server holds the API key; the developer's local store the database URL.
  const home = join(tmp, "home");
  mkdirSync(home, { mode: 0o700 });
  const s = await serveAppServer(t, home);
  await putSecret(s.url, s.root, "app/api-key", API_KEY);
  cofferOk(home, ["init", "--name", "dev"]);
  cofferOk(home, ["set", "app/db-url"], DB_URL);
  writeFileSync(join(app, ".coffer.yml"), [
    "providers:",
    `  team: { type: server, url: "${s.url}" }`,
    "environments:",
    "  dev:",
    "    env:",
    "      DB_URL: app/db-url",
    "      API_KEY: { from: team, path: app/api-key }",
    "",
  ].join("\n"));
  writeFileSync(join(app, "app.ts"), APP);
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));

  const tsc = spawnSync(process.execPath, [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", join(app, "tsconfig.json")], { cwd: app, encoding: "utf8" });
  assert.equal(tsc.status, 0, `tsc --strict: ${tsc.stdout}${tsc.stderr}`);

  const env = { PATH: `${NODE_DIR}:/usr/bin:/bin`, HOME: home, LANG: "C.UTF-8", COFFER_SERVER: s.url, COFFER_TOKEN: s.root };
  const run = spawnSync(join(NODE_DIR, "node"), ["app.ts"], { cwd: app, env, encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), {
    connect: API_KEY,
    printed: "[redacted]",
    version: 1,
    missing: "E_NOT_FOUND",
    environment: "dev",
    variables: ["DB_URL", "API_KEY"],
    DB_URL,
    API_KEY,
  });
  assert.ok(!run.stderr.includes(API_KEY) && !run.stderr.includes(DB_URL));
});
