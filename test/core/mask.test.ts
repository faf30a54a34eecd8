import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { setImmediate as tick } from "node:timers/promises";
import { MaskMatcher, createMasker, maskBytes, maskPatterns, tooShortToMask } from "../../src/core/mask.ts";

/** Feeds chunks through a matcher and returns the whole output. */
function run(values: readonly (string | Uint8Array)[], chunks: readonly Uint8Array[]): Buffer {
  const m = new MaskMatcher(maskPatterns(values));
  return Buffer.concat([...chunks.map((c) => m.write(c)), m.end()]);
}
const b = (s: string): Buffer => Buffer.from(s);

test("every form of a value is masked", () => {
  const v = "s3cr3t/p@ss w?rd+é";
  const forms = [
    v, Buffer.from(v).toString("base64"), Buffer.from(v).toString("base64").replace(/=+$/, ""), Buffer.from(v).toString("base64url"),
    encodeURIComponent(v), new URLSearchParams({ x: v }).toString().slice(2), JSON.stringify(v).slice(1, -1),
  ];
  for (const f of forms) assert.equal(maskBytes([v], b(`<${f}>`)).toString(), "<***>", f);
  const multi = "line one\nline two\r\nx\nline four";
  assert.equal(maskBytes([multi], b(`a ${multi} b`)).toString(), "a *** b");
  assert.equal(maskBytes([multi], b("[line two] [x] [line four]")).toString(), "[***] [x] [***]");
  assert.equal(maskBytes([multi], b(JSON.stringify({ multi }))).toString(), '{"multi":"***"}');
  assert.equal(maskBytes([multi], b(Buffer.from("line two").toString("base64"))).toString(), "***");
});

test("a value split at every byte position across two and three chunks is masked", () => {
  const v = "hunter2-é-🔑";
  const data = b(`before ${v} after`);
  const expected = "before *** after";
  for (let i = 0; i <= data.length; i++) {
    assert.equal(run([v], [data.subarray(0, i), data.subarray(i)]).toString(), expected, `split at ${i}`);
    for (let j = i; j <= data.length; j++) {
      assert.equal(run([v], [data.subarray(0, i), data.subarray(i, j), data.subarray(j)]).toString(), expected, `split at ${i},${j}`);
    }
  }
  // One byte at a time.
  assert.equal(run([v], [...data].map((x) => Uint8Array.of(x))).toString(), expected);
});

test("bytes before a possible match are released at once; only the prefix is held", async () => {
  const masker = createMasker(["hunter2"]);
  const got: Buffer[] = [];
  masker.on("data", (c: Buffer) => got.push(c));
  masker.write("hello hun");
  await tick();
  assert.equal(Buffer.concat(got).toString(), "hello ");
  assert.equal(masker.heldBytes, 3);
  masker.write("ter2!");
  await tick();
  assert.equal(Buffer.concat(got).toString(), "hello ***!");
  assert.equal(masker.heldBytes, 0);
  masker.write("a hunt");
  masker.end();
  await new Promise((r) => masker.on("end", r));
  assert.equal(Buffer.concat(got).toString(), "hello ***!a hunt");
});

test("no hold when no prefix matches; a longer pattern that may still complete is waited for", () => {
  const m = new MaskMatcher(maskPatterns(["hunter2", "hunter2-and-more"]));
  assert.equal(m.write(b("nothing to see here h")).toString(), "nothing to see here ");
  assert.equal(m.heldBytes, 1);
  assert.equal(m.write(b("x")).toString(), "hx");
  assert.equal(m.heldBytes, 0);
  assert.equal(m.write(b("huntehunter2")).toString(), "hunte");
  assert.equal(m.heldBytes, 7, "hunter2 could still be the start of hunter2-and-more");
  assert.equal(m.write(b("-and-more.")).toString(), "***.");
  assert.equal(m.write(b("hunter2-and")).toString(), "");
  assert.equal(m.end().toString(), "***-and", "at the end the shorter match wins");
});

