/**
 * Test certificates made with the `openssl` CLI: a CA and leaf certificates it signs (EC P-256,
 * valid for a day, with the right keyUsage/extendedKeyUsage and subjectAltName). Every file is
 * written 0600 in the given directory.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A certificate and its key, as file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** What a leaf certificate is for. */
export interface CertSpec {
  /** the subject CN */
  cn: string;
  /** DNS names for the subjectAltName */
  dns?: string[];
  /** IP addresses for the subjectAltName */
  ips?: string[];
  /** extendedKeyUsage clientAuth */
  client?: boolean;
  /** extendedKeyUsage serverAuth */
  server?: boolean;
}

// A minimal config, so the machine's openssl.cnf (and its default extensions) plays no part.
const REQ_CONFIG = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n";

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function slug(s: string): string {
  return `${s.replace(/[^A-Za-z0-9.-]/g, "_").slice(0, 40)}-${randomBytes(4).toString("hex")}`;
}

function serial(): string {
  // 16 random bytes, top bit clear so the serial stays positive.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f | 0x10;
  return `0x${b.toString("hex")}`;
}

function configFile(dir: string, base: string, text: string): string {
  const path = join(dir, `${base}.cnf`);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

/** A self-signed CA named `name` (CN). */
export function makeCa(dir: string, name: string): CertFiles {
  const base = slug(name);
  const cert = join(dir, `${base}.crt`);
  const key = join(dir, `${base}.key`);
  const cfg = configFile(
    dir,
    base,
    `${REQ_CONFIG}[ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n` +
      "subjectKeyIdentifier = hash\n",
  );
  try {
    openssl([
      "req", "-x509", "-config", cfg, "-extensions", "ext",
      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-set_serial", serial(), "-subj", `/CN=${name}`,
    ]);
  } finally {
    rmSync(cfg, { force: true });
  }
  chmodSync(key, 0o600);
  chmodSync(cert, 0o600);
  return { cert, key };
}

/**
 * A certificate signed by `ca`. Give `server: true` for a server certificate (for 127.0.0.1 add
 * `ips: ["127.0.0.1"]` and `dns: ["localhost"]`), `client: true` for a client certificate.
 */
export function makeCert(dir: string, ca: CertFiles, spec: CertSpec): CertFiles {
  const base = slug(spec.cn);
  const cert = join(dir, `${base}.crt`);
  const key = join(dir, `${base}.key`);
  const csr = join(dir, `${base}.csr`);
  const eku = [...(spec.server === true ? ["serverAuth"] : []), ...(spec.client === true ? ["clientAuth"] : [])];
  const san = [...(spec.dns ?? []).map((d) => `DNS:${d}`), ...(spec.ips ?? []).map((ip) => `IP:${ip}`)];
  const ext =
    "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n" +
    "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n" +
    (eku.length > 0 ? `extendedKeyUsage = ${eku.join(", ")}\n` : "") +
    (san.length > 0 ? `subjectAltName = ${san.join(", ")}\n` : "");
  const reqCfg = configFile(dir, `${base}-req`, REQ_CONFIG);
  const extCfg = configFile(dir, `${base}-ext`, `[ext]\n${ext}`);
  try {
    openssl([
      "req", "-new", "-config", reqCfg,
      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", key, "-out", csr, "-subj", `/CN=${spec.cn}`,
    ]);
    openssl([
      "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial", serial(),
      "-days", "1", "-sha256", "-extfile", extCfg, "-extensions", "ext", "-out", cert,
    ]);
  } finally {
    rmSync(csr, { force: true });
    rmSync(reqCfg, { force: true });
    rmSync(extCfg, { force: true });
  }
  chmodSync(key, 0o600);
  chmodSync(cert, 0o600);
  return { cert, key };
}
