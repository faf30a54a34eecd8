import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { coalesce } from "../../src/core/coalesce.ts";

test("coalesce: a burst of signals becomes one run after the delay", async () => {
  let runs = 0;
  const c = coalesce(() => void runs++, 30);
  for (let i = 0; i < 10; i++) c.trigger();
  await sleep(10);
  c.trigger(); // resets the settle time
  assert.equal(runs, 0);
  await sleep(80);
  assert.equal(runs, 1);
  c.stop();
});

test("coalesce: runs never overlap; signals during a run earn exactly one more run", async () => {
  let active = 0;
  let most = 0;
  let runs = 0;
  const c = coalesce(async () => {
    runs++;
    most = Math.max(most, ++active);
    await sleep(40);
    active--;
  });
  c.trigger();
  await sleep(5);
  for (let i = 0; i < 5; i++) c.trigger();
  await sleep(150);
  assert.equal(most, 1);
  assert.equal(runs, 2);
  c.stop();
});

test("coalesce: a retry asked for during a run waits its delay; stop() cancels what is pending", async () => {
  const at: number[] = [];
  const start = Date.now();
  const c = coalesce(() => {
    at.push(Date.now() - start);
    if (at.length === 1) c.trigger(60);
  });
  c.trigger();
  await sleep(20);
  assert.equal(at.length, 1);
  await sleep(80);
  assert.equal(at.length, 2);
  assert.ok(at[1]! >= 55, `the retry came after ${at[1]} ms`);
  c.trigger(30);
  c.stop();
  c.every(5);
  await sleep(60);
  assert.equal(at.length, 2, "nothing runs after stop()");
});

test("coalesce: every() looks periodically until its stop", async () => {
  let runs = 0;
  const c = coalesce(() => void runs++);
  const stopTicks = c.every(15);
  await sleep(70);
  stopTicks();
  const seen = runs;
  assert.ok(seen >= 2, `ran ${seen} times`);
  await sleep(50);
  assert.equal(runs, seen);
  c.stop();
});
