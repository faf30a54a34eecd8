import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import type { JwtConfig } from "../../src/server/config.ts";
import { Authenticator } from "../../src/server/auth.ts";
import type { ServerStorage } from "../../src/storage/types.ts";
import {
  CLOCK_SKEW_SECONDS,
  createJwtVerifier,
  JwtError,
  looksLikeJwt,
  type JwtFailureReason,
  type JwtVerifier,
} from "../../src/server/jwt.ts";

const ISSUER = "https://idp.example.test/realms/ops";
const AUDIENCE = "coffer";
const SECRET = "s3cr3t-for-tests-only-0123456789abcdef";
/** 2026-01-01T00:00:00Z, the frozen clock of every test. */
const NOW = 1_767_225_600;

const HS_CONFIG: JwtConfig = { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, rolesClaim: "roles", algorithms: ["HS256"] };

function freeze(t: TestContext): void {
  t.mock.timers.enable({ apis: ["Date"], now: NOW * 1000 });
}

/** A JWT with sane defaults; `claims` overrides or (with undefined) removes them. */
async function sign(
  key: CryptoKey | Uint8Array,
  alg: string,
  claims: Record<string, unknown> = {},
  kid?: string,
): Promise<string> {
  const payload: JWTPayload = {
    iss: ISSUER, aud: AUDIENCE, sub: "alice", iat: NOW, exp: NOW + 300, roles: ["app", "ops"], ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload).setProtectedHeader(kid === undefined ? { alg, typ: "JWT" } : { alg, typ: "JWT", kid }).sign(key);
}

const hsKey = (secret = SECRET): Uint8Array => new TextEncoder().encode(secret);

/** Asserts a refusal with the given reason whose message never carries the token or a claim value. */
async function refused(verifier: JwtVerifier, token: string, reason: JwtFailureReason | JwtFailureReason[], message?: RegExp): Promise<void> {
  const reasons = Array.isArray(reason) ? reason : [reason];
  await assert.rejects(verifier.verify(token), (err: unknown) => {
    assert.ok(err instanceof JwtError, `expected a JwtError, got ${String(err)}`);
    assert.equal(err.code, "E_UNAUTHENTICATED");
    assert.equal(err.httpStatus, 401);
    assert.ok(reasons.includes(err.reason), `reason ${err.reason}, expected ${reasons.join(" or ")}`);
    if (message !== undefined) assert.match(err.message, message);
    assert.ok(!err.message.includes(token), "the message carries the token");
    for (const part of token.split(".")) if (part.length > 0) assert.ok(!err.message.includes(part), "the message carries a token part");
    for (const value of ["alice", "mallory", ISSUER, "app", "ops"]) assert.ok(!err.message.includes(value), `the message carries ${value}`);
    assert.equal(err.cause, undefined, "the cause (jose's error, with the payload) is not kept");
    return true;
  });
}

test("HS256: a valid token is accepted with its subject, roles, expiry and issuer", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  const claims = await verifier.verify(await sign(hsKey(), "HS256"));
  const { claims: payload, ...rest } = claims;
  assert.deepEqual(rest, { subject: "alice", roles: ["app", "ops"], expiresAt: new Date((NOW + 300) * 1000), issuer: ISSUER });
  assert.deepEqual({ ...payload }, { iss: ISSUER, aud: AUDIENCE, sub: "alice", iat: NOW, exp: NOW + 300, roles: ["app", "ops"] });
});

test("roles: nested (Keycloak realm_access.roles), namespaced top-level, space-separated, absent", async (t) => {
  freeze(t);
  const nested = await createJwtVerifier({ ...HS_CONFIG, rolesClaim: "realm_access.roles" });
  const token = await sign(hsKey(), "HS256", { roles: undefined, realm_access: { roles: ["reader", "writer", "reader"] } });
  assert.deepEqual((await nested.verify(token)).roles, ["reader", "writer"]);
  assert.deepEqual((await nested.verify(await sign(hsKey(), "HS256", { realm_access: "x" }))).roles, []);
  assert.deepEqual((await nested.verify(await sign(hsKey(), "HS256", { realm_access: ["roles"] }))).roles, []);

  const namespaced = await createJwtVerifier({ ...HS_CONFIG, rolesClaim: "https://coffer.example/roles" });
  assert.deepEqual((await namespaced.verify(await sign(hsKey(), "HS256", { "https://coffer.example/roles": ["ops"] }))).roles, ["ops"]);

  const scope = await createJwtVerifier({ ...HS_CONFIG, rolesClaim: "scope" });
  assert.deepEqual((await scope.verify(await sign(hsKey(), "HS256", { scope: "read  write" }))).roles, ["read", "write"]);
  assert.deepEqual((await scope.verify(await sign(hsKey(), "HS256", {}))).roles, []);

  const single = await createJwtVerifier(HS_CONFIG);
  assert.deepEqual((await single.verify(await sign(hsKey(), "HS256", { roles: "ops" }))).roles, ["ops"]);
});

