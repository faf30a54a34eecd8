/**
 * Terminal and stream helpers of the CLI: no-echo prompts on the controlling terminal,
 * bounded stdin reads, confirmations, tables.
 */
import { closeSync, createReadStream, openSync, readSync, statSync, writeSync } from "node:fs";
import { CofferError } from "../errors.ts";
import { parseDuration, requireDuration } from "../core/durations.ts";

/**
 * Characters that make a terminal do something instead of showing text: C0 controls (ESC
 * among them), DEL, C1 controls (CSI and OSC in one byte), the line and paragraph separators,
 * and bidi embeddings, overrides and isolates (which reorder what follows).
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/**
 * `s` with every control character written as an escape (`\x1b`, `\n`-like `\x0a`, `\u{202e}`),
 * so that a name, description or member name from a bundle, store or repo cannot move the
 * cursor, recolour, rewrite or hide what coffer prints. Use it wherever such text reaches a
 * terminal. `keepNewlines` leaves line breaks alone (for whole messages made by coffer).
 * @example printable("a\u001b[2Jb") // "a\\x1b[2Jb"
 */
export function printable(s: string, keepNewlines = false): string {
  return s.replace(CONTROL, (c) => {
    if (keepNewlines && c === "\n") return c;
    const code = c.codePointAt(0) ?? 0;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/** The controlling terminal, open for reading and writing, or E_CANCELLED with `message`. */
function openTty(message: string): number {
  try {
    return openSync("/dev/tty", "r+");
  } catch {
    throw new CofferError("E_CANCELLED", message);
  }
}

/**
 * Asks questions on the controlling terminal (`/dev/tty`, so it works while stdin is piped)
 * without echoing the answers. One terminal session for all of them: input typed ahead is
 * kept for the next question, not lost.
 * @throws CofferError E_CANCELLED when there is no terminal, or on Ctrl-C / Ctrl-D
 */
async function withHiddenPrompt<T>(fn: (ask: (question: string) => Promise<string>) => Promise<T>): Promise<T> {
  const fd = openTty("no terminal to ask on; give the input another way (see --help)");
  const { ReadStream } = await import("node:tty");
  const input = new ReadStream(fd);
  input.setRawMode(true);
  input.setEncoding("utf8");
  input.pause();
  let pending = "";
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      let answer = "";
      const consume = (): boolean => {
        while (pending.length > 0) {
          const ch = pending[0]!;
          pending = pending.slice(1);
          if (ch === "\r" || ch === "\n") {
            if (pending[0] === "\n" && ch === "\r") pending = pending.slice(1);
            resolve(answer);
            return true;
          }
          if (ch === "\u0003" || (ch === "\u0004" && answer === "")) {
            reject(new CofferError("E_CANCELLED", "cancelled at the prompt"));
            return true;
          }
          if (ch === "\u007f" || ch === "\b") answer = answer.slice(0, -1);
          else if (ch === "\u0015") answer = "";
          else if (ch >= " ") answer += ch;
        }
        return false;
      };
      if (consume()) return;
      const onData = (chunk: string) => {
        pending += chunk;
        if (consume()) {
          input.off("data", onData);
          input.off("error", reject);
          input.pause();
        }
      };
      input.on("data", onData);
      input.on("error", reject);
      input.resume();
    });
  try {
    return await fn(async (question) => {
      writeSync(fd, question);
      try {
        return await nextLine();
      } finally {
        writeSync(fd, "\n");
      }
    });
  } finally {
    input.setRawMode(false);
    input.destroy();
  }
}

/** Asks one question on the terminal without echo (see {@link withHiddenPrompt}). */
export function promptHidden(question: string): Promise<string> {
  return withHiddenPrompt((ask) => ask(question));
}

/** Asks twice without echo and insists both answers match and are not empty. */
export function promptTwice(what: string): Promise<string> {
  return withHiddenPrompt(async (ask) => {
    const first = await ask(`${what}: `);
    if (first === "") throw new CofferError("E_INVALID_VALUE", `empty ${what}`);
    const second = await ask(`${what} (again): `);
    if (first !== second) throw new CofferError("E_INVALID_VALUE", `${what}: the two values you typed do not match; nothing was changed`);
    return first;
  });
}

/** Asks a yes/no question on the terminal (echoed); without one, E_CANCELLED names `flag`, the way to say yes. */
export async function confirm(question: string, flag: string): Promise<boolean> {
  const fd = openTty(`no terminal to confirm on; pass ${flag} to go ahead`);
  try {
    writeSync(fd, `${printable(question)} [y/N] `);
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, null);
    return /^y(es)?$/i.test(buf.subarray(0, n).toString("utf8").trim());
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads all of a stream, refusing more than `max` bytes without holding more than that.
 * @throws CofferError E_INVALID_VALUE when larger than `max`
 */
export async function readAllBounded(stream: NodeJS.ReadableStream, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > max) {
      for (const c of chunks) c.fill(0);
      throw new CofferError("E_INVALID_VALUE", `invalid value: ${what} is over the limit of ${max} bytes`);
    }
    chunks.push(b);
  }
  const all = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  return all;
}

