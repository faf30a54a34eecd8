/**
 * A streaming parser of server-sent events (`text/event-stream`), the one used by every client of
 * a coffer server's streams: the `server` provider's `/v1/watch` and a runbook execution's output.
 * It is fed decoded text as it arrives, so an event split across TCP reads (or a CRLF split
 * between two) is put back together, and it holds at most one line and one event's data.
 */

/** One server-sent event. */
export interface SseEvent {
  /** `message` when the event had no `event:` field */
  event: string;
  /** the data lines, joined with "\n" */
  data: string;
  /** the last `id:` seen (the stream's last event id) */
  id: string;
}

/** Default longest line, and longest event data, in characters; more is a broken stream. */
export const SSE_MAX_LINE = 64 * 1024;

/**
 * A streaming parser of `text/event-stream` (the WHATWG rules): lines end in CRLF, LF or CR
 * (also split across chunks), `:` lines are comments, `field: value` loses one leading space,
 * `data` lines are joined with LF, an empty line dispatches (nothing without data), an unknown
 * field is ignored. Feed it decoded text with {@link push}.
 * @throws Error from push() when a line, or one event's data, grows past `maxChars` (default 64 KiB)
 */
export class SseParser {
  #buffer = "";
  #event = "";
  #data: string[] = [];
  #dataChars = 0;
  #id = "";
  readonly #onEvent: (event: SseEvent) => void;
  readonly #max: number;

  /** @param options.maxChars - the longest line and the longest event data (default {@link SSE_MAX_LINE}) */
  constructor(onEvent: (event: SseEvent) => void, options: { maxChars?: number } = {}) {
    this.#onEvent = onEvent;
    this.#max = options.maxChars ?? SSE_MAX_LINE;
  }

  push(text: string): void {
    this.#buffer += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buffer);
      if (m === null) break;
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (m[0] === "\r" && m.index === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, m.index);
      this.#buffer = this.#buffer.slice(m.index + m[0].length);
      this.#line(line);
    }
    if (this.#buffer.length > this.#max) throw new Error(`an event-stream line is longer than ${this.#max} characters`);
  }

  /** The stream ended: a last unterminated event is dropped, as the standard says. */
  end(): void {
    this.#buffer = "";
    this.#event = "";
    this.#data = [];
    this.#dataChars = 0;
  }

  #line(line: string): void {
    if (line === "") {
      if (this.#data.length > 0) this.#onEvent({ event: this.#event === "" ? "message" : this.#event, data: this.#data.join("\n"), id: this.#id });
      this.#event = "";
      this.#data = [];
      this.#dataChars = 0;
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.#event = value;
    else if (field === "data") {
      this.#dataChars += value.length + 1;
      if (this.#dataChars > this.#max) throw new Error(`an event-stream event is longer than ${this.#max} characters`);
      this.#data.push(value);
    } else if (field === "id" && !value.includes("\0")) this.#id = value;
  }
}