test("roles: a claim that is not strings is refused, and a path never reaches Object.prototype", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  for (const roles of [["ops", 1], { root: true }, 7, [["ops"]]]) {
    await refused(verifier, await sign(hsKey(), "HS256", { roles }), "claims", /roles claim is neither a string nor a list of strings/);
  }
  for (const rolesClaim of ["__proto__", "constructor", "toString", "__proto__.constructor", "a.__proto__"]) {
    const v = await createJwtVerifier({ ...HS_CONFIG, rolesClaim });
    assert.deepEqual((await v.verify(await sign(hsKey(), "HS256", { a: {} }))).roles, [], rolesClaim);
  }
});

test("attack: an unsigned token (alg none) is refused, whatever the case of 'none'", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  const payload = { iss: ISSUER, aud: AUDIENCE, sub: "mallory", exp: NOW + 300, roles: ["root"] };
  for (const alg of ["none", "None", "NONE"]) {
    const token = `${b64({ alg, typ: "JWT" })}.${b64(payload)}.`;
    assert.ok(looksLikeJwt(token));
    await refused(verifier, token, ["algorithm", "malformed"]);
  }
});

test("expiry: exp 2 minutes ago is refused, exp 30 s ago is within the clock skew", async (t) => {
  freeze(t);
  assert.equal(CLOCK_SKEW_SECONDS, 60);
  const verifier = await createJwtVerifier(HS_CONFIG);
  await refused(verifier, await sign(hsKey(), "HS256", { exp: NOW - 120 }), "expired", /^the JWT has expired$/);
  assert.equal((await verifier.verify(await sign(hsKey(), "HS256", { exp: NOW - 30 }))).subject, "alice");
});

test("not before: nbf in 2 minutes is refused, nbf in 30 s is within the clock skew", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  await refused(verifier, await sign(hsKey(), "HS256", { nbf: NOW + 120 }), "not_yet_valid", /^the JWT is not yet valid$/);
  assert.equal((await verifier.verify(await sign(hsKey(), "HS256", { nbf: NOW + 30 }))).subject, "alice");
});

test("audience and issuer must be the configured ones", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  await refused(verifier, await sign(hsKey(), "HS256", { aud: "another-service" }), "audience", /^the JWT's audience is not the configured one$/);
  await refused(verifier, await sign(hsKey(), "HS256", { aud: undefined }), "audience");
  assert.equal((await verifier.verify(await sign(hsKey(), "HS256", { aud: ["other", AUDIENCE] }))).subject, "alice");
  await refused(verifier, await sign(hsKey(), "HS256", { iss: "https://evil.example.test" }), "issuer", /^the JWT's issuer is not the configured one$/);
  await refused(verifier, await sign(hsKey(), "HS256", { iss: undefined }), "issuer");
});

test("no eternal JWTs: a token without exp, or without sub, is refused", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  await refused(verifier, await sign(hsKey(), "HS256", { exp: undefined }), "claims", /^the JWT has no sub\/exp claim$/);
  await refused(verifier, await sign(hsKey(), "HS256", { sub: undefined }), "claims", /^the JWT has no sub\/exp claim$/);
  await refused(verifier, await sign(hsKey(), "HS256", { sub: "" }), "claims");
  await refused(verifier, await sign(hsKey(), "HS256", { sub: 42 }), "claims");
  await refused(verifier, await sign(hsKey(), "HS256", { sub: "alice\nforged audit line" }), "claims");
  await refused(verifier, await sign(hsKey(), "HS256", { sub: "a".repeat(257) }), "claims");
  await refused(verifier, await sign(hsKey(), "HS256", { exp: "tomorrow" }), ["claims", "malformed"]);
});

