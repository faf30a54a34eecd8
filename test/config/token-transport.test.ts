import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAgentConfig, parseProviderSpec } from "../../src/agent/config.ts";
import { parseConfig } from "../../src/config/load.ts";
import { isLoopbackHost, tokenTransportRule } from "../../src/core/token-transport.ts";
import { createServerProvider } from "../../src/providers/server.ts";
import { createVaultProvider } from "../../src/providers/vault.ts";

const TOKEN = "s.TOPSECRET-token-value";

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message };
  }
  assert.fail("expected an error");
}

test("loopback is localhost, 127.0.0.0/8 and ::1; nothing else", () => {
  for (const h of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "[::1]", "::1"]) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ["vault.example.com", "10.0.0.1", "128.0.0.1", "localhost.example.com", "[::2]", "0.0.0.0", "127.example.com"]) assert.equal(isLoopbackHost(h), false, h);
  assert.equal(tokenTransportRule("https://vault.example.com"), undefined);
  assert.equal(tokenTransportRule("http://127.0.0.1:8200"), undefined);
  assert.equal(tokenTransportRule("http://[::1]:8200/x"), undefined);
  assert.equal(tokenTransportRule("http://localhost:8200"), undefined);
  assert.equal(tokenTransportRule("http://127.1:8200"), undefined, "URL normalises 127.1 to 127.0.0.1");
  assert.equal(
    tokenTransportRule("http://vault.example.com:8200"),
    "would send its token over plain http:// to vault.example.com:8200, where the network can read it; use https://, or http:// only to a loopback address (127.0.0.1, ::1, localhost)",
  );
});

test("a provider token is never sent over plain http to a remote host: the project file is refused when read", () => {
  const yml = "providers:\n  v: { type: vault, address: http://vault.example.com:8200 }\n  s: { type: server, url: \"http://10.0.0.5:8200\" }\nenvironments: { dev: {} }\n";
  const err = errorOf(() => parseConfig(yml, ".coffer.yml"));
  assert.equal(err.code, "E_CONFIG");
  assert.equal(
    err.message,
    ".coffer.yml: 2 problems:\n  .coffer.yml:2: provider \"v\" address \"http://vault.example.com:8200\" would send its token over plain http:// to vault.example.com:8200, where the network can read it; use https://, or http:// only to a loopback address (127.0.0.1, ::1, localhost)\n  " +
      ".coffer.yml:3: provider \"s\" url \"http://10.0.0.5:8200\" would send its token over plain http:// to 10.0.0.5:8200, where the network can read it; use https://, or http:// only to a loopback address (127.0.0.1, ::1, localhost)",
  );
  parseConfig("providers:\n  v: { type: vault, address: http://127.0.0.1:8200 }\n  s: { type: server, url: \"http://localhost:8200\" }\nenvironments: { dev: {} }\n", ".coffer.yml");
});

test("a provider token is never sent over plain http to a remote host: agent.yml and --provider", () => {
  const yml = "backends:\n  v: { type: vault, address: http://vault.example.com:8200 }\nservices:\n  web: { backend: v, secrets: [a] }\n";
  assert.match(errorOf(() => parseAgentConfig(yml, "agent.yml", "web")).message, /^agent\.yml:2: backend "v" \(type vault\) address "http:\/\/vault\.example\.com:8200" would send its token over plain http:\/\/ to vault\.example\.com:8200/);
  const err = errorOf(() => parseProviderSpec("server:http://coffer.example.com"));
  assert.equal(err.code, "E_USAGE");
  assert.match(err.message, /^invalid provider "server:http:\/\/coffer\.example\.com": it would send its token over plain http:\/\//);
  assert.match(errorOf(() => parseProviderSpec("vault:http://10.1.1.1:8200")).message, /plain http/);
});

test("a provider token is never sent over plain http to a remote host: the providers refuse before any request", (t) => {
  const calls: string[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = (async (input: string | URL | Request) => {
    calls.push(String(input));
    throw new Error("no request may be made");
  }) as typeof fetch;
  t.after(() => {
    globalThis.fetch = realFetch;
  });
  const env = { VAULT_TOKEN: TOKEN, COFFER_TOKEN: TOKEN };
  const v = errorOf(() => createVaultProvider("v", { type: "vault", address: "http://vault.example.com:8200", mount: "secret" }, { env }));
  assert.equal(v.code, "E_CONFIG");
  assert.match(v.message, /^provider "v" would send its token over plain http:\/\/ to vault\.example\.com:8200/);
  const s = errorOf(() => createServerProvider("s", { type: "server", url: "http://coffer.example.com" }, { env }, { fetch: globalThis.fetch }));
  assert.equal(s.code, "E_CONFIG");
  assert.ok(!v.message.includes(TOKEN) && !s.message.includes(TOKEN));
  assert.deepEqual(calls, []);
});