/**
 * Reads the file at `path` without ever holding more than `max` bytes: a regular file is refused
 * by its size before it is read, anything else (a FIFO) stops being read once it passes the limit.
 * @param human - the limit in words for the messages, e.g. `64 MiB`
 * @throws CofferError E_INVALID_VALUE when too large or unreadable
 */
export async function readFileBounded(path: string, max: number, human?: string): Promise<Buffer> {
  try {
    const st = statSync(path);
    if (st.isFile() && st.size > max) {
      throw new CofferError("E_INVALID_VALUE", `invalid value: ${path} is ${st.size} bytes, over the limit of ${max} bytes${human === undefined ? "" : ` (${human})`}`);
    }
    return await readAllBounded(createReadStream(path), max, human === undefined ? path : `${path} (at most ${human})`);
  } catch (err) {
    if (err instanceof CofferError) throw err;
    throw new CofferError("E_INVALID_VALUE", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

/** An ISO timestamp without its fraction of a second, for tables. */
export function wholeSeconds(iso: string): string {
  return iso.replace(/\.\d+Z$/, "Z");
}

/** Renders rows as left-aligned columns. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  rows = rows.map((r) => r.map((c) => printable(c)));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]) =>
    r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/** The longest `--expires` and `--since`: 100 years, well inside what a Date can hold. */
const CENTURY_MS = 100 * 366 * 86_400_000;

/**
 * Parses a duration flag kept in whole seconds (`--rotate-every`, `--expires`): the one grammar
 * of core/durations.ts (`90d`, `12h`, `2w`), rounded down to whole seconds, at least 1s.
 * @throws CofferError E_INVALID_VALUE naming the flag and the grammar
 */
export function parseDurationSeconds(s: string, flag: string, max?: number): number {
  return Math.floor(requireDuration(s, flag, { min: 1000, ...(max !== undefined && { max }) }) / 1000);
}

/** Parses `--expires`: `never` (null) or a duration up to 100 years, in whole seconds. */
export function parseExpires(s: string): number | null {
  return s === "never" ? null : parseDurationSeconds(s, "--expires", CENTURY_MS);
}

/** Parses `--since`: an ISO date/time, or a duration back from now (`7d`, up to 100 years). */
export function parseSince(s: string, now = Date.now()): Date {
  if (parseDuration(s) !== undefined) return new Date(now - requireDuration(s, "--since", { min: 1, max: CENTURY_MS }));
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new CofferError("E_INVALID_VALUE", `invalid --since ${JSON.stringify(s)}: an ISO date (2026-01-31) or a duration (7d)`);
  return new Date(t);
}

/** Parses a whole number flag ≥ min. */
export function parseWhole(s: string, flag: string, min: number): number {
  if (!/^\d{1,15}$/.test(s) || Number(s) < min) {
    throw new CofferError("E_INVALID_VALUE", `invalid ${flag} ${JSON.stringify(s)}: a whole number ≥ ${min}`);
  }
  return Number(s);
}
