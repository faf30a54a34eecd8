/**
 * Bundles the CLI (`npm run build`, after tsc): src/cli/bin.ts → dist/bundle/, ESM, code split
 * so that a command loads only its own modules. The folder is emptied first, so no chunk of an
 * earlier build is left to be packed.
 *
 * And the library: src/index.ts → dist/lib/index.js, one ESM file (tsc emits only its types,
 * dist/*.d.ts). A bundle, not tsc's files, because of the Node floor (src/floor.ts): an ESM
 * `import … from "node:sqlite"` fails when the module graph links, on Node 20 before any code
 * runs, so no check could say "coffer needs Node 24". Here every built-in is a
 * getBuiltinModule call made when its module runs, after the floor check, which is the
 * entry's first import. No top-level await in it, so `require("coffer")` keeps working.
 *
 * Node's own modules are imported through `process.getBuiltinModule` rather than `import … from
 * "node:fs"`: an ESM import of a built-in builds its namespace, which reads every export, and
 * node:fs's lazy ones (ReadStream, promises) load the whole stream stack, a few milliseconds that
 * a `coffer get` never uses (docs/design.md §8).
 */
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build, type Plugin } from "esbuild";
import { quietSqliteWarning } from "../src/cli/warnings.ts";

quietSqliteWarning(); // the plugin loads node:sqlite to list its exports

const builtins: Plugin = {
  name: "node-builtins",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: "node-builtin" }));
    b.onLoad({ filter: /.*/, namespace: "node-builtin" }, (args) => {
      const mod = process.getBuiltinModule(args.path) as Record<string, unknown> | undefined;
      if (mod === undefined) throw new Error(`${args.path} is not a built-in module of this Node`);
      // Each export is read when first used, not when the module loads; esbuild drops the unused.
      const names = Object.keys(mod).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== "default");
      const lines = names.map((n) => `export const ${n} = /* @__PURE__ */ (() => m.${n})();`);
      return { contents: [`const m = process.getBuiltinModule(${JSON.stringify(args.path)});`, "export default m;", ...lines].join("\n"), loader: "js" };
    });
  },
};

rmSync("dist/bundle", { recursive: true, force: true });
rmSync("dist/lib", { recursive: true, force: true });
// Before the library was a bundle, tsc emitted JavaScript and source maps beside the types: an
// older build's are removed, so that nothing stale is packed.
for (const f of readdirSync("dist", { recursive: true, encoding: "utf8" })) {
  if (/\.(js|js\.map|d\.ts\.map)$/.test(f) && !/^(ui|binary)\//.test(f)) rmSync(join("dist", f));
}
/**
 * One ESM bundle into `outdir`, code split (shared chunks load once), dependencies left to
 * node_modules, every `node:` import a getBuiltinModule call.
 */
async function bundle(entryPoints: string[] | Record<string, string>, outdir: string, external?: string[]): Promise<void> {
  const deps = external === undefined ? { packages: "external" as const } : { external, banner: { js: REQUIRE } };
  await build({ entryPoints, bundle: true, splitting: true, format: "esm", platform: "node", target: "node24", ...deps, outdir, logLevel: "warning", plugins: [builtins] });
  // Node looks for the nearest package.json of every module it loads, to learn its type: one
  // here answers at once.
  writeFileSync(join(outdir, "package.json"), '{ "type": "module" }\n');
}

// The CLI carries its small pure-JavaScript dependencies (yaml, age, jose, dotenv, …) inside
// its chunks: Node resolves, reads and compiles each file of a package on its own, and yaml
// alone is some seventy CommonJS files that every `coffer run` loaded. The server's packages
// stay in node_modules, loaded only by `serve`. A CommonJS package inside an ES module needs a
// `require` for Node's built-ins: the banner makes one (optional-chained, so that on a Node too
// old to have getBuiltinModule the bin still reaches its floor check).
const REQUIRE = 'const require = globalThis.process.getBuiltinModule?.("node:module").createRequire(import.meta.url);';
const SERVER_PACKAGES = ["fastify", "@fastify/*", "pg", "ioredis", "pino", "prom-client"];
await bundle(["src/cli/bin.ts"], "dist/bundle", SERVER_PACKAGES);
// `coffer/config` is a second entry of the same build, so that an app importing both it and
// "coffer" gets one copy of each class (a CofferError from one is an instanceof in the other).
await bundle({ index: "src/index.ts", config: "src/app/config.ts" }, "dist/lib");
