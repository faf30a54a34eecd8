/**
 * What the single executable has in place of `@fastify/static`, the one place it is used:
 * @fastify/swagger-ui serving its page's files (`/docs/static/*`) from its package folder.
 * There is no package folder in the binary, so its bundle (scripts/bundle-binary.ts) resolves
 * `@fastify/static` to this plugin, which serves the same files from the assets embedded in it
 * (core/assets.ts, under `docs/`), read once at start and served from memory. It does only what
 * swagger-ui asks of @fastify/static: GET (and HEAD) of one file by name; nothing reaches a
 * filesystem, so there is nothing to traverse.
 */
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { folderFiles, isBinary } from "../core/assets.ts";
import { CofferError } from "../errors.ts";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};
/** swagger-ui's static folder is about 2 MiB. */
const MAX_BYTES = 16 * 1024 * 1024;

/** The options swagger-ui passes to @fastify/static (`prefix` is applied by fastify itself). */
interface StaticOptions {
  root: string;
  serve?: boolean;
}

/** Registered by swagger-ui as `register(plugin, { root, prefix: "/static" })`. */
export default async function docsStatic(app: FastifyInstance, opts: StaticOptions): Promise<void> {
  if (opts.serve === false) return;
  const type = (name: string) => TYPES[name.slice(name.lastIndexOf("."))];
  const files = folderFiles("docs", () => join(opts.root), { accept: (name) => type(name) !== undefined, maxBytes: MAX_BYTES });
  app.get<{ Params: { "*": string } }>("/*", { schema: { hide: true } }, async (req, reply) => {
    const name = req.params["*"];
    const body = files?.get(name);
    if (body === undefined) throw new CofferError("E_NOT_FOUND", `no file ${JSON.stringify(name)} in the API docs' page`);
    return reply.type(type(name)!).send(body);
  });
}

/**
 * swagger-ui's option for its logo: in the single executable, the embedded one (swagger-ui
 * otherwise reads it from its package folder, which the binary does not have); else none, and
 * swagger-ui reads its own.
 */
export function docsLogo(): { logo?: { type: string; content: Buffer } } {
  if (!isBinary()) return {};
  const content = folderFiles("docs", () => "", { accept: (name) => name === "logo.svg", maxBytes: MAX_BYTES })?.get("logo.svg");
  return content === undefined ? {} : { logo: { type: "image/svg+xml", content } };
}
