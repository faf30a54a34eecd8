import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { runWatching } from "../../src/deliver/run.ts";
import type { ResolvedPlan } from "../../src/deliver/resolve.ts";
import { Secret } from "../../src/core/secret.ts";
import { CofferError } from "../../src/errors.ts";

function plan(values: Record<string, string>): ResolvedPlan {
  return {
    env: Object.entries(values).map(([variable, v]) => ({ variable, value: new Secret({ name: variable.toLowerCase(), version: 1, updatedAt: new Date().toISOString() }, Buffer.from(v)) })),
    files: [],
  };
}

/** A runWatching whose changes and resolutions the test drives. */
function harness(script: string, next: () => Promise<ResolvedPlan>, graceMs = 2000) {
  let notify: () => void = () => {};
  const said: string[] = [];
  let out = "";
  const stdout = new PassThrough();
  stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const done = runWatching({
    command: "sh",
    args: ["-c", script],
    resolved: plan({ A: "one", B: "same" }),
    resolve: next,
    watch: (onChange) => {
      notify = onChange;
      return () => (notify = () => {});
    },
    baseEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    masker: () => () => new PassThrough(), // pipes the output through, so the test can read it
    stdout,
    stderr: new PassThrough(),
    debounceMs: 20,
    graceMs,
    say: (m) => said.push(m),
  });
  const until = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out; out=${JSON.stringify(out)} said=${JSON.stringify(said)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { done, said, out: () => out, change: () => notify(), until };
}

test("runWatching: a change restarts the command with the new values, naming only the changed variables", async () => {
  const values = [plan({ A: "two", B: "same" }), plan({ A: "three", B: "same" })];
  const h = harness('echo "A=$A B=$B"; [ "$A" = three ] && exit 4; exec sleep 30', async () => values.shift()!);
  await h.until(() => h.out().includes("A=one B=same"));
  h.change();
  h.change(); // debounced: one resolve
  await h.until(() => h.out().includes("A=two B=same"));
  assert.deepEqual(h.said, ["coffer: secrets changed (A): restarting sh"]);
  h.change();
  assert.equal(await h.done, 4);
  assert.ok(h.out().includes("A=three"));
  assert.ok(!h.said.join("").includes("two"), "no value in messages");
});

test("runWatching: a change notice with the same values does not restart; a failed resolve keeps the command and warns", async () => {
  const results: (() => Promise<ResolvedPlan>)[] = [
    async () => plan({ A: "one", B: "same" }),
    async () => {
      throw new CofferError("E_UNAVAILABLE", "server down");
    },
    async () => plan({ A: "final", B: "same" }),
  ];
  const h = harness('echo "start A=$A"; [ "$A" = final ] && exit 0; exec sleep 30', () => results.shift()!());
  await h.until(() => h.out().includes("start A=one"));
  h.change();
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(h.said, []);
  h.change();
  await h.until(() => h.said.length === 1);
  assert.match(h.said[0]!, /resolving again failed; sh keeps its current values: server down/);
  assert.equal(h.out().match(/start/g)!.length, 1, "not restarted");
  h.change();
  assert.equal(await h.done, 0);
});

test("runWatching: a command that ignores SIGTERM is killed after the grace period", async () => {
  const h = harness('trap "" TERM; echo "A=$A"; [ "$A" = two ] && exit 0; while :; do sleep 0.05; done', async () => plan({ A: "two", B: "same" }), 300);
  await h.until(() => h.out().includes("A=one"));
  const started = Date.now();
  h.change();
  assert.equal(await h.done, 0);
  assert.ok(Date.now() - started >= 300, "waited for the grace period");
});
