/**
 * Builds coffer's single executable (`npm run build:binary`, after `npm run build`):
 * dist/binary/coffer, Linux x64, for machines without Node (docs/design.md §17). Node's
 * single-executable-application support: a copy of the repo's own Node (node_modules/node) with
 * a blob injected into it by postject; the blob holds the main CommonJS script (Node runs a
 * single executable's main as CommonJS) with its V8 code cache, and as assets: the server's part
 * (`serve`, a second script with its own code cache, compiled only when `serve` runs:
 * cli/sea-part.ts) and the files coffer serves (the web console, the API docs' page).
 *
 * Inside the binary `require` resolves only Node's built-ins: every dependency is bundled into
 * the script, and what the code would read from a package folder is embedded instead (see
 * core/assets.ts and server/docs-static.ts). The build fails if anything is left to load at run
 * time.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";
import { build, type BuildOptions, type Plugin } from "esbuild";
import { partFilename, SHARED_ERRORS, wrapPart } from "../src/cli/sea-part.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "dist", "binary");
const WORK = join(OUT, "build");
/** The repo's own Node: the single executable is a copy of it. */
const NODE = join(ROOT, "node_modules", "node", "bin", "node");
/** The fuse Node's single-executable support looks for (Node's documentation gives it). */
const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

if (process.platform !== "linux" || process.arch !== "x64") throw new Error(`build:binary makes a Linux x64 executable; this is ${process.platform} ${process.arch}`);
if (!existsSync(join(ROOT, "dist", "ui", "index.html"))) throw new Error("dist/ui/ is missing: run `npm run build` first");

rmSync(OUT, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const t0 = performance.now();

/** The one package the bundle swaps: swagger-ui's file server, for one that reads embedded assets. */
const embeddedStatic: Plugin = {
  name: "embedded-static",
  setup(b) {
    b.onResolve({ filter: /^@fastify\/static$/ }, () => ({ path: join(ROOT, "src", "server", "docs-static.ts") }));
  },
};

/**
 * The parts: command modules kept out of the main script, each bundled into a script of its own
 * that the main one compiles only when the command runs (cli/sea-part.ts).
 */
const PARTS: Record<string, string> = { serve: join(ROOT, "src", "cli", "commands", "serve.ts") };
const ERRORS = join(ROOT, "src", "errors.ts");

/** In the main script, an import of a part's module becomes a call of loadPart. */
const partImports: Plugin = {
  name: "part-imports",
  setup(b) {
    b.onResolve({ filter: /\/commands\/[a-z-]+\.ts$/ }, (args) => {
      const path = resolve(args.resolveDir, args.path);
      const part = Object.keys(PARTS).find((k) => PARTS[k] === path);
      return part === undefined ? undefined : { path: part, namespace: "sea-part" };
    });
    b.onLoad({ filter: /.*/, namespace: "sea-part" }, (args) => ({
      contents: `module.exports = require("./sea-part.ts").loadPart(${JSON.stringify(args.path)});`,
      resolveDir: join(ROOT, "src", "cli"),
      loader: "js",
    }));
  },
};

/** In a part, errors.ts is the main script's (one CofferError class). */
const sharedErrors: Plugin = {
  name: "shared-errors",
  setup(b) {
    b.onResolve({ filter: /errors\.ts$/ }, (args) => (resolve(args.resolveDir, args.path) === ERRORS ? { path: ERRORS, namespace: "shared-errors" } : undefined));
    b.onLoad({ filter: /.*/, namespace: "shared-errors" }, () => ({
      contents: `module.exports = globalThis[Symbol.for(${JSON.stringify(SHARED_ERRORS)})];`,
      loader: "js",
    }));
  },
};

const common = {
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node24",
  // pg's native binding is optional and only loaded when asked for (pg.native); coffer never does.
  external: ["pg-native"],
  logLevel: "warning",
  // import.meta is empty in CommonJS: the two places that read import.meta.url (the console's
  // folder, units' bin.js) ask core/assets.ts first and never get there in the binary.
  logOverride: { "empty-import-meta": "silent" },
  metafile: true,
  legalComments: "none",
  // A smaller script is less for V8 to read when a function first runs: measured 20 ms less CPU
  // per start. Identifiers keep their names: fastify's plugin checks and error names read them.
  minifyWhitespace: true,
  minifySyntax: true,
} satisfies BuildOptions;

const script = join(WORK, "coffer.cjs");
const main = await build({ ...common, entryPoints: [join(ROOT, "src", "cli", "sea-main.ts")], outfile: script, plugins: [partImports] });
const mainInputs = Object.keys(main.metafile.inputs);
if (mainInputs.some((i) => i.startsWith("src/server/") || i.includes("node_modules/fastify/"))) {
  throw new Error("the main script holds server code: an import outside the serve part reaches src/server/");
}

// The files served by the binary, as assets `<folder>/<file>` (core/assets.ts), and the parts'
// scripts with their code caches (made by this very Node, which the binary is a copy of).
const assets: Record<string, string> = {};
for (const [name, entry] of Object.entries(PARTS)) {
  const out = join(WORK, `${name}.cjs`);
  const part = await build({ ...common, entryPoints: [entry], outfile: out, plugins: [embeddedStatic, sharedErrors] });
  const inputs = Object.keys(part.metafile.inputs);
  if (inputs.some((i) => i.includes("@fastify/static/"))) throw new Error("@fastify/static was bundled; the embedded-static swap did not apply");
  const cache = new Script(wrapPart(readFileSync(out, "utf8")), { filename: partFilename(name) }).createCachedData();
  writeFileSync(`${out}.cache`, cache);
  assets[`js/${name}.cjs`] = out;
  assets[`js/${name}.cache`] = `${out}.cache`;
}

const embed = (folder: string, dir: string): void => {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isFile() && !name.endsWith(".map")) assets[`${folder}/${name}`] = path;
  }
};
embed("ui", join(ROOT, "dist", "ui"));
embed("docs", join(ROOT, "node_modules", "@fastify", "swagger-ui", "static"));

const blob = join(WORK, "sea-prep.blob");
const seaConfig = join(WORK, "sea-config.json");
writeFileSync(
  seaConfig,
  `${JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false, assets }, null, 2)}\n`,
);
run(NODE, ["--experimental-sea-config", seaConfig]);

const binary = join(OUT, "coffer");
copyFileSync(NODE, binary);
chmodSync(binary, 0o755);
run(NODE, [join(ROOT, "node_modules", "postject", "dist", "cli.js"), binary, "NODE_SEA_BLOB", blob, "--sentinel-fuse", FUSE]);
chmodSync(binary, 0o755);
rmSync(WORK, { recursive: true, force: true });

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
process.stderr.write(`dist/binary/coffer: ${mib(statSync(binary).size)}, ${Object.keys(assets).length} assets, built in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

/** Runs a build step; its chatter (postject's section warnings) is shown only when it fails. */
function run(file: string, args: string[]): void {
  const r = spawnSync(file, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.status !== 0) throw new Error(`${file} ${args.join(" ")}: exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
}
