import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { randomUUID } from "node:crypto";
import {
  createChangeBus, createMemoryBus, createPostgresBus, createRedisBus, toChangeEvent,
  type ChangeBus, type ChangeEvent,
} from "../../src/server/changes.ts";
import { postgresUrl, redisUrl } from "../services.ts";

function event(name: string, version: number | null = 1, action: ChangeEvent["action"] = "write"): ChangeEvent {
  return { name, version, action, at: new Date().toISOString() };
}

/** The next `n` events the bus delivers (rejects after `ms`). */
function collect(bus: ChangeBus, n: number, ms = 2000): Promise<ChangeEvent[]> {
  const got: ChangeEvent[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`got ${got.length} of ${n} events within ${ms} ms: ${JSON.stringify(got)}`));
    }, ms);
    const stop = bus.subscribe((e) => {
      got.push(e);
      if (got.length === n) {
        clearTimeout(timer);
        stop();
        resolve(got);
      }
    });
  });
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Two buses of one transport (two "instances"): a publish on one reaches the other. */
async function acrossInstances(t: TestContext, make: () => Promise<ChangeBus>): Promise<void> {
  const a = await make();
  t.after(() => a.close());
  const b = await make();
  t.after(() => b.close());
  await until(() => a.healthy() && b.healthy());
  const name = `app/${randomUUID()}`;
  const onB = collect(b, 2);
  const onA = collect(a, 2);
  const started = Date.now();
  await a.publish(event(name, 3));
  await a.publish(event(name, 3, "delete"));
  const got = await onB;
  assert.ok(Date.now() - started < 15_000, "delivered, not left to a poll");
  assert.deepEqual(got.map((e) => [e.name, e.version, e.action]), [[name, 3, "write"], [name, 3, "delete"]]);
  assert.equal((await onA).length, 2, "the publisher's own instance hears it too");
}

