/**
 * client/rotation.ts against a tiny fake server (node:http on a free loopback port) that speaks
 * the rotation contract of client/wire.ts: policies set, shown, listed (`?due=true`) and removed,
 * rotate now, a failed rotation mapped to E_ROTATION with the server's message (exit 13), 409
 * "rotation in progress", token revocation with rotation, and answers of the wrong shape.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CofferClient } from "../../src/client/client.ts";
import { ServerError } from "../../src/client/server-error.ts";
import { CofferError } from "../../src/errors.ts";
import { parsePostgresApply, RotationClient } from "../../src/client/rotation.ts";
import type { RotationPolicyBody, RotationView } from "../../src/client/wire.ts";

const TOKEN = "cof_rotation_test_token";

interface Fake {
  url: string;
  policies: Map<string, RotationView>;
  versions: Map<string, number>;
  seen: string[];
  /** the next POST fails this way */
  fail?: "apply" | "busy" | "shape" | undefined;
}

/** A fake server: the rotation routes in memory, and the bodies the contract gives. */
async function fakeServer(t: TestContext): Promise<Fake> {
  const fake: Fake = { url: "", policies: new Map(), versions: new Map([["app/key", 1], ["db/pw", 4]]), seen: [] };
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, code: string, message: string): void =>
    send(res, status, { error: { code, message }, requestId: "req-1" });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    fake.seen.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return error(res, 401, "E_UNAUTHENTICATED", "no token");
    if (url.pathname === "/v1/rotation" && req.method === "GET") {
      const all = [...fake.policies.values()];
      return send(res, 200, { rotations: url.searchParams.get("due") === "true" ? all.filter((p) => p.due) : all });
    }
    const tokenMatch = /^\/v1\/tokens\/([0-9a-f]{16})$/.exec(url.pathname);
    if (tokenMatch !== null && req.method === "DELETE") {
      assert.equal(url.searchParams.get("rotate"), "true");
      return send(res, 200, { id: tokenMatch[1], revoked: true, rotated: [{ name: "app/key", version: 2 }], manual: [{ name: "db/pw", reason: "no rotation policy" }] });
    }
    const m = /^\/v1\/rotation\/(.+)$/.exec(url.pathname);
    if (m === null) return error(res, 404, "E_NOT_FOUND", "no route");
    const name = m[1]!.split("/").map(decodeURIComponent).join("/");
    const policy = fake.policies.get(name);
    switch (req.method) {
      case "PUT": {
        if (!fake.versions.has(name)) return error(res, 404, "E_NOT_FOUND", `no secret "${name}"`);
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as RotationPolicyBody;
        const view: RotationView = {
          name, every: body.every ?? null, generate: body.generate, apply: body.apply ?? null, state: "ok",
          nextAt: body.every !== undefined ? "2030-01-01T00:00:00.000Z" : null, due: name === "db/pw", lastRotatedAt: null,
          lastError: null, lastErrorAt: null, failures: 0, updatedAt: "2026-01-01T00:00:00.000Z", updatedBy: "token:t",
        };
        fake.policies.set(name, view);
        return send(res, 200, view);
      }
      case "GET":
        return policy === undefined ? error(res, 404, "E_NOT_FOUND", `secret "${name}" has no rotation policy`) : send(res, 200, policy);
      case "DELETE":
        if (policy === undefined) return error(res, 404, "E_NOT_FOUND", `secret "${name}" has no rotation policy`);
        fake.policies.delete(name);
        return send(res, 200, { name, deleted: true });
      case "POST": {
        if (policy === undefined) return error(res, 404, "E_NOT_FOUND", `secret "${name}" has no rotation policy`);
        const fail = fake.fail;
        fake.fail = undefined;
        if (fail === "apply") return error(res, 502, "E_ROTATION", `rotating ${name}: the apply runbook "pg-pw" exited 1; no version was written`);
        if (fail === "busy") return error(res, 409, "E_CONFLICT", `rotation in progress for ${name}`);
        if (fail === "shape") return send(res, 200, { name, version: "2" });
        const version = (fake.versions.get(name) ?? 0) + 1;
        fake.versions.set(name, version);
        return send(res, 200, { name, version, rotatedAt: "2026-01-02T00:00:00.000Z" });
      }
    }
    return error(res, 405, "E_USAGE", "method");
  };
  const server = createServer((req, res) => void handle(req, res).catch((err: unknown) => error(res, 500, "E_INTERNAL", String(err))));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

const client = (fake: Fake): RotationClient => new RotationClient(new CofferClient({ url: fake.url, token: TOKEN }));

