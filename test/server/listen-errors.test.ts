/** What `coffer serve` says when it cannot listen or has no data dir: what is wrong and what to do. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { isCofferError } from "../../src/errors.ts";
import { assertDataDir, listenError } from "../../src/server/server.ts";
import { tempDir } from "../helpers.ts";

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`listen ${code}`), { code });

test("a low port without privileges is not an internal error: it names the port and a way out", () => {
  const e = listenError(errno("EACCES"), "0.0.0.0", 80);
  assert.ok(isCofferError(e, "E_LISTEN"));
  assert.equal(e.message, "no permission to listen on port 80 on 0.0.0.0: ports below 1024 need privileges (CAP_NET_BIND_SERVICE); choose a port from 1024 up with --listen, e.g. --listen 0.0.0.0:8200");
  assert.equal(e.exitCode, 9);
});

test("a port in use and a foreign address are named with what to do", () => {
  assert.equal(listenError(errno("EADDRINUSE"), "::1", 8200)?.message, "port 8200 on ::1 is in use: stop the other process or choose another address with --listen HOST:PORT");
  assert.match(listenError(errno("EADDRNOTAVAIL"), "10.9.9.9", 8200)?.message ?? "", /no such address on this machine/);
  assert.equal(listenError(errno("EMFILE"), "127.0.0.1", 8200), undefined, "anything else stays what it is");
});

test("a missing data dir, or a file given as one, says to run server init", (t) => {
  const dir = tempDir(t);
  assert.throws(() => assertDataDir(join(dir, "srv")), (err: unknown) =>
    isCofferError(err, "E_NOT_INITIALIZED") && err.message === `no data dir at ${join(dir, "srv")}: run \`coffer server init --data ${join(dir, "srv")}\` first, or give the right --data`);
  writeFileSync(join(dir, "file"), "");
  assert.throws(() => assertDataDir(join(dir, "file")), /is not a directory/);
  assertDataDir(dir);
});
