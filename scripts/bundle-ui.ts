/**
 * Builds the web console (`npm run build`): web/main.tsx and what it imports (Preact, and the one
 * event-stream parser of src/client/sse.ts) → dist/ui/app.js, with web/index.html and
 * web/app.css beside it. Nothing is fetched at run time: the server serves these three files
 * (src/server/console.ts). The folder is emptied first, so no file of an earlier build is left.
 */
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { build } from "esbuild";

const out = "dist/ui";
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["web/main.tsx"],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  outfile: `${out}/app.js`,
  logLevel: "warning",
});
for (const f of ["index.html", "app.css"]) copyFileSync(`web/${f}`, `${out}/${f}`);
