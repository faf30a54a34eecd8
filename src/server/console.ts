/**
 * The web console's files at `/ui` (docs/design.md §11): the page, script and stylesheet that
 * `npm run build` writes to `dist/ui/` (embedded in the single executable: core/assets.ts), read
 * once when the server starts and served from memory.
 * A request names one of them or nothing: no path reaches the filesystem, so there is nothing
 * to traverse. Every answer carries the page's security headers: a Content-Security-Policy with
 * no inline script or style and no framing, no referrer, no sniffing (the API's `no-store` comes
 * from app.ts, on every answer).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { folderFiles } from "../core/assets.ts";
import { CofferError } from "../errors.ts";

/** The page's policy: its own script and stylesheet, API calls to its own origin, nothing else. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The headers of every `/ui` answer. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": CONSOLE_CSP,
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
});

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};
/** A built console is a few hundred KiB; a folder holding more is not one. */
const MAX_BYTES = 8 * 1024 * 1024;

/** One file of the console: its bytes and content type. */
export interface ConsoleFile {
  type: string;
  body: Buffer;
}

/**
 * Where the built console is: `dist/ui/` beside the running code. The server's modules are one
 * folder below `dist/` (dist/server/, or the CLI's bundle in dist/bundle/), or, run from the
 * sources (the tests), in src/server/, two below the package.
 */
export function defaultConsoleDir(): string {
  const candidates = [new URL("../ui/", import.meta.url), new URL("../../dist/ui/", import.meta.url)].map((u) => fileURLToPath(u));
  return candidates.find((d) => existsSync(`${d}index.html`)) ?? candidates[0]!;
}

/**
 * Reads the console's files (regular files of `dir` whose type is known, none below it), or in
 * the single executable the ones embedded in it.
 * @returns the files by name, or undefined when `dir` holds no built console (no index.html)
 */
export function loadConsoleFiles(dir?: string): Map<string, ConsoleFile> | undefined {
  const accept = (name: string) => TYPES[name.slice(name.lastIndexOf("."))] !== undefined;
  const read = folderFiles("ui", () => dir ?? defaultConsoleDir(), { accept, maxBytes: MAX_BYTES });
  if (read === undefined || !read.has("index.html")) return undefined;
  return new Map([...read].map(([name, body]) => [name, { type: TYPES[name.slice(name.lastIndexOf("."))]!, body }]));
}

/**
 * `GET /ui` (→ `/ui/`), `/ui/` (the page) and `/ui/{file}`. With no built console (`files`
 * undefined) or `ui.enabled: false`, each answers 404 saying why.
 */
export function consoleRoutes(app: FastifyInstance, files: Map<string, ConsoleFile> | undefined, enabled: boolean): void {
  const missing = !enabled
    ? "the web console is turned off on this server (ui.enabled: false in its config)"
    : "this coffer was built without its web console (dist/ui/); run `npm run build`";
  const send = (name: string) => {
    const file = files?.get(name);
    if (!enabled || files === undefined) throw new CofferError("E_NOT_FOUND", missing);
    if (file === undefined) throw new CofferError("E_NOT_FOUND", `no file /ui/${name} in the web console`);
    return file;
  };
  const route = { schema: { hide: true }, config: { auth: false } };
  app.get("/ui", route, async (_req, reply) => reply.redirect("/ui/", 302));
  app.get<{ Params: { file: string } }>("/ui/:file", route, async (req, reply) => {
    const file = send(req.params.file === "" ? "index.html" : req.params.file);
    return reply.headers(CONSOLE_HEADERS).type(file.type).send(file.body);
  });
}
