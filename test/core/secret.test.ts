import { test } from "node:test";
import assert from "node:assert/strict";
import { inspect, format } from "node:util";
import { Secret } from "../../src/core/secret.ts";

const meta = { name: "db/pw", version: 2, updatedAt: "2026-01-01T00:00:00.000Z" };

test("Secret: every way of printing it gives [redacted]", () => {
  const s = new Secret(meta, Buffer.from("hunter2"));
  const printed = [String(s), `${s}`, s.toString(), JSON.stringify(s), JSON.stringify({ s }), inspect(s), inspect({ s }, { depth: 5 }), format("%s %o %O %j", s, s, s, s), "" + s];
  for (const p of printed) {
    assert.ok(!p.includes("hunter2"));
    assert.match(p, /\[redacted\]/);
  }
  assert.equal(s.reveal(), "hunter2");
  assert.equal(s.name, "db/pw");
  assert.equal(s.version, 2);
});

test("Secret: bytes() is a copy; dispose() zeroes the value and later use throws E_DISPOSED", () => {
  const buf = Buffer.from([0, 1, 2, 255]);
  const s = new Secret(meta, buf);
  const copy = s.bytes();
  copy[0] = 9;
  assert.deepEqual(Buffer.from(s.bytes()), Buffer.from([0, 1, 2, 255]));
  s.dispose();
  assert.deepEqual(buf, Buffer.alloc(4));
  assert.equal(s.disposed, true);
  assert.throws(() => s.reveal(), { code: "E_DISPOSED" });
  assert.throws(() => s.bytes(), { code: "E_DISPOSED" });
});

test("Secret.equals compares two values in place: same bytes, other bytes, other length; a disposed one refuses", () => {
  const mk = (v: string) => new Secret({ name: "a/b", version: 1, updatedAt: "2026-01-01T00:00:00.000Z" }, Buffer.from(v));
  const a = mk("hunter2hunter2");
  assert.equal(a.equals(mk("hunter2hunter2")), true);
  assert.equal(a.equals(mk("hunter2hunter3")), false);
  assert.equal(a.equals(mk("hunter2")), false);
  const gone = mk("hunter2hunter2");
  gone.dispose();
  assert.throws(() => a.equals(gone), { code: "E_DISPOSED" });
});
