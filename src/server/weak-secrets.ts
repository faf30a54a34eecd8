/** JWT secrets the server refuses (docs/security.md): published defaults and short ones. */

const MIN_SECRET_BYTES = 32;

/**
 * JWT secrets published in docs, examples and tutorials (jwt.io's defaults among them): anyone
 * can sign tokens with them. Compared case-insensitively by {@link weakSecretRule}; refused in production or not.
 */
export const KNOWN_WEAK_JWT_SECRETS: readonly string[] = Object.freeze([
  "dev-secret-change-me",
  "secret",
  "changeme",
  "change-me",
  "change_me",
  "changeit",
  "change-this",
  "your-256-bit-secret",
  "your-384-bit-secret",
  "your-512-bit-secret",
  "a-string-secret-at-least-256-bits-long",
  "your-secret-key",
  "your_jwt_secret",
  "jwt-secret",
  "jwt_secret",
  "jwtsecret",
  "secretkey",
  "secret-key",
  "secret_key",
  "mysecret",
  "my-secret",
  "my_secret",
  "mysecretkey",
  "supersecret",
  "super-secret",
  "topsecret",
  "password",
  "default",
  "development",
  "test",
  "testing",
  "coffer",
  "coffer-dev",
  "admin",
  "123456",
]);

/**
 * Why a JWT secret is refused (in production or not), or undefined: a published default, or
 * shorter than 32 bytes. Never shows the secret, except a known public default.
 */
export function weakSecretRule(secret: string): string | undefined {
  const fix = `use a random secret of at least ${MIN_SECRET_BYTES} bytes, e.g. from \`openssl rand -base64 48\``;
  const known = KNOWN_WEAK_JWT_SECRETS.find((w) => w.toLowerCase() === secret.toLowerCase());
  // Naming it is safe: it is published; saying which one helps find where it came from.
  if (known !== undefined) return `is a known default (${JSON.stringify(secret)}) anyone can sign tokens with: ${fix}`;
  const bytes = Buffer.byteLength(secret, "utf8");
  if (bytes < MIN_SECRET_BYTES) return `is only ${bytes} bytes long, too short to resist guessing: ${fix}`;
  if (/^[.…]+$|\.\.\.|…/.test(secret)) return `is a placeholder: ${fix}`;
  return undefined;
}
