/**
 * The token cache of auth.ts must never keep a revoked token alive: each test is named after
 * what it prevents. The storage is a stand-in that counts lookups; the bus is a stand-in whose
 * health and revocations the test controls; time moves only when a test moves it.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Authenticator, AuthError, TOKEN_CACHE_MS } from "../../src/server/auth.ts";
import { newToken } from "../../src/server/keys.ts";
import type { ServerStorage, StoredToken } from "../../src/storage/types.ts";

function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ["Date"], now: Date.parse("2026-01-01T00:00:00Z") });
  const made = newToken();
  const row: StoredToken = {
    id: made.id, name: "ci", hash: made.hash, roles: ["reader"], createdAt: "2026-01-01T00:00:00.000Z", createdBy: "test", expiresAt: null, revokedAt: null,
  };
  let lookups = 0;
  let pending: ((row: StoredToken) => void) | undefined;
  let hold = false;
  const storage = {
    findToken: async (): Promise<StoredToken> => {
      lookups++;
      const now = { ...row };
      if (!hold) return now;
      return new Promise((resolve) => (pending = () => resolve(now)));
    },
  } as unknown as ServerStorage;
  let healthy = true;
  const listeners = new Set<(id: string) => void>();
  const bus = {
    healthy: () => healthy,
    onRevocation: (l: (id: string) => void) => (listeners.add(l), () => void listeners.delete(l)),
  };
  const auth = new Authenticator(storage, undefined, bus);
  t.after(() => auth.close());
  const header = `Bearer ${made.token}`;
  return {
    auth,
    header,
    row,
    lookups: () => lookups,
    setHealthy: (h: boolean) => (healthy = h),
    revokeOnBus: () => listeners.forEach((l) => l(row.id)),
    holdLookups: () => (hold = true),
    releaseLookup: () => pending?.(row),
    refused: async () => {
      try {
        await auth.authenticate(header);
        return undefined;
      } catch (err) {
        if (err instanceof AuthError) return err.reason;
        throw err;
      }
    },
  };
}

test("a read does not ask the storage for its token again within the cache's second", async (t) => {
  const c = setup(t);
  await c.auth.authenticate(c.header);
  await c.auth.authenticate(c.header);
  assert.equal(c.lookups(), 1);
});

test("a revoked token is not believed longer than 1 s, even with no revocation event", async (t) => {
  const c = setup(t);
  await c.auth.authenticate(c.header);
  c.row.revokedAt = "2026-01-01T00:00:00.500Z"; // revoked by something that published nothing
  t.mock.timers.tick(TOKEN_CACHE_MS);
  assert.equal(await c.refused(), "revoked");
});

test("a revocation event from another instance drops a cached token at once", async (t) => {
  const c = setup(t);
  await c.auth.authenticate(c.header);
  c.row.revokedAt = "2026-01-01T00:00:00.001Z";
  c.revokeOnBus();
  assert.equal(await c.refused(), "revoked");
  assert.equal(c.lookups(), 2);
});

test("while the change bus is down the cache is bypassed, so a revocation it could not carry still counts", async (t) => {
  const c = setup(t);
  await c.auth.authenticate(c.header);
  c.setHealthy(false);
  await c.auth.authenticate(c.header);
  assert.equal(c.lookups(), 2, "asked the storage although the entry was fresh");
  c.row.revokedAt = "2026-01-01T00:00:00.001Z"; // revoked elsewhere; the event is lost
  assert.equal(await c.refused(), "revoked");
  c.setHealthy(true); // back: nothing from before the outage is believed
  assert.equal(await c.refused(), "revoked");
});

test("a lookup that raced a revocation does not put the token back into the cache", async (t) => {
  const c = setup(t);
  c.holdLookups();
  const racing = c.auth.authenticate(c.header);
  c.revokeOnBus(); // while the storage is still answering with the row read before the revocation
  c.releaseLookup();
  await racing;
  c.row.revokedAt = "2026-01-01T00:00:00.001Z";
  const refused = c.refused();
  c.releaseLookup();
  assert.equal(await refused, "revoked");
});
