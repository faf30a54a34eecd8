/**
 * A real team server on a free loopback port, in this process: a fresh data dir (server init),
 * a config from YAML text, and a small fetch wrapper. Closed after the test.
 */
import { Writable } from "node:stream";
import type { TestContext } from "node:test";
import { tempDir } from "../helpers.ts";
import { parseServerConfig } from "../../src/server/config.ts";
import { initServer, startServer, type RunningServer, type StartOptions } from "../../src/server/server.ts";
import type { ServerConfig } from "../../src/server/config.ts";

export interface TestServer {
  url: string;
  dataDir: string;
  rootToken: string;
  config: ServerConfig;
  server: RunningServer;
  /** every log line the server wrote */
  logs: string[];
  call(method: string, path: string, options?: CallOptions): Promise<Reply>;
  /** creates an API token with these roles (as root) and returns it */
  token(roles: string[], name?: string): Promise<string>;
}

export interface CallOptions {
  token?: string;
  /** JSON-encoded unless a string (sent as is) */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** the parsed JSON body, or undefined */
  json: any;
}

/** Fetches `url` and reads the whole answer: status, headers, text and the JSON it parses to (or undefined). */
export async function fetchReply(url: string, init: RequestInit): Promise<Reply> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A call to the server at `url` with a bearer token: status, headers, text and parsed JSON. */
export async function callAt(url: string, method: string, path: string, token: string, body?: unknown): Promise<Reply> {
  return fetchReply(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

/** The roles most tests use. */
export const TEST_ROLES = `
roles:
  reader: [ { path: "app/*", capabilities: [read, list] } ]
  deployer: [ { path: "app/**", capabilities: [read, list, write] } ]
  janitor: [ { path: "app/**", capabilities: [delete, list] } ]
  auditor: [ { path: "sys:audit", capabilities: [read] } ]
  minter: [ { path: "sys:tokens", capabilities: [read, write] }, { path: "app/*", capabilities: [read] } ]
  monitor: [ { path: "sys:metrics", capabilities: [read] } ]
`;

/** Starts a server whose config is `yaml` (default: {@link TEST_ROLES}) and `listen` on port 0. */
export async function startTestServer(t: TestContext, yaml = TEST_ROLES, env: NodeJS.ProcessEnv = {}, options: Pick<StartOptions, "reloadOnSighup" | "rotation"> = {}): Promise<TestServer> {
  const dataDir = `${tempDir(t, "coffer-server-")}/data`;
  const config = parseServerConfig(yaml, "test-server.yml", env, { listen: "127.0.0.1:0" });
  const init = await initServer(dataDir, config);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      done();
    },
  });
  const { serverLogger } = await import("../../src/server/server.ts");
  const logger = serverLogger(config.log.level, sink);
  const server = await startServer({ dataDir, config, logger, ...options });
  t.after(() => server.close());
  const url = server.url;
  const call = async (method: string, path: string, options: CallOptions = {}): Promise<Reply> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    return fetchReply(`${url}${path}`, { method, headers, ...(body !== undefined && { body }) });
  };
  const token = async (roles: string[], name = `t-${roles.join("-")}`): Promise<string> => {
    const r = await call("POST", "/v1/tokens", { token: init.rootToken, body: { name, roles } });
    if (r.status !== 201) throw new Error(`token creation failed: ${r.status} ${r.text}`);
    return (r.json as { token: string }).token;
  };
  return { url, dataDir, rootToken: init.rootToken, config, server, logs, call, token };
}

/** Two server instances on one fresh PostgreSQL database, sharing the master key (and Redis, when given). */
export async function startTwoInstances(
  t: TestContext,
  options: { redis?: string; yaml?: string; rotation?: StartOptions["rotation"] } = {},
): Promise<{ a: RunningServer; b: RunningServer; root: string; config: ServerConfig }> {
  const { copyFileSync } = await import("node:fs");
  const { freshDatabase } = await import("../services.ts");
  const { ensurePrivateDir } = await import("../../src/core/fs-secure.ts");
  const { MASTER_KEY_FILE } = await import("../../src/server/server.ts");
  const database = await freshDatabase(t);
  const yaml = `${options.yaml ?? TEST_ROLES}\ndatabase: "${database}"\n${options.redis !== undefined ? `redis: "${options.redis}"\n` : ""}`;
  const config = parseServerConfig(yaml, "test-server.yml", {}, { listen: "127.0.0.1:0" });
  const base = tempDir(t, "coffer-two-");
  const init = await initServer(`${base}/a`, config);
  ensurePrivateDir(`${base}/b`);
  copyFileSync(`${base}/a/${MASTER_KEY_FILE}`, `${base}/b/${MASTER_KEY_FILE}`);
  const rotation = options.rotation !== undefined ? { rotation: options.rotation } : {};
  const a = await startServer({ dataDir: `${base}/a`, config, logger: false, ...rotation });
  t.after(() => a.close());
  const b = await startServer({ dataDir: `${base}/b`, config, logger: false, ...rotation });
  t.after(() => b.close());
  return { a, b, root: init.rootToken, config };
}