test("a token signed with another secret is refused as a bad signature", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  await refused(verifier, await sign(hsKey("another-secret-of-at-least-32-bytes!!"), "HS256"), "signature", /^the JWT's signature does not verify$/);
  const good = await sign(hsKey(), "HS256");
  const [h, p, s] = good.split(".") as [string, string, string];
  const flipped = `${s.slice(0, -2)}${s.at(-2) === "A" ? "B" : "A"}${s.at(-1)}`;
  await refused(verifier, `${h}.${p}.${flipped}`, "signature");
  // A payload swapped under a valid signature.
  const other = (await sign(hsKey(), "HS256", { sub: "mallory", roles: ["root"] })).split(".")[1];
  await refused(verifier, `${h}.${other}.${s}`, "signature");
});

test("order of checks: the signature is verified before expiry and claims are looked at", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  const forged = await sign(hsKey("another-secret-of-at-least-32-bytes!!"), "HS256", { exp: NOW - 3600, iss: "x", aud: "y" });
  await refused(verifier, forged, "signature");
});

test("an HS256 token for a verifier pinned to HS512 is refused as an algorithm not allowed", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier({ ...HS_CONFIG, algorithms: ["HS512"] });
  await refused(verifier, await sign(hsKey(), "HS256"), "algorithm", /^the JWT's algorithm is not allowed$/);
});

test("garbage bearer strings are refused as malformed", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  for (const token of ["a.b.c", "e30.e30.", "x".repeat(20_000), "not a jwt", "", "a.b", `${Buffer.from("{}").toString("base64url")}.e30.AAAA`]) {
    await assert.rejects(verifier.verify(token), (err: unknown) => err instanceof JwtError && ["malformed", "algorithm"].includes(err.reason));
  }
});

/** Writes `jwks` into a fresh temp dir removed after the test. */
async function jwksFile(t: TestContext, jwks: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "coffer-jwt-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "jwks.json");
  await writeFile(file, JSON.stringify(jwks), { mode: 0o600 });
  return file;
}

async function publicJwk(key: CryptoKey, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(key)), kid, alg, use: "sig" };
}

