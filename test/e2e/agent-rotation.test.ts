/**
 * A rotation reaches a running `coffer agent --watch` through the server's change push: the real
 * CLI serves (`coffer serve`, a subprocess) and runs the agent against it; a rotation started
 * over the API lands in the agent's file. The bound is 2 s; the test waits for the file
 * with a generous limit (speed is measured in bench/, never asserted here).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { fileNameOf } from "../../src/agent/config.ts";
import { CLI, serveAppServer, userEnv } from "./run-cli.ts";

async function api(url: string, token: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function until(what: string, ms: number, probe: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("coffer agent --watch on the server provider writes a rotated value soon after the rotation", { timeout: 90_000 }, async (t) => {
  const home = tempDir(t);
  const s = await serveAppServer(t, home);
  const name = "app/db/password";
  await api(s.url, s.root, "PUT", `/v1/secrets/${name}`, { value: "before-rotation-value" });
  await api(s.url, s.root, "PUT", `/v1/rotation/${name}`, { generate: { charset: "alnum", length: 24 } });
  const token = (await api(s.url, s.root, "POST", "/v1/tokens", { name: "agent", roles: ["app"] })).token as string;

  const out = join(tempDir(t), "out");
  const file = join(out, fileNameOf(name));
  const agent = spawn(process.execPath, [CLI, "agent", "--provider", `server:${s.url}`, "--dir", out, "--secrets", name, "--watch", "--on-change", "none"], {
    env: userEnv(home, { COFFER_TOKEN: token }),
  });
  t.after(() => agent.kill("SIGKILL"));
  let output = "";
  agent.stdout.on("data", (d: Buffer) => (output += d.toString()));
  agent.stderr.on("data", (d: Buffer) => (output += d.toString()));
  await until("the agent's first file", 20_000, () => existsSync(file) && readFileSync(file, "utf8") === "before-rotation-value");
  // The watch stream opens right after the first write; give it a moment (a change before would be polled anyway).
  await new Promise((r) => setTimeout(r, 500));

  const rotated = await api(s.url, s.root, "POST", `/v1/rotation/${name}`);
  assert.equal(rotated.version, 2);
  const value = (await api(s.url, s.root, "GET", `/v1/secrets/${name}`)).value as string;
  assert.match(value, /^[A-Za-z0-9]{24}$/);
  await until("the rotated value in the agent's file", 10_000, () => readFileSync(file, "utf8") === value);
  assert.ok(!output.includes(value) && !output.includes("before-rotation-value"), "no value in the agent's output");
});
