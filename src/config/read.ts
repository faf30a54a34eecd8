/**
 * Reading a config file (`.coffer.yml`, agent.yml) with a size cap: the file is opened once,
 * checked through its descriptor (so what is checked is what is read), and read with a bounded
 * read, so a huge or endless file is refused without being loaded whole.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import type { Stats } from "node:fs";
import { CofferError } from "../errors.ts";

/** The largest project file or agent config coffer reads: 1 MiB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads a config file of at most `max` bytes as UTF-8 text.
 * @param path - the file; messages show it as given
 * @param what - how messages name it ("config file", "agent config file")
 * @param check - runs on the open file's stat before anything is read (e.g. the ownership rule)
 * @param max - the cap in bytes (default {@link MAX_CONFIG_BYTES})
 * @throws CofferError E_CONFIG when it cannot be read, is not a regular file, or is larger than `max`;
 *   whatever `check` throws
 */
export function readConfigFile(path: string, what: string, check?: (st: Stats) => void, max = MAX_CONFIG_BYTES): string {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted as the config must not hang coffer; it is refused below.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new CofferError("E_CONFIG", `${path}: cannot read the ${what} (${code}); check the path given to --config`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CofferError("E_CONFIG", `${path}: the ${what} is not a regular file`);
    check?.(st);
    const tooLarge = () => new CofferError("E_CONFIG", `${path}: the ${what} is larger than the limit of ${max} bytes${max === MAX_CONFIG_BYTES ? " (1 MiB)" : ""}; split it or remove what it does not need`);
    if (st.size > max) throw tooLarge();
    // One byte more than the cap tells a file that grew since fstat from one that fits.
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > max) throw tooLarge();
    }
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}