test("one-byte patterns (minLength 1) work, and the longest match still wins", () => {
  const m = new MaskMatcher([b("a"), b("ab"), b("abc")], "#");
  assert.equal(Buffer.concat([m.write(b("xaxabxab")), m.write(b("cxa")), m.end()]).toString(), "x#x#x#x#");
  assert.equal(maskBytes(["a"], b("banana"), { minLength: 1, replacement: "_" }).toString(), "b_n_n_");
});

test("the tail of a second secret overlapping the first does not show", () => {
  const one = `k1-${randomBytes(6).toString("hex")}`;
  const two = `${one.slice(-5)}-${randomBytes(6).toString("hex")}`; // starts inside `one`
  const joined = one + two.slice(5);
  assert.equal(maskBytes([one, two], b(`<${joined}>`)).toString(), "<***>");
  assert.equal(maskBytes([two, one], b(`<${joined}>`)).toString(), "<***>");
  assert.equal(maskBytes(["abcd", "abcdefgh", "cdef"], b("abcdefgh abcdef xcdefx abcdabcd")).toString(), "*** *** x***x ******");
  // Split at every position, the output is the same.
  const data = b(`x ${joined} y`);
  for (let i = 0; i <= data.length; i++) assert.equal(run([one, two], [data.subarray(0, i), data.subarray(i)]).toString(), "x *** y", `split at ${i}`);
  assert.equal(run([one, two], [...data].map((x) => Uint8Array.of(x))).toString(), "x *** y");
});

test("a long run of overlapping matches is released as it comes, not held to the end", () => {
  const v = "zzzz";
  const m = new MaskMatcher(maskPatterns([v]));
  assert.equal(m.write(b("a zzzzzzzz")).toString(), "a ***");
  assert.ok(m.heldBytes < v.length);
  assert.equal(m.write(b("z".repeat(1000))).toString(), "");
  assert.ok(m.heldBytes < v.length);
  assert.equal(m.write(b("zz b")).toString(), " b");
  assert.equal(m.end().toString(), "");
});

