import { test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer, request, Agent } from "node:https";
import type { RequestOptions, Server as HttpsServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createNetServer, connect as netConnect } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { join } from "node:path";
import {
  certificatePrincipal, clientCertificate, dnsAltNames, loadTlsOptions, reloadOnSighup,
} from "../../src/server/tls.ts";
import type { TlsFiles } from "../../src/server/tls.ts";
import { isCofferError } from "../../src/errors.ts";
import { makeCa, makeCert } from "./certs.ts";
import type { CertFiles } from "./certs.ts";
import { tempDir } from "../helpers.ts";

const CLIENTS = { "ci-runner": ["reader"], "deploy.example.com": ["writer", "reader"] };

interface Pki {
  dir: string;
  ca: CertFiles;
  server: CertFiles;
}

function pki(t: TestContext): Pki {
  const dir = tempDir(t);
  const ca = makeCa(dir, "Coffer Test CA");
  const server = makeCert(dir, ca, { cn: "coffer-server", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  return { dir, ca, server };
}

/** An HTTPS server on 127.0.0.1:0 answering with what it sees of the client; closed after the test. */
async function serve(
  t: TestContext,
  files: TlsFiles,
  handler?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: HttpsServer; port: number; clientErrors: Error[] }> {
  const server = createHttpsServer(loadTlsOptions(files), handler ?? answer);
  const clientErrors: Error[] = [];
  server.on("tlsClientError", (err: Error) => clientErrors.push(err));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { server, port: (server.address() as AddressInfo).port, clientErrors };
}

function answer(req: IncomingMessage, res: ServerResponse): void {
  const cert = clientCertificate(req.socket);
  const principal = cert === undefined ? undefined : certificatePrincipal(cert, CLIENTS);
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ protocol: (req.socket as TLSSocket).getProtocol(), cert: cert ?? null, principal: principal ?? null }));
}

interface Reply {
  status: number;
  body: { protocol: string; cert: { cn: string | null; dnsNames: string[]; fingerprint256: string } | null; principal: { subject: string; roles: string[] } | null };
  socket: TLSSocket;
}

/** GET over HTTPS, trusting `ca` for the server; rejects on any TLS or socket error. */
function get(port: number, ca: string, options: RequestOptions = {}, path = "/"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: "GET", ca: readFileSync(ca), agent: false, ...options },
      (res) => {
        // Taken now: a keep-alive agent detaches the socket from the response at its end.
        const socket = res.socket as TLSSocket;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          try {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Reply["body"], socket });
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function clientOptions(c: CertFiles): RequestOptions {
  return { cert: readFileSync(c.cert), key: readFileSync(c.key) };
}

/* ---------------------------------------- HTTPS ---------------------------------------- */

