/**
 * The files coffer serves that are not code: the web console (dist/ui/) and the API docs' page
 * (@fastify/swagger-ui's static/). Run from the clone or an npm install they are files on disk;
 * in the single executable (`npm run build:binary`, docs/design.md §17) there is no disk to read
 * them from, so the build embeds them as assets named `<folder>/<file>` (`ui/index.html`,
 * `docs/swagger-ui.css`). Every read of such a folder goes through {@link folderFiles}, which
 * takes them from wherever this coffer keeps them.
 *
 * node:sea is loaded only when asked: a `coffer get` never pays for it.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { CofferError } from "../errors.ts";

type Sea = typeof import("node:sea");
let sea: Sea | null | undefined;
function seaModule(): Sea | null {
  if (sea === undefined) {
    const mod = process.getBuiltinModule("node:sea") as Sea | undefined;
    sea = mod !== undefined && mod.isSea() ? mod : null;
  }
  return sea;
}

/** Whether this process is coffer's single executable (then `process.execPath` is coffer itself). */
export function isBinary(): boolean {
  return seaModule() !== null;
}

/** What {@link folderFiles} keeps of a folder. */
export interface FolderFilter {
  /** whether to keep the file `name` (the others are never read) */
  accept(name: string): boolean;
  /** more bytes than this in the kept files is an error: `folder` is not what coffer builds */
  maxBytes: number;
}

/**
 * The files of one folder, by name (no sub-folders): in the single executable the assets
 * `<folder>/…` embedded in it, else the regular files of `diskDir`.
 * @param diskDir - where the folder is on disk; called only when not in the single executable
 * @returns undefined when the folder is not there (a build without it)
 */
export function folderFiles(folder: string, diskDir: () => string, filter: FolderFilter): Map<string, Buffer> | undefined {
  const files = new Map<string, Buffer>();
  let total = 0;
  const add = (name: string, read: () => Buffer, where: string): void => {
    const body = read();
    total += body.length;
    if (total > filter.maxBytes) throw new CofferError("E_CONFIG", `${where}: more than ${filter.maxBytes} bytes; that is not what coffer builds`);
    files.set(name, body);
  };
  const embedded = seaModule();
  if (embedded !== null) {
    const prefix = `${folder}/`;
    const keys = embedded.getAssetKeys().filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes("/"));
    if (keys.length === 0) return undefined;
    for (const key of keys) {
      const name = key.slice(prefix.length);
      // getAsset(key) without an encoding copies the bytes out of the executable
      if (filter.accept(name)) add(name, () => Buffer.from(embedded.getAsset(key)), `embedded ${folder}/`);
    }
    return files;
  }
  const dir = diskDir();
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (filter.accept(name) && statSync(path).isFile()) add(name, () => readFileSync(path), dir);
  }
  return files;
}

/**
 * One asset embedded in the single executable, without a copy (a read-only view of it), or
 * undefined when this is not the single executable or it holds no such asset.
 */
export function embeddedAsset(key: string): ArrayBuffer | undefined {
  const embedded = seaModule();
  if (embedded === null || !embedded.getAssetKeys().includes(key)) return undefined;
  return embedded.getRawAsset(key) as ArrayBuffer;
}
