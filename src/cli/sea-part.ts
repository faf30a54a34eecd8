/**
 * The parts of the single executable that most commands never run (`serve` and the server it
 * brings: fastify, pg, ioredis, swagger…, two thirds of the code) are not in its main script but
 * in a second one embedded beside it (`js/<part>.cjs`, with its own V8 code cache
 * `js/<part>.cache`), compiled only when a command needs it: `coffer get` then has V8 read a
 * script a third of the size (docs/design.md §17). scripts/bundle-binary.ts builds them and
 * makes main.ts's import of the part's command module call {@link loadPart}.
 *
 * A part is bundled with everything it imports except errors.ts, which it takes from the main
 * script ({@link SHARED_ERRORS}): main.ts tells coffer's errors by `instanceof CofferError`, so
 * there must be one CofferError class.
 */
import { Script } from "node:vm";
import { embeddedAsset } from "../core/assets.ts";
import * as errors from "../errors.ts";

/** Where a part finds the main script's errors.ts. */
export const SHARED_ERRORS = "coffer.sea.errors";

/** The CommonJS wrapper a part's code runs in (the same text when its code cache is made). */
export function wrapPart(source: string): string {
  return `(function (require, module, exports, __filename, __dirname) {${source}\n})`;
}

/** The file name a part's code is compiled under (stack traces name it). */
export function partFilename(name: string): string {
  return `coffer:${name}.cjs`;
}

const loaded = new Map<string, unknown>();

/** Runs the embedded part `name` (once) and gives its exports. */
export function loadPart(name: string): unknown {
  if (loaded.has(name)) return loaded.get(name);
  const code = embeddedAsset(`js/${name}.cjs`);
  if (code === undefined) throw new errors.CofferError("E_INTERNAL", `this coffer binary has no part ${name}`);
  (globalThis as Record<symbol, unknown>)[Symbol.for(SHARED_ERRORS)] = errors;
  const cache = embeddedAsset(`js/${name}.cache`);
  const script = new Script(wrapPart(Buffer.from(code).toString("utf8")), {
    filename: partFilename(name),
    ...(cache !== undefined && { cachedData: Buffer.from(cache) }),
  });
  const module = { exports: {} as unknown };
  // the main script's require (Node's built-ins) and file names (the executable's)
  const run = script.runInThisContext() as (req: NodeJS.Require, mod: typeof module, exp: unknown, file: string, dir: string) => void;
  run(require, module, module.exports, __filename, __dirname);
  loaded.set(name, module.exports);
  return module.exports;
}
