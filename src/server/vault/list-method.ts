/**
 * The HTTP method `LIST`, which Vault clients send to list keys and Node's HTTP parser (llhttp)
 * refuses with HPE_INVALID_METHOD before any route sees it. The server's `clientError` path gets
 * the socket and the bytes the parser stopped on: a request line `LIST <target> HTTP/1.x` there
 * is rewritten to `GET <target>?list=true` (Vault's own equivalent), the failed parser is
 * detached from the socket, and the socket is handed back to the HTTP server as a new connection
 * with the rewritten bytes in front of whatever follows. Keep-alive goes on (the next request is
 * parsed by the new parser), and it works the same behind TLS (the socket is then the TLS
 * socket, handed back through `secureConnection`). Anything else gets fastify's usual answer.
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

/** The request line of a LIST request: a target without spaces or control characters. */
const LIST_LINE = /^LIST (\/[\x21-\x7e]*) (HTTP\/1\.[01])\r?\n/;
/** The HTTP server's own listeners on a connection's socket, which the failed parser's state is bound to. */
const HTTP_LISTENER = /^(bound )?(socketOn|onSocket|noop$)/;
const HTTP_EVENTS = ["data", "end", "close", "drain", "error", "timeout", "resume", "pause"] as const;

/** The parts of Node's (internal) HTTP parser this module uses. */
interface HttpParser {
  _consumed?: boolean;
  unconsume(): void;
  remove(): void;
  close(): void;
}

/**
 * A `clientError` listener (in place of fastify's) that serves `LIST` by re-dispatching it as `GET …?list=true`.
 * @param server - the HTTP(S) server the sockets belong to (read when an error comes)
 */
export function listMethodHandler(server: () => Server): (err: Error & { code?: string; rawPacket?: Buffer; bytesParsed?: number }, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === "HPE_INVALID_METHOD" && err.rawPacket !== undefined && !socket.destroyed && redispatch(server(), socket, err.rawPacket, err.bytesParsed ?? 0)) return;
    clientError(err, socket);
  };
}

/** Rewrites a LIST request and gives the socket back to `server`; false when the bytes are no LIST request. */
function redispatch(server: Server, socket: Socket, raw: Buffer, failedAt: number): boolean {
  // The request starts at the last LIST before the failure (earlier requests in the chunk were served).
  const start = raw.lastIndexOf("LIST ", failedAt, "latin1");
  if (start < 0 || (start > 0 && raw[start - 1] !== 0x0a)) return false;
  const rest = raw.subarray(start);
  const line = LIST_LINE.exec(rest.subarray(0, Math.min(rest.length, 16 * 1024)).toString("latin1"));
  const parser = (socket as Socket & { parser?: HttpParser | null }).parser;
  // Node's parser internals this relies on: should a Node release change them, LIST is refused
  // (fastify's 400, as before) rather than served half-detached; the LIST tests then fail.
  if (line === null || parser === undefined || parser === null || !detachable(parser)) return false;
  const target = line[1]!;
  const query = target.includes("?") ? "&list=true" : "?list=true";
  const rewritten = Buffer.concat([Buffer.from(`GET ${target}${query} ${line[2]}\r\n`, "latin1"), rest.subarray(line[0].length)]);

  // Detach the failed parser (as Node does when it hands a socket over on an upgrade) ...
  if (parser._consumed === true) {
    parser.unconsume();
    parser._consumed = false;
  }
  parser.remove(); // out of the server's connection list (its request timeout no longer applies)
  setImmediate(() => parser.close());
  for (const event of HTTP_EVENTS) {
    for (const f of socket.listeners(event)) if (HTTP_LISTENER.test(f.name)) socket.removeListener(event, f as (...a: unknown[]) => void);
  }
  (socket as Socket & { parser?: HttpParser | null }).parser = null;
  // ... and hand the socket back with the rewritten request in front.
  socket.unshift(rewritten);
  server.emit((socket as Socket & { encrypted?: boolean }).encrypted === true ? "secureConnection" : "connection", socket);
  return true;
}

function detachable(p: HttpParser): boolean {
  return typeof p.unconsume === "function" && typeof p.remove === "function" && typeof p.close === "function";
}

/** fastify's default answer to a request the parser refused: 400 (408, 431), then the socket closed. */
function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, label] = err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? [408, "Request Timeout"] : err.code === "HPE_HEADER_OVERFLOW" ? [431, "Request Header Fields Too Large"] : [400, "Bad Request"];
  const body = `{"error":"${label}","message":"Client Error","statusCode":${status}}`;
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${label}\r\nContent-Length: ${body.length}\r\nContent-Type: application/json\r\n\r\n${body}`);
  socket.destroy(err);
}
