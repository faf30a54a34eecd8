import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { armorDecoder, armorEncoder, openStream, sealStream } from "../../src/crypto/age-stream.ts";
import { tempDir } from "../helpers.ts";

/** `data` as a stream cut into pieces of the given sizes (cycled). */
function pieces(data: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    parts.push(data.subarray(at, at + n));
    at += n;
  }
  return ReadableStream.from(parts);
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const chunk of stream) out.push(chunk);
  return Buffer.concat(out);
}

const SIZES = [1, 47, 48, 49, 96, 1000, 64 * 1024 + 17];

test("the streamed armor writes exactly what age's armor.encode writes, and reads it back, however the input is cut", async () => {
  const age = await import("age-encryption");
  for (const size of SIZES) {
    const data = randomBytes(size);
    const expected = age.armor.encode(data);
    for (const cut of [[1], [7, 100], [48], [5000]]) {
      assert.equal((await collect(pieces(data, cut).pipeThrough(armorEncoder()))).toString("latin1"), expected, `size ${size}`);
      assert.deepEqual(await collect(pieces(Buffer.from(expected), cut).pipeThrough(armorDecoder())), data, `size ${size}`);
    }
    assert.deepEqual(age.armor.decode((await collect(pieces(data, [333]).pipeThrough(armorEncoder()))).toString("latin1")), new Uint8Array(data));
    // CRLF and whitespace around it are read, as age's decoder reads them.
    const crlf = `\n  ${expected.replaceAll("\n", "\r\n")}  \n`;
    assert.deepEqual(await collect(pieces(Buffer.from(crlf), [10]).pipeThrough(armorDecoder())), data);
  }
});

test("malformed armor is refused by the streamed decoder as by age's", async () => {
  const age = await import("age-encryption");
  const good = age.armor.encode(randomBytes(200)).split("\n");
  const cases = {
    "a short line in the middle": [good[0], good[1]!.slice(0, 60), ...good.slice(2)],
    "a non-base64 character": [good[0], `${good[1]!.slice(0, 63)}!`, ...good.slice(2)],
    "no footer": good.slice(0, -2),
    "no header": good.slice(1),
    "data after the footer": [...good.slice(0, -1), "AAAA", ""],
    "a line too long": [good[0], `${good[1]}AAAA`, ...good.slice(2)],
  };
  for (const [what, lines] of Object.entries(cases)) {
    const text = lines.join("\n");
    assert.throws(() => age.armor.decode(text), Error, `age refuses ${what}`);
    await assert.rejects(collect(pieces(Buffer.from(text), [17]).pipeThrough(armorDecoder())), /invalid ASCII armor/, what);
  }
});

test("the age CLI decrypts a streamed, armored encryption, and a file the age CLI armored opens as a stream", async (t) => {
  const dir = tempDir(t);
  const key = join(dir, "key.txt");
  execFileSync("age-keygen", ["-o", key], { stdio: "ignore" });
  const recipient = execFileSync("age-keygen", ["-y", key], { encoding: "utf8" }).trim();
  const secret = readFileSync(key, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const data = randomBytes(3 * 64 * 1024 + 5);
  const sealed = await collect(await sealStream(pieces(data, [10_000]), { recipients: [recipient] }));
  assert.ok(sealed.toString("latin1").startsWith("-----BEGIN AGE ENCRYPTED FILE-----\n"));
  writeFileSync(join(dir, "sealed.age"), sealed);
  assert.deepEqual(execFileSync("age", ["-d", "-i", key, join(dir, "sealed.age")]), data);

  writeFileSync(join(dir, "plain"), data);
  execFileSync("age", ["-a", "-r", recipient, "-o", join(dir, "cli.age"), join(dir, "plain")]);
  const opened = await openStream(pieces(readFileSync(join(dir, "cli.age")), [4096]), true, { identity: secret }, "the test file");
  assert.deepEqual(await collect(opened), data);
});

test("a truncated or tampered streamed file errors the stream with E_DECRYPT, not a partial success", async () => {
  const { generateAgeIdentity } = await import("../../src/crypto/age.ts");
  const age = await import("age-encryption");
  const secret = await generateAgeIdentity();
  const data = randomBytes(200 * 1024);
  const sealed = await collect(await sealStream(pieces(data, [65536]), { recipients: [await age.identityToRecipient(secret)] }));
  const binary = Buffer.from(age.armor.decode(sealed.toString("latin1")));
  const truncated = binary.subarray(0, binary.length - 100);
  await assert.rejects(collect(await openStream(pieces(truncated, [1000]), false, { identity: secret }, "the test file")), { code: "E_DECRYPT" });
  const flipped = Buffer.from(binary);
  flipped.writeUInt8(flipped.at(-1000)! ^ 1, flipped.length - 1000);
  await assert.rejects(collect(await openStream(pieces(flipped, [1000]), false, { identity: secret }, "the test file")), { code: "E_DECRYPT" });
  const cut = sealed.subarray(0, sealed.length - 40);
  await assert.rejects(collect(await openStream(pieces(cut, [1000]), true, { identity: secret }, "the test file")), { code: "E_DECRYPT" });
});