test("a JSON-escaped value with non-ASCII, quotes and backslashes does not leak", () => {
  const v = `p"q\\r/é-${randomBytes(4).toString("hex")}-🔑\n\u001b`;
  const encoded = [
    JSON.stringify(v).slice(1, -1),
    JSON.stringify(v).slice(1, -1).replaceAll("/", "\\/"), // PHP
    JSON.stringify(v).slice(1, -1).replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`), // Python
  ];
  for (const f of encoded) assert.equal(maskBytes([v], b(`{"k":"${f}"}`)).toString(), '{"k":"***"}', f);
  assert.equal(maskBytes([v], b(JSON.stringify({ k: v }))).toString(), '{"k":"***"}');
});

test("the base64 of user:value (HTTP Basic auth) does not leak, whatever the user's length", () => {
  const v = `pw-${randomBytes(9).toString("base64")}`;
  for (const user of ["", "a", "al", "ali", "alic", "alice", "bob.smith@example.com"]) {
    const token = Buffer.from(`${user}:${v}`).toString("base64");
    const out = maskBytes([v], b(`Authorization: Basic ${token}\n`)).toString();
    assert.ok(out.includes("***"), `user of ${user.length} chars: ${out}`);
    assert.ok(!out.includes(token), `user of ${user.length} chars`);
    // What is left of the token cannot carry more than the two bytes around the value.
    const left = out.slice("Authorization: Basic ".length, -1).replace("***", "");
    assert.ok(left.length <= Math.ceil(((user.length + 1) * 4) / 3) + 4, `user of ${user.length} chars: ${out}`);
    const url = Buffer.from(`${user}:${v}`).toString("base64url");
    assert.ok(!maskBytes([v], b(url)).toString().includes(url.slice(-10)));
  }
});

test("an XML- or HTML-escaped value does not leak", () => {
  const v = `a&b<c>d"e'f-${randomBytes(4).toString("hex")}`;
  const forms = [
    v.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&apos;"),
    v.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&#39;"),
    v.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&#34;").replaceAll("'", "&#39;"),
    v.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;"),
  ];
  for (const f of forms) assert.equal(maskBytes([v], b(`<x a="${f}">${f}</x>`)).toString(), '<x a="***">***</x>', f);
});

test("ANSI colour codes around a masked value are kept intact", () => {
  const v = `tok-${randomBytes(8).toString("hex")}`;
  const red = "\x1b[31m";
  const bold = "\x1b[1;4m";
  const reset = "\x1b[0m";
  const forms = [v, Buffer.from(v).toString("base64"), JSON.stringify(v).slice(1, -1), encodeURIComponent(v)];
  for (const f of forms) {
    assert.equal(maskBytes([v], b(`${red}${f}${reset} ${bold}[${f}]${reset}`)).toString(), `${red}***${reset} ${bold}[***]${reset}`);
  }
  const data = b(`${red}${v}${reset}`);
  for (let i = 0; i <= data.length; i++) assert.equal(run([v], [data.subarray(0, i), data.subarray(i)]).toString(), `${red}***${reset}`);
});

test("binary-safe, and UTF-8 split across chunks is not corrupted", () => {
  const secret = randomBytes(40);
  const noise = randomBytes(5000);
  const data = Buffer.concat([noise, secret, noise, secret]);
  const out = run([secret], [data.subarray(0, 5010), data.subarray(5010, 10030), data.subarray(10030)]);
  assert.deepEqual(out, Buffer.concat([noise, b("***"), noise, b("***")]));
  const text = b("日本語のテキスト 🔑 ünïcødé ".repeat(50));
  const parts: Buffer[] = [];
  for (let i = 0; i < text.length; i += 7) parts.push(text.subarray(i, i + 7));
  assert.deepEqual(run(["zzzz-not-there"], parts), text);
  assert.deepEqual(run(["テキスト"], parts).toString(), "日本語の*** 🔑 ünïcødé ".repeat(50));
});

test("property: chunking never changes the output", () => {
  const alphabet = "abcXYZ=+/%\n";
  const pick = (n: number): string => Array.from({ length: n }, () => alphabet[randomInt(alphabet.length)]).join("");
  for (let round = 0; round < 300; round++) {
    const values = Array.from({ length: randomInt(1, 5) }, () => pick(randomInt(4, 9)));
    const data = b(Array.from({ length: 30 }, () => (randomInt(3) === 0 ? values[randomInt(values.length)] : pick(3))).join(""));
    const whole = maskBytes(values, data);
    const cuts = Array.from({ length: randomInt(1, 6) }, () => randomInt(data.length + 1)).sort((x, y) => x - y);
    const chunks = [0, ...cuts].map((c, i) => data.subarray(c, [...cuts, data.length][i]));
    assert.deepEqual(run(values, chunks), whole);
    for (const v of values) assert.ok(!whole.includes(b(v)), `${v} leaked`);
  }
});

test("long values and many patterns over megabytes, quickly", () => {
  const values = Array.from({ length: 50 }, () => randomBytes(24).toString("base64"));
  values.push(randomBytes(8192).toString("hex"));
  const filler = b("the quick brown fox jumps over the lazy dog 0123456789 ABCDEF abcdef\n".repeat(60_000)); // ~4 MiB
  const data = Buffer.concat([filler, b(values.join(" ")), filler]);
  const started = performance.now();
  const m = new MaskMatcher(maskPatterns(values));
  const outs: Buffer[] = [];
  for (let i = 0; i < data.length; i += 65536) outs.push(m.write(data.subarray(i, i + 65536)));
  outs.push(m.end());
  const ms = performance.now() - started;
  const out = Buffer.concat(outs);
  assert.equal(out.length, filler.length * 2 + values.length * 4 - 1);
  for (const v of values) assert.ok(!out.includes(b(v)));
  assert.ok(ms < 3000, `took ${ms} ms`);
});

test("values too short to mask are reported, not masked", () => {
  assert.deepEqual(tooShortToMask(["abc", "", "abcd", "é", b("xyz")]), [0, 3, 4]);
  assert.equal(maskBytes(["abc"], b("abc abc")).toString(), "abc abc");
  assert.deepEqual(maskPatterns(["ab\nabcd"]).map(String).includes("ab"), false);
  assert.equal(maskBytes(["ab", "abcd"], b("ab abcd")).toString(), "ab ***");
});