test("set, show, list (all and due), rotate now and remove a policy over HTTP", async (t) => {
  const fake = await fakeServer(t);
  const rotation = client(fake);
  const set = await rotation.setPolicy("app/key", { every: "30d", generate: { charset: "alnum", length: 32 } });
  assert.deepEqual([set.name, set.every, set.generate, set.apply, set.state, set.due], ["app/key", "30d", { charset: "alnum", length: 32 }, null, "ok", false]);
  await rotation.setPolicy("db/pw", { generate: { charset: "hex", length: 40 }, apply: { postgres: { connection: "db/admin", role: "app" } } });
  assert.deepEqual((await rotation.getPolicy("db/pw")).apply, { postgres: { connection: "db/admin", role: "app" } });
  assert.equal((await rotation.getPolicy("db/pw")).every, null);
  assert.deepEqual((await rotation.listPolicies()).map((p) => p.name), ["app/key", "db/pw"]);
  assert.deepEqual((await rotation.listPolicies({ due: true })).map((p) => p.name), ["db/pw"]);
  assert.deepEqual(await rotation.rotateNow("app/key"), { name: "app/key", version: 2, rotatedAt: "2026-01-02T00:00:00.000Z" });
  await rotation.deletePolicy("app/key");
  await assert.rejects(rotation.getPolicy("app/key"), (err: ServerError) => err.code === "E_NOT_FOUND" && /no rotation policy/.test(err.message));
  assert.ok(fake.seen.includes("GET /v1/rotation?due=true"));
  assert.ok(fake.seen.includes("POST /v1/rotation/app/key"));
});

test("a failed rotation is E_ROTATION (exit 13) with the server's message; rotation in progress is E_CONFLICT", async (t) => {
  const fake = await fakeServer(t);
  const rotation = client(fake);
  await rotation.setPolicy("app/key", { generate: { charset: "alnum", length: 8 }, apply: { runbook: "pg-pw" } });
  fake.fail = "apply";
  await assert.rejects(rotation.rotateNow("app/key"), (err: ServerError) => {
    assert.ok(err instanceof ServerError);
    assert.equal(err.code, "E_ROTATION");
    assert.equal(err.exitCode, 13);
    assert.equal(err.status, 502);
    assert.match(err.message, /apply runbook "pg-pw" exited 1; no version was written/);
    assert.match(err.message, /request req-1/);
    return true;
  });
  fake.fail = "busy";
  await assert.rejects(rotation.rotateNow("app/key"), (err: ServerError) => err.code === "E_CONFLICT" && /rotation in progress/.test(err.message));
  assert.equal(fake.versions.get("app/key"), 1, "no version was written by either");
});

test("revoking a token with rotation gives the rotated and the manual list", async (t) => {
  const fake = await fakeServer(t);
  const report = await client(fake).revokeToken("0123456789abcdef");
  assert.deepEqual(report, { id: "0123456789abcdef", revoked: true, rotated: [{ name: "app/key", version: 2 }], manual: [{ name: "db/pw", reason: "no rotation policy" }] });
  assert.deepEqual(fake.seen, ["DELETE /v1/tokens/0123456789abcdef?rotate=true"]);
  await assert.rejects(client(fake).revokeToken("../x"), { code: "E_USAGE" });
  assert.equal(fake.seen.length, 1, "a bad id never leaves");
});

test("an answer of the wrong shape is E_PROVIDER naming the field", async (t) => {
  const fake = await fakeServer(t);
  const rotation = client(fake);
  await rotation.setPolicy("app/key", { generate: { charset: "alnum", length: 8 } });
  fake.fail = "shape";
  await assert.rejects(rotation.rotateNow("app/key"), (err: CofferError) => err.code === "E_PROVIDER" && /without a usable "version"/.test(err.message));
  fake.policies.set("bad", { ...fake.policies.get("app/key")!, generate: { charset: "emoji" as "alnum", length: 3 } });
  await assert.rejects(rotation.listPolicies(), (err: CofferError) => err.code === "E_PROVIDER" && /generate\.charset/.test(err.message));
});

test("parsePostgresApply splits CONNECTION_SECRET:ROLE at the last colon and refuses an empty part", () => {
  assert.deepEqual(parsePostgresApply("db/admin-url:app_user"), { postgres: { connection: "db/admin-url", role: "app_user" } });
  for (const bad of ["db/admin", ":role", "db/admin:", ""]) assert.throws(() => parsePostgresApply(bad), { code: "E_USAGE" });
});