test("jwksFile: RS256 and EdDSA tokens verify against a key set read once at start", async (t) => {
  freeze(t);
  const rsa = await generateKeyPair("RS256");
  const ed = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const ps = await generateKeyPair("PS256");
  const file = await jwksFile(t, {
    keys: [
      await publicJwk(rsa.publicKey, "rsa-1", "RS256"),
      await publicJwk(ed.publicKey, "ed-1", "EdDSA"),
      await publicJwk(ps.publicKey, "ps-1", "PS256"),
    ],
  });
  const verifier = await createJwtVerifier({ jwksFile: file, issuer: ISSUER, audience: AUDIENCE, rolesClaim: "roles", algorithms: ["RS256", "EdDSA"] });
  assert.equal((await verifier.verify(await sign(rsa.privateKey, "RS256", {}, "rsa-1"))).subject, "alice");
  assert.deepEqual((await verifier.verify(await sign(ed.privateKey, "EdDSA", {}, "ed-1"))).roles, ["app", "ops"]);

  // Read once: the file disappearing later changes nothing.
  await rm(file);
  assert.equal((await verifier.verify(await sign(rsa.privateKey, "RS256", {}, "rsa-1"))).subject, "alice");

  // A key that is not in the set, under a known or an unknown kid.
  const stranger = await generateKeyPair("RS256");
  await refused(verifier, await sign(stranger.privateKey, "RS256", {}, "rsa-1"), "signature");
  await refused(verifier, await sign(stranger.privateKey, "RS256", {}, "rsa-2"), "jwks", /^the JWT's signing key is not in the configured key set$/);
  // A key in the set, but for an algorithm the config does not allow.
  await refused(verifier, await sign(ps.privateKey, "PS256", {}, "ps-1"), "algorithm");
});

test("attack: algorithm confusion, an HS256 token keyed with the RSA public key, is refused by a JWKS verifier", async (t) => {
  freeze(t);
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const file = await jwksFile(t, { keys: [await publicJwk(rsa.publicKey, "rsa-1", "RS256")] });
  const verifier = await createJwtVerifier({ jwksFile: file, issuer: ISSUER, audience: AUDIENCE, rolesClaim: "roles", algorithms: ["RS256"] });
  // The classic attack: HMAC with the public key's PEM (or its JWK "n") as the shared secret.
  const pem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
  await refused(verifier, await sign(pem, "HS256", { roles: ["root"] }, "rsa-1"), "algorithm");
  await refused(verifier, await sign(pem, "HS256", { roles: ["root"] }), "algorithm");
});

test("jwksUrl: ES256 tokens verify against a key set served over http on loopback", async (t) => {
  freeze(t);
  const ec = await generateKeyPair("ES256");
  const body = JSON.stringify({ keys: [await publicJwk(ec.publicKey, "ec-1", "ES256")] });
  let fetches = 0;
  const server = createServer((req, res) => {
    fetches++;
    if (req.url !== "/jwks.json") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  const base = `http://127.0.0.1:${address.port}`;
  const config = { issuer: ISSUER, audience: AUDIENCE, rolesClaim: "roles", algorithms: ["ES256"] };

  const verifier = await createJwtVerifier({ ...config, jwksUrl: `${base}/jwks.json` });
  assert.equal((await verifier.verify(await sign(ec.privateKey, "ES256", {}, "ec-1"))).subject, "alice");
  assert.equal((await verifier.verify(await sign(ec.privateKey, "ES256", { sub: "bob" }, "ec-1"))).subject, "bob");
  assert.equal(fetches, 1, "the key set is cached");
  const stranger = await generateKeyPair("ES256");
  await refused(verifier, await sign(stranger.privateKey, "ES256", {}, "ec-1"), "signature");

  // A key set that cannot be fetched fails closed.
  const broken = await createJwtVerifier({ ...config, jwksUrl: `${base}/missing.json` });
  await refused(broken, await sign(ec.privateKey, "ES256", {}, "ec-1"), "jwks", /could not be fetched/);
});

test("config: the key source, the algorithms and the key set are checked at start", async (t) => {
  const base = { issuer: ISSUER, audience: AUDIENCE, rolesClaim: "roles" };
  const bad: Array<[JwtConfig, RegExp]> = [
    [{ ...base, algorithms: ["HS256"] }, /exactly one of secret, jwksFile and jwksUrl/],
    [{ ...base, secret: SECRET, jwksUrl: "https://idp.example.test/jwks", algorithms: ["HS256"] }, /exactly one/],
    [{ ...base, secret: "", algorithms: ["HS256"] }, /secret is empty/],
    [{ ...base, secret: SECRET, algorithms: [] }, /algorithms: must not be empty/],
    [{ ...base, secret: SECRET, algorithms: ["none"] }, /"none" is refused/],
    [{ ...base, secret: SECRET, algorithms: ["RS256"] }, /RS256 needs a key set/],
    [{ ...base, jwksUrl: "https://idp.example.test/jwks", algorithms: ["HS256"] }, /HS256 needs secret/],
    [{ ...base, jwksUrl: "https://idp.example.test/jwks", algorithms: ["RS256", "none"] }, /"none" is refused/],
    [{ ...base, jwksUrl: "http://idp.example.test/jwks", algorithms: ["RS256"] }, /must be https/],
    [{ ...base, jwksUrl: "http://10.0.0.1/jwks", algorithms: ["RS256"] }, /must be https/],
    [{ ...base, jwksUrl: "http://127.0.0.1.nip.io/jwks", algorithms: ["RS256"] }, /must be https/],
    [{ ...base, jwksUrl: "ftp://idp.example.test/jwks", algorithms: ["RS256"] }, /must be https/],
    [{ ...base, jwksUrl: "https://user:pw@idp.example.test/jwks", algorithms: ["RS256"] }, /credentials/],
    [{ ...base, jwksUrl: "not a url", algorithms: ["RS256"] }, /not a URL/],
    [{ ...base, jwksFile: "/nonexistent/coffer/jwks.json", algorithms: ["RS256"] }, /cannot read jwksFile .*ENOENT/],
    [{ ...base, secret: SECRET, algorithms: ["HS256"], issuer: "" }, /issuer is required/],
  ];
  for (const [config, message] of bad) {
    await assert.rejects(createJwtVerifier(config), { code: "E_CONFIG", message }, JSON.stringify(config));
  }
  for (const url of ["http://localhost:8200/jwks", "http://[::1]:8200/jwks", "http://127.0.0.2/jwks", "https://idp.example.test/jwks"]) {
    await createJwtVerifier({ ...base, jwksUrl: url, algorithms: ["RS256"] });
  }

  const rsa = await generateKeyPair("RS256", { extractable: true });
  const files: Array<[unknown, RegExp]> = [
    [{ keys: [] }, /with at least one key/],
    [[], /with at least one key/],
    [{ keys: [await exportJWK(rsa.privateKey)] }, /private or symmetric key/],
    [{ keys: [{ kty: "oct", k: "c2VjcmV0" }] }, /private or symmetric key/],
  ];
  for (const [content, message] of files) {
    const file = await jwksFile(t, content);
    await assert.rejects(createJwtVerifier({ ...base, jwksFile: file, algorithms: ["RS256"] }), { code: "E_CONFIG", message });
  }
  const notJson = await jwksFile(t, "");
  await writeFile(notJson, "{not json");
  await assert.rejects(createJwtVerifier({ ...base, jwksFile: notJson, algorithms: ["RS256"] }), { code: "E_CONFIG", message: /is not JSON/ });
});

test("looksLikeJwt: three base64url parts, never a cof_ token", () => {
  assert.equal(looksLikeJwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"), true);
  assert.equal(looksLikeJwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."), true);
  for (const token of ["cof_" + "A".repeat(43), "cof_a.b.c", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.c=", "a b.c.d", "", "x".repeat(20_000) + ".a.b"]) {
    assert.equal(looksLikeJwt(token), false, token.slice(0, 40));
  }
});

test("a JWT that never expires (exp 1e300) is refused, never turned into an invalid date", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  await refused(verifier, await sign(hsKey(), "HS256", { exp: 1e300 }), "lifetime", /jwt\.maxLifetime/);
  await refused(verifier, await sign(hsKey(), "HS256", { exp: 1e300, iat: 1e300 - 10 }), "lifetime");
  await refused(verifier, await sign(hsKey(), "HS256", { exp: 1e300, iat: undefined }), "lifetime");
});

test("a JWT living longer than jwt.maxLifetime is refused, counted from iat or else from now", async (t) => {
  freeze(t);
  const day = 24 * 3600;
  const verifier = await createJwtVerifier(HS_CONFIG); // the default: 24 h
  assert.equal((await verifier.verify(await sign(hsKey(), "HS256", { iat: NOW - 60, exp: NOW + day - 120 }))).subject, "alice");
  await refused(verifier, await sign(hsKey(), "HS256", { iat: NOW - 60, exp: NOW + day }), "lifetime");
  await refused(verifier, await sign(hsKey(), "HS256", { iat: undefined, exp: NOW + day + 60 }), "lifetime");
  assert.equal((await verifier.verify(await sign(hsKey(), "HS256", { iat: undefined, exp: NOW + day - 60 }))).subject, "alice");
  // An iat in the future does not stretch the limit.
  await refused(verifier, await sign(hsKey(), "HS256", { iat: NOW + day, exp: NOW + day + 3600 }), "lifetime");

  const short = await createJwtVerifier({ ...HS_CONFIG, maxLifetimeMs: 600_000 });
  await refused(short, await sign(hsKey(), "HS256", { exp: NOW + 3600 }), "lifetime");
  assert.equal((await short.verify(await sign(hsKey(), "HS256", { exp: NOW + 300 }))).subject, "alice");
});

test("the verified payload is handed on deep-frozen and without prototypes, for runbooks' claim rules", async (t) => {
  freeze(t);
  const verifier = await createJwtVerifier(HS_CONFIG);
  const { claims } = await verifier.verify(await sign(hsKey(), "HS256", { team: ["ops", "dev"], org: { unit: "infra" }, ["__proto__"]: { polluted: true } }));
  assert.deepEqual(claims["team"], ["ops", "dev"]);
  assert.equal((claims["org"] as Record<string, unknown>)["unit"], "infra");
  assert.ok(Object.isFrozen(claims) && Object.isFrozen(claims["team"]) && Object.isFrozen(claims["org"]));
  assert.equal(Object.getPrototypeOf(claims), null);
  assert.equal(Object.getPrototypeOf(claims["org"]), null);
  assert.equal((claims as Record<string, unknown>)["constructor"], undefined, "nothing inherited looks like a claim");
  assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
});

test("a JWT caller's Principal carries the verified claims; root in the roles claim is still dropped", async (t) => {
  freeze(t);
  const auth = new Authenticator({} as ServerStorage, await createJwtVerifier(HS_CONFIG));
  const p = await auth.authenticate(`Bearer ${await sign(hsKey(), "HS256", { team: "ops", roles: ["root", "app"] })}`);
  assert.equal(p.kind, "jwt");
  assert.deepEqual(p.roles, ["app"]);
  assert.equal(p.claims?.["team"], "ops");
  assert.equal(p.claims?.["sub"], "alice");
});