test("tls: HTTPS over TLS 1.2 and TLS 1.3; no client certificate asked without clientCa", async (t) => {
  const { ca, server } = pki(t);
  const options = loadTlsOptions(server);
  assert.equal(options.minVersion, "TLSv1.2");
  assert.equal(options.requestCert, false);
  assert.equal(options.rejectUnauthorized, false);
  assert.equal(options.honorCipherOrder, true);
  assert.equal("ca" in options, false);
  const { port } = await serve(t, server);

  const v12 = await get(port, ca.cert, { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
  assert.equal(v12.status, 200);
  assert.equal(v12.body.protocol, "TLSv1.2");
  assert.equal(v12.socket.getPeerCertificate().subject.CN, "coffer-server");
  assert.equal(v12.body.cert, null, "no client certificate");

  const v13 = await get(port, ca.cert, { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" });
  assert.equal(v13.body.protocol, "TLSv1.3");

  const dflt = await get(port, ca.cert);
  assert.equal(dflt.body.protocol, "TLSv1.3", "the best version is negotiated");
});

test("tls: a TLS 1.1 client is refused by the server (minVersion TLSv1.2)", async (t) => {
  const { ca, server } = pki(t);
  const { port, clientErrors } = await serve(t, server);
  // OpenSSL 3's default security level forbids TLS 1.1 on the client itself ("no protocols
  // available"); SECLEVEL=0 lets the client offer it, so the refusal below is the server's.
  const err = await get(port, ca.cert, { minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" }).then(
    () => assert.fail("a TLS 1.1 handshake must fail"),
    (e: NodeJS.ErrnoException) => e,
  );
  // The client got the server's protocol_version alert…
  assert.match(`${err.code} ${err.message}`, /PROTOCOL_VERSION|protocol version/i);
  // …and the server reports it refused an unsupported protocol.
  await waitFor(() => clientErrors.length > 0);
  assert.match(`${(clientErrors[0] as NodeJS.ErrnoException).code} ${clientErrors[0]!.message}`, /UNSUPPORTED_PROTOCOL|unsupported protocol/i);
});

/* ----------------------------------------- mTLS ----------------------------------------- */

test("mtls: a certificate's CN, else a listed DNS SAN, gives the roles of clients", async (t) => {
  const p = pki(t);
  const files = { ...p.server, clientCa: p.ca.cert };
  const options = loadTlsOptions(files);
  assert.equal(options.requestCert, true);
  assert.equal(options.rejectUnauthorized, true);
  assert.ok(options.ca !== undefined);
  const { port } = await serve(t, files);

  const runner = makeCert(p.dir, p.ca, { cn: "ci-runner", client: true });
  const r1 = await get(port, p.ca.cert, clientOptions(runner));
  assert.equal(r1.body.cert?.cn, "ci-runner");
  assert.deepEqual(r1.body.cert?.dnsNames, []);
  assert.match(r1.body.cert?.fingerprint256 ?? "", /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.deepEqual(r1.body.principal, { subject: "cert:ci-runner", roles: ["reader"] });

  // Over TLS 1.2 too (the certificate is asked for in the handshake, not after).
  const r12 = await get(port, p.ca.cert, { ...clientOptions(runner), maxVersion: "TLSv1.2" });
  assert.equal(r12.body.protocol, "TLSv1.2");
  assert.deepEqual(r12.body.principal, { subject: "cert:ci-runner", roles: ["reader"] });

  const deploy = makeCert(p.dir, p.ca, { cn: "some-host-17", dns: ["unlisted.example.com", "deploy.example.com"], client: true });
  const r2 = await get(port, p.ca.cert, clientOptions(deploy));
  assert.equal(r2.body.cert?.cn, "some-host-17");
  assert.deepEqual(r2.body.cert?.dnsNames, ["unlisted.example.com", "deploy.example.com"]);
  assert.deepEqual(r2.body.principal, { subject: "cert:deploy.example.com", roles: ["writer", "reader"] });

  // A verified certificate that clients does not list: identified, but no principal.
  const stranger = makeCert(p.dir, p.ca, { cn: "stranger", dns: ["stranger.example.com"], client: true });
  const r3 = await get(port, p.ca.cert, clientOptions(stranger));
  assert.equal(r3.body.cert?.cn, "stranger");
  assert.equal(r3.body.principal, null);
});

test("mtls: no client certificate, one from another CA, or one without clientAuth: refused in the handshake", async (t) => {
  const p = pki(t);
  const files = { ...p.server, clientCa: p.ca.cert };
  const { port, clientErrors } = await serve(t, files);

  const refused = async (what: string, options: RequestOptions): Promise<void> => {
    const before = clientErrors.length;
    const err = await get(port, p.ca.cert, options).then(
      (r) => assert.fail(`${what}: expected a refused handshake, got HTTP ${r.status} ${JSON.stringify(r.body)}`),
      (e: Error) => e,
    );
    assert.ok(err instanceof Error, what);
    await waitFor(() => clientErrors.length > before);
  };

  // TLS 1.3: the client finishes its side first, then gets the "certificate required" alert or a reset.
  await refused("no certificate (TLS 1.3)", {});
  await refused("no certificate (TLS 1.2)", { maxVersion: "TLSv1.2" });

  const otherCa = makeCa(p.dir, "Other CA");
  const impostor = makeCert(p.dir, otherCa, { cn: "ci-runner", client: true });
  await refused("a certificate from another CA", clientOptions(impostor));

  // A server-only certificate (extendedKeyUsage serverAuth) is not a client certificate.
  const serverOnly = makeCert(p.dir, p.ca, { cn: "ci-runner", server: true });
  await refused("a certificate without clientAuth", clientOptions(serverOnly));

  // The server still serves a good client afterwards.
  const runner = makeCert(p.dir, p.ca, { cn: "ci-runner", client: true });
  assert.deepEqual((await get(port, p.ca.cert, clientOptions(runner))).body.principal, { subject: "cert:ci-runner", roles: ["reader"] });
});

test("mtls: clientCertificate is undefined for a plain socket and a TLS socket without a certificate", async (t) => {
  const plain = createNetServer();
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => plain.close(() => resolve())));
  const accepted = new Promise<Socket>((resolve) => plain.once("connection", resolve));
  const client = netConnect((plain.address() as AddressInfo).port, "127.0.0.1");
  t.after(() => client.destroy());
  const socket = await accepted;
  assert.equal(clientCertificate(socket), undefined);
  socket.destroy();
  // TLS without clientCa: the https test above shows cert: null.
});

test("certificatePrincipal: CN first, then the first listed DNS name; own keys only", () => {
  assert.deepEqual(certificatePrincipal({ cn: "ci-runner", dnsNames: ["deploy.example.com"] }, CLIENTS), { subject: "cert:ci-runner", roles: ["reader"] });
  assert.deepEqual(certificatePrincipal({ cn: "x", dnsNames: ["a.example.com", "deploy.example.com"] }, CLIENTS), {
    subject: "cert:deploy.example.com",
    roles: ["writer", "reader"],
  });
  assert.deepEqual(certificatePrincipal({ cn: undefined, dnsNames: ["deploy.example.com"] }, CLIENTS)?.subject, "cert:deploy.example.com");
  assert.equal(certificatePrincipal({ cn: "x", dnsNames: [] }, CLIENTS), undefined);
  assert.equal(certificatePrincipal({ cn: "constructor", dnsNames: ["__proto__", "toString"] }, CLIENTS), undefined);
  assert.equal(certificatePrincipal({ cn: undefined, dnsNames: [] }, {}), undefined);
  // The roles are a copy: changing them does not change the config.
  const p = certificatePrincipal({ cn: "ci-runner", dnsNames: [] }, CLIENTS)!;
  p.roles.push("root");
  assert.deepEqual(CLIENTS["ci-runner"], ["reader"]);
});

test("dnsAltNames: node's subjectaltname text, quoted values included", () => {
  assert.deepEqual(dnsAltNames(""), []);
  assert.deepEqual(dnsAltNames("DNS:a.example.com"), ["a.example.com"]);
  assert.deepEqual(dnsAltNames("DNS:a, IP Address:127.0.0.1, DNS:b, URI:spiffe://x/y, email:me@x"), ["a", "b"]);
  assert.deepEqual(dnsAltNames('DNS:"a, DNS:evil", DNS:b'), ["a, DNS:evil", "b"]);
  assert.deepEqual(dnsAltNames('URI:"x\\"y, DNS:z", DNS:c'), ["c"]);
});

/* -------------------------------------- the files -------------------------------------- */

test("a world-readable TLS certificate and CA (0644, as certbot writes them) are accepted; a 0644 key is refused", (t) => {
  const p = pki(t);
  chmodSync(p.server.cert, 0o644);
  chmodSync(p.ca.cert, 0o644);
  assert.doesNotThrow(() => loadTlsOptions({ ...p.server, clientCa: p.ca.cert }));
  for (const mode of [0o644, 0o640]) {
    chmodSync(p.server.key, mode);
    assert.throws(
      () => loadTlsOptions({ ...p.server, clientCa: p.ca.cert }),
      (err: unknown) => {
        assert.ok(isCofferError(err, "E_PERMISSIONS"), String(err));
        assert.match(err.message, /TLS key file/);
        assert.ok(err.message.includes(`chmod 600 ${p.server.key}`), err.message);
        return true;
      },
    );
  }
  chmodSync(p.server.key, 0o600);
  assert.doesNotThrow(() => loadTlsOptions({ ...p.server, clientCa: p.ca.cert }));
});

test("a TLS certificate or CA that others could replace (group- or world-writable) is refused", (t) => {
  const p = pki(t);
  for (const [which, path] of [["cert", p.server.cert], ["clientCa", p.ca.cert]] as const) {
    for (const mode of [0o666, 0o664]) {
      chmodSync(path, mode);
      assert.throws(
        () => loadTlsOptions({ ...p.server, clientCa: p.ca.cert }),
        (err: unknown) => {
          assert.ok(isCofferError(err, "E_PERMISSIONS"), `${which}: ${String(err)}`);
          assert.match(err.message, /writable by group or others/);
          assert.ok(err.message.includes(`chmod go-w ${path}`), err.message);
          return true;
        },
      );
    }
    chmodSync(path, 0o644);
  }
  assert.doesNotThrow(() => loadTlsOptions({ ...p.server, clientCa: p.ca.cert }));
});

test("tls files: a key that does not match the certificate, missing or non-PEM files: E_CONFIG naming them", (t) => {
  const p = pki(t);
  const other = makeCert(p.dir, p.ca, { cn: "other", server: true });
  assert.throws(
    () => loadTlsOptions({ cert: p.server.cert, key: other.key }),
    (err: unknown) => {
      assert.ok(isCofferError(err, "E_CONFIG"), String(err));
      assert.ok(err.message.includes(other.key) && err.message.includes(p.server.cert), err.message);
      assert.match(err.message, /does not match/);
      return true;
    },
  );
  const missing = join(p.dir, "nope.key");
  assert.throws(() => loadTlsOptions({ cert: p.server.cert, key: missing }), (err: unknown) => isCofferError(err, "E_CONFIG") && err.message.includes(missing));

  const junk = join(p.dir, "junk.pem");
  writeFileSync(junk, "not a pem\n", { mode: 0o600 });
  assert.throws(() => loadTlsOptions({ cert: p.server.cert, key: junk }), (err: unknown) => isCofferError(err, "E_CONFIG") && /not a PEM private key/.test(err.message));
  assert.throws(() => loadTlsOptions({ cert: junk, key: p.server.key }), (err: unknown) => isCofferError(err, "E_CONFIG") && /no PEM certificate/.test(err.message));
  assert.throws(
    () => loadTlsOptions({ ...p.server, clientCa: junk }),
    (err: unknown) => isCofferError(err, "E_CONFIG") && err.message.includes(junk) && /client CA/.test(err.message),
  );
  // The certificate given as the key, the key as the certificate.
  assert.throws(() => loadTlsOptions({ cert: p.server.key, key: p.server.cert }), (err: unknown) => isCofferError(err, "E_CONFIG"));
});

/* --------------------------------------- SIGHUP --------------------------------------- */

test("SIGHUP: new handshakes get the new certificate; an open keep-alive connection keeps going", async (t) => {
  const p = pki(t);
  // The live files the server is configured with start as a copy of certificate A.
  const live = { cert: join(p.dir, "live.crt"), key: join(p.dir, "live.key") };
  const install = (c: CertFiles): void => {
    copyFileSync(c.cert, live.cert);
    copyFileSync(c.key, live.key);
    chmodSync(live.cert, 0o600);
    chmodSync(live.key, 0o600);
  };
  const certA = makeCert(p.dir, p.ca, { cn: "server-a", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  const certB = makeCert(p.dir, p.ca, { cn: "server-b", dns: ["localhost"], ips: ["127.0.0.1"], server: true });
  install(certA);

  let release: () => void = () => {};
  let parked = false;
  const { server, port } = await serve(t, live, (req, res) => {
    if (req.url === "/slow") {
      // Answer only once the test says so: the request is in flight across the reload.
      release = () => answer(req, res);
      parked = true;
      return;
    }
    answer(req, res);
  });
  const reloads: { ok: boolean; error?: Error }[] = [];
  const listenersBefore = process.listenerCount("SIGHUP");
  const off = reloadOnSighup(server, live, (ok, error) => reloads.push(error === undefined ? { ok } : { ok, error }));
  t.after(off);
  assert.equal(process.listenerCount("SIGHUP"), listenersBefore + 1);

  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(p.ca.cert) });
  t.after(() => agent.destroy());
  // A second client that caches its TLS session: after the reload it must not resume it.
  const resumer = new Agent({ keepAlive: false, ca: readFileSync(p.ca.cert) });
  t.after(() => resumer.destroy());

  const first = await get(port, p.ca.cert, { agent });
  const held = first.socket;
  assert.equal(held.getPeerCertificate().subject.CN, "server-a");
  const serialA = held.getPeerCertificate().serialNumber;
  const warm = await get(port, p.ca.cert, { agent: resumer });
  assert.equal(warm.socket.getPeerCertificate().subject.CN, "server-a");
  const again = await get(port, p.ca.cert, { agent: resumer });
  assert.equal(again.socket.isSessionReused(), true, "the resumer agent does resume sessions before the reload");

  // A request in flight on the held connection while the files change and SIGHUP arrives.
  const inFlight = get(port, p.ca.cert, { agent }, "/slow");
  await waitFor(() => parked);
  install(certB);
  const reloaded = waitFor(() => reloads.length === 1);
  process.kill(process.pid, "SIGHUP");
  await reloaded;
  assert.deepEqual(reloads[0], { ok: true });
  release();
  const slow = await inFlight;
  assert.equal(slow.status, 200);
  assert.equal(slow.socket, held, "the in-flight request finished on the held connection");

  // The held connection still works, still on its old handshake (certificate A).
  const after = await get(port, p.ca.cert, { agent });
  assert.equal(after.socket, held, "the keep-alive connection was reused, not dropped");
  assert.equal(after.socket.getPeerCertificate().serialNumber, serialA);

  // A new connection sees certificate B.
  const fresh = await get(port, p.ca.cert);
  assert.notEqual(fresh.socket, held);
  assert.equal(fresh.socket.getPeerCertificate().subject.CN, "server-b");
  assert.notEqual(fresh.socket.getPeerCertificate().serialNumber, serialA);
  // So does a client holding a session ticket from before the reload: the ticket keys changed.
  const resumed = await get(port, p.ca.cert, { agent: resumer });
  assert.equal(resumed.socket.isSessionReused(), false);
  assert.equal(resumed.socket.getPeerCertificate().subject.CN, "server-b");

  // A failed reload (a key that does not match) keeps the current context and says why.
  copyFileSync(certA.key, live.key);
  chmodSync(live.key, 0o600);
  process.emit("SIGHUP", "SIGHUP");
  assert.equal(reloads.length, 2);
  assert.equal(reloads[1]!.ok, false);
  assert.ok(isCofferError(reloads[1]!.error, "E_CONFIG"), String(reloads[1]!.error));
  assert.equal((await get(port, p.ca.cert)).socket.getPeerCertificate().subject.CN, "server-b");

  // So does one refused for permissions.
  install(certA);
  chmodSync(live.key, 0o644);
  process.emit("SIGHUP", "SIGHUP");
  assert.equal(reloads[2]!.ok, false);
  assert.ok(isCofferError(reloads[2]!.error, "E_PERMISSIONS"), String(reloads[2]!.error));
  assert.equal((await get(port, p.ca.cert)).socket.getPeerCertificate().subject.CN, "server-b");

  // Fixed and reloaded again: certificate A is back.
  chmodSync(live.key, 0o600);
  process.emit("SIGHUP", "SIGHUP");
  assert.deepEqual(reloads[3], { ok: true });
  assert.equal((await get(port, p.ca.cert)).socket.getPeerCertificate().subject.CN, "server-a");

  off();
  assert.equal(process.listenerCount("SIGHUP"), listenersBefore);
});

test("SIGHUP with mTLS: a new client CA applies to new handshakes", async (t) => {
  const p = pki(t);
  const caB = makeCa(p.dir, "Second CA");
  const liveCa = join(p.dir, "live-ca.crt");
  copyFileSync(p.ca.cert, liveCa);
  chmodSync(liveCa, 0o600);
  const files = { ...p.server, clientCa: liveCa };
  const { server, port } = await serve(t, files);
  const reloads: boolean[] = [];
  t.after(reloadOnSighup(server, files, (ok) => reloads.push(ok)));

  const fromA = makeCert(p.dir, p.ca, { cn: "ci-runner", client: true });
  const fromB = makeCert(p.dir, caB, { cn: "ci-runner", client: true });
  assert.equal((await get(port, p.ca.cert, clientOptions(fromA))).body.principal?.subject, "cert:ci-runner");
  await assert.rejects(get(port, p.ca.cert, clientOptions(fromB)));

  copyFileSync(caB.cert, liveCa);
  chmodSync(liveCa, 0o600);
  process.emit("SIGHUP", "SIGHUP");
  assert.deepEqual(reloads, [true]);
  assert.equal((await get(port, p.ca.cert, clientOptions(fromB))).body.principal?.subject, "cert:ci-runner");
  await assert.rejects(get(port, p.ca.cert, clientOptions(fromA)));
});

/** Polls `cond` every 5 ms for up to 5 s. */
async function waitFor(cond: () => boolean): Promise<void> {
  const until = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}