describe("change buses", () => {
  test("events are validated: only the four fields, malformed ones ignored", () => {
    const e = event("app/x");
    assert.deepEqual(toChangeEvent({ ...e, value: "SECRET", extra: 1 }), e);
    assert.equal(toChangeEvent({ ...e, name: "../etc" }), undefined);
    assert.equal(toChangeEvent({ ...e, version: -1 }), undefined);
    assert.equal(toChangeEvent({ ...e, version: "2" }), undefined);
    assert.equal(toChangeEvent({ ...e, action: "read" }), undefined);
    assert.equal(toChangeEvent({ ...e, at: "yesterday" }), undefined);
    assert.equal(toChangeEvent([e]), undefined);
    assert.equal(toChangeEvent(null), undefined);
    assert.deepEqual(toChangeEvent({ ...e, version: null }), { ...e, version: null });
  });

  test("memory: subscribers get events until they unsubscribe; a throwing listener breaks no other", async () => {
    const bus = createMemoryBus();
    assert.equal(bus.kind, "memory");
    assert.ok(bus.healthy());
    const got: string[] = [];
    bus.subscribe(() => {
      throw new Error("boom");
    });
    const stop = bus.subscribe((e) => got.push(e.name));
    await bus.publish(event("a"));
    stop();
    await bus.publish(event("b"));
    assert.deepEqual(got, ["a"]);
    await bus.close();
    assert.equal((await createChangeBus({})).kind, "memory");
  });

  test("redis: a publish on one instance reaches the other within a second", async (t) => {
    await acrossInstances(t, async () => createRedisBus(await redisUrl()));
  });

  test("redis: buses of another scope (deployment) do not hear each other", async (t) => {
    const a = await createRedisBus(await redisUrl(), { scope: "deployment-a" });
    t.after(() => a.close());
    const b = await createRedisBus(await redisUrl(), { scope: "deployment-b" });
    t.after(() => b.close());
    const a2 = await createRedisBus(await redisUrl(), { scope: "deployment-a" });
    t.after(() => a2.close());
    await until(() => a.healthy() && b.healthy() && a2.healthy());
    const heardByB: ChangeEvent[] = [];
    b.subscribe((e) => heardByB.push(e));
    const got = collect(a2, 1);
    await a.publish(event("app/scoped"));
    assert.equal((await got)[0]!.name, "app/scoped");
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(heardByB, []);
  });

  test("redis: malformed messages on the channel are ignored", async (t) => {
    const bus = await createRedisBus(await redisUrl());
    t.after(() => bus.close());
    await until(() => bus.healthy());
    const { Redis } = await import("ioredis");
    const raw = new Redis(await redisUrl());
    t.after(() => raw.disconnect());
    const got = collect(bus, 1);
    await raw.publish("coffer:changes", "not json");
    await raw.publish("coffer:changes", JSON.stringify({ name: "app/x", version: 1, action: "explode", at: new Date().toISOString() }));
    await raw.publish("coffer:changes", JSON.stringify({ ...event("app/ok"), value: "SECRET" }));
    const [e] = await got;
    assert.equal(e!.name, "app/ok");
    assert.ok(!("value" in e!));
  });

  test("a revocation reaches every instance, and a forged one naming no token id is ignored", async (t) => {
    const a = await createRedisBus(await redisUrl());
    t.after(() => a.close());
    const b = await createRedisBus(await redisUrl());
    t.after(() => b.close());
    await until(() => a.healthy() && b.healthy());
    const onA: string[] = [];
    const onB: string[] = [];
    a.onRevocation((id) => onA.push(id));
    b.onRevocation((id) => onB.push(id));
    const changes: ChangeEvent[] = [];
    b.subscribe((e) => changes.push(e));
    const { Redis } = await import("ioredis");
    const raw = new Redis(await redisUrl());
    t.after(() => raw.disconnect());
    await raw.publish("coffer:changes", JSON.stringify({ revoked: "../../etc", at: new Date().toISOString() }));
    await raw.publish("coffer:changes", JSON.stringify({ revoked: 42 }));
    await a.publishRevocation("0123456789abcdef");
    assert.deepEqual(onA.slice(0, 1), ["0123456789abcdef"], "the publishing instance hears it at once");
    await until(() => onB.length > 0);
    assert.deepEqual(onB, ["0123456789abcdef"]);
    assert.deepEqual(changes, [], "a revocation is not a change event");
    const memory = createMemoryBus();
    const heard: string[] = [];
    memory.onRevocation((id) => heard.push(id));
    await memory.publishRevocation("fedcba9876543210");
    await memory.publishRevocation("not-an-id");
    assert.deepEqual(heard, ["fedcba9876543210"]);
  });

  test("a roles change reaches the other instances, is no change event, and a malformed one is ignored", async (t) => {
    const a = await createRedisBus(await redisUrl());
    t.after(() => a.close());
    const b = await createRedisBus(await redisUrl());
    t.after(() => b.close());
    await until(() => a.healthy() && b.healthy());
    let heard = 0;
    b.onRolesChanged(() => heard++);
    const changes: ChangeEvent[] = [];
    b.subscribe((e) => changes.push(e));
    const { Redis } = await import("ioredis");
    const raw = new Redis(await redisUrl());
    t.after(() => raw.disconnect());
    await raw.publish("coffer:changes", JSON.stringify({ roles: "dropped" }));
    await a.publishRolesChanged();
    await until(() => heard > 0);
    assert.equal(heard, 1);
    assert.deepEqual(changes, [], "a roles change is not a change event");
  });

  test("redis: the subscriber resubscribes after its connection is killed", async (t) => {
    const bus = await createRedisBus(await redisUrl());
    t.after(() => bus.close());
    await until(() => bus.healthy());
    const { Redis } = await import("ioredis");
    const admin = new Redis(await redisUrl());
    t.after(() => admin.disconnect());
    await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
    await until(() => !bus.healthy(), 3000);
    await until(() => bus.healthy(), 5000);
    const got = collect(bus, 1);
    await bus.publish(event("app/after"));
    assert.equal((await got)[0]!.name, "app/after");
  });

  test("redis: an unreachable server neither throws nor hangs; healthy() is false; publish does not throw", async (t) => {
    const errors: Error[] = [];
    const started = Date.now();
    const bus = await createChangeBus({ redis: "redis://127.0.0.1:1" }, { onError: (e) => errors.push(e) });
    t.after(() => bus.close());
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms: must not hang`);
    assert.equal(bus.kind, "redis");
    assert.equal(bus.healthy(), false);
    await bus.publish(event("app/x"));
    assert.ok(errors.length > 0);
    assert.ok(errors.every((e) => !e.message.includes("127.0.0.1:1")), "no URL in errors");
    const closing = Date.now();
    await bus.close();
    assert.ok(Date.now() - closing < 1500);
  });

  test("postgres: a publish on one instance reaches the other within a second", async (t) => {
    await acrossInstances(t, async () => createPostgresBus(await postgresUrl()));
  });

  test("postgres: the listener reconnects after its connection is killed (unhealthy meanwhile)", async (t) => {
    const bus = await createChangeBus({ database: await postgresUrl() });
    t.after(() => bus.close());
    assert.equal(bus.kind, "postgres");
    await until(() => bus.healthy());
    const pg = (await import("pg")).default;
    const admin = new pg.Client({ connectionString: await postgresUrl() });
    await admin.connect();
    t.after(() => admin.end());
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'coffer-listen' AND pid <> pg_backend_pid()");
    await until(() => !bus.healthy(), 3000);
    await until(() => bus.healthy(), 5000);
    const got = collect(bus, 1);
    await bus.publish(event("app/after"));
    assert.equal((await got)[0]!.name, "app/after");
  });

  test("postgres: an unreachable database neither throws nor hangs", async (t) => {
    const started = Date.now();
    const bus = await createChangeBus({ database: "postgres://postgres@127.0.0.1:1/postgres" });
    t.after(() => bus.close());
    assert.ok(Date.now() - started < 15_000, "must not hang");
    assert.equal(bus.healthy(), false);
    await bus.publish(event("app/x"));
  });
});
