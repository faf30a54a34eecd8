/**
 * The web console at /ui, in a real browser (Debian's chromium, playwright-core) against a real
 * server on a free loopback port: sign in with a token; create a secret, reveal it, add a version,
 * roll back; create and revoke a token; a role edit that takes effect in another signed-in tab;
 * run a runbook and watch its output; reject a pending one; the audit page shows all of it; sign
 * out. Markup in a description or in a script's output renders as text and opens no dialog. Each
 * page is screenshotted (test-output/screenshots/) and checked at 375 px for horizontal overflow.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { tempDir } from "../helpers.ts";
import { startTestServer } from "../server/harness.ts";
import { CONSOLE_CSP } from "../../src/server/console.ts";
import { inPage, openTab, overflowX, screenshot, startBrowser, type Tab } from "./harness.ts";

const XSS = "<img src=x onerror=alert(1)>";
const V1 = "console-value-one-Hx31";
const V2 = "console-value-two-Kp58";

// One person clicking through every page in a few seconds: more requests than the default 60 a minute.
const ROLES = `
devLogin: true
rateLimit: { requests: 10000 }
roles:
  ops: [ { path: "runbook:*", capabilities: [read, run, approve] } ]
`;

function runbooks(dir: string): void {
  mkdirSync(dir);
  writeFileSync(join(dir, "greet.yml"), `description: Greets a region ${XSS}
run: |
  echo "hello $REGION"
  echo '${XSS}'
params:
  REGION: { pattern: "^[a-z0-9-]{1,32}$", required: true, description: the region }
`);
  writeFileSync(join(dir, "guarded.yml"), "description: needs a second person\napprovals: 1\nrun: echo ran\n");
}

/** Signs in on the console's sign-in page with `token`. */
async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/ui/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Goes to a section by its navigation link. */
async function section(page: Page, name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name }).click();
  await page.getByRole("heading", { level: 1 }).first().waitFor();
}

test("the console serves its page with a strict CSP and the security headers", async (t) => {
  const s = await startTestServer(t);
  const page = await fetch(`${s.url}/ui/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.equal(csp, CONSOLE_CSP);
  assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), csp);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  assert.equal(page.headers.get("cache-control"), "no-store");
  const html = await page.text();
  assert.ok(!/<script>|<style>|\sstyle=|\son[a-z]+=/i.test(html), "the page has no inline script, style or handler");
  for (const file of ["app.js", "app.css"]) {
    const r = await fetch(`${s.url}/ui/${file}`);
    assert.equal(r.status, 200, file);
    assert.equal(r.headers.get("content-security-policy"), CONSOLE_CSP);
  }
  const api = await fetch(`${s.url}/v1/secrets`, { headers: { authorization: `Bearer ${s.rootToken}` } });
  assert.equal(api.headers.get("cache-control"), "no-store");
  assert.equal(api.headers.get("content-security-policy"), "default-src 'none'; frame-ancestors 'none'");
  assert.equal(api.headers.get("referrer-policy"), "no-referrer");
  const redirect = await fetch(`${s.url}/ui`, { redirect: "manual" });
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.get("location"), "/ui/");
});

test("a path outside the console's files is a 404, never a file of the disk", async (t) => {
  const s = await startTestServer(t);
  for (const path of ["/ui/../package.json", "/ui/%2e%2e%2fpackage.json", "/ui/..%2f..%2fetc%2fpasswd", "/ui/nope.js", "/ui/app.js/x"]) {
    const r = await fetch(`${s.url}${path}`);
    assert.equal(r.status, 404, path);
    assert.ok(!(await r.text()).includes("\"name\": \"coffer\""), path);
  }
});

test("the console can be turned off in the config", async (t) => {
  const s = await startTestServer(t, "ui: { enabled: false }\n");
  const r = await fetch(`${s.url}/ui/`);
  assert.equal(r.status, 404);
  assert.match(await r.text(), /turned off on this server \(ui\.enabled: false/);
});

test("the web console: secrets, tokens, roles, runbooks, audit and sign-out in a real browser", async (t) => {
  const dir = join(tempDir(t, "coffer-console-"), "runbooks");
  runbooks(dir);
  const s = await startTestServer(t, `${ROLES}runbooks:\n  dir: ${dir}\n`);
  const browser = await startBrowser(t);
  const admin = await openTab(browser);
  const { page } = admin;

  await t.test("sign in with a token; a bad token is refused with a clear message", async () => {
    await page.goto(`${s.url}/ui/`);
    await screenshot(page, "sign-in");
    await page.getByLabel("API token").fill("cof_not-a-real-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    assert.match(await page.getByRole("alert").innerText(), /token/i);
    await signIn(page, s.url, s.rootToken);
    assert.equal(await inPage(page, "document.cookie"), "");
    assert.equal(await inPage(page, "localStorage.length"), 0);
    assert.ok(!page.url().includes("cof_"), "the token is never in the URL");
  });

  await t.test("create a secret whose description is markup: it renders as text", async () => {
    await page.getByRole("link", { name: "New secret" }).click();
    await page.getByLabel("Name").fill("app/db/password");
    await page.getByLabel("Value").fill(V1);
    await page.getByLabel("Description (optional)").fill(XSS);
    await page.getByRole("button", { name: "Create secret" }).click();
    await page.getByRole("heading", { name: "app/db/password" }).waitFor();
    await page.getByText(XSS, { exact: true }).waitFor();
    assert.equal(await page.locator("img").count(), 0, "no <img> was made from the description");
    await section(page, "Secrets");
    await page.getByRole("link", { name: "password", exact: true }).waitFor();
    assert.match(await page.locator("main").innerText(), /<img src=x onerror=alert\(1\)>/);
    await page.getByLabel("Filter").fill("nothing-matches");
    await page.getByText(/No secret matches/).waitFor();
    await page.getByLabel("Filter").fill("db");
    await screenshot(page, "secrets");
  });

  await t.test("reveal the value; leaving the page clears it", async () => {
    await page.getByRole("link", { name: "password", exact: true }).click();
    await page.getByRole("button", { name: "Reveal" }).click();
    await page.getByText(V1).waitFor();
    await section(page, "Tokens");
    assert.ok(!(await page.content()).includes(V1), "the value is gone from the page");
    await page.goBack();
    await page.getByRole("button", { name: "Reveal" }).waitFor();
    assert.ok(!(await page.content()).includes(V1));
  });

  await t.test("add a version, then roll back to the first", async () => {
    await page.getByRole("button", { name: "New version" }).click();
    await page.getByLabel("Value").fill(V2);
    await page.getByRole("button", { name: "Save version" }).click();
    await page.getByText("Saved version 2.").waitFor();
    await page.getByRole("button", { name: "Roll back to version 1" }).click();
    await page.getByText("Rolled back: version 3 holds the value of version 1.").waitFor();
    await page.getByRole("button", { name: "Reveal" }).click();
    await page.getByText(V1).waitFor();
    await screenshot(page, "secret");
    await page.getByRole("button", { name: "Hide" }).click();
  });

  await t.test("a secret's rotation: none at first; with a policy, Rotate now makes a new version", async () => {
    await page.getByText("No rotation policy.").waitFor();
    const set = await s.call("PUT", "/v1/rotation/app/db/password", { token: s.rootToken, body: { every: "30d", generate: { charset: "alnum", length: 24 } } });
    assert.equal(set.status, 200, set.text);
    await page.reload();
    await page.locator("[data-rotation=ok]").waitFor();
    await page.getByRole("button", { name: "Rotate now" }).click();
    await page.getByText("Rotated: version 4 holds a new value.").waitFor();
    await page.getByRole("cell", { name: "v4 current" }).waitFor();
  });

  let ciToken = "";
  let other: Tab | undefined;
  t.after(() => other?.context.close());
  await t.test("create a role and a token holding it; the token is shown once", async () => {
    await section(page, "Roles");
    await page.getByRole("link", { name: "New role" }).click();
    await page.getByLabel("Name").fill("ci");
    await page.getByLabel(/Rules, one per line/).fill("app/**:read,list");
    await page.getByRole("button", { name: "Save role" }).click();
    await page.getByRole("heading", { name: "ci" }).waitFor();
    await section(page, "Roles");
    await page.getByText("managed by config").first().waitFor();
    await screenshot(page, "roles");

    await section(page, "Tokens");
    await page.getByLabel("Name").fill("ci-deploy");
    await page.getByRole("checkbox", { name: "ci" }).check();
    await page.getByLabel("Expires after").fill("1d");
    await page.getByRole("button", { name: "Create token" }).click();
    ciToken = (await page.getByLabel("New token").innerText()).trim();
    assert.match(ciToken, /^cof_/);
    await screenshot(page, "tokens");
    await page.getByRole("button", { name: "Done" }).click();
    assert.ok(!(await page.content()).includes(ciToken), "Done forgets the token");
    await page.getByRole("cell", { name: /ci-deploy/ }).waitFor();
  });

  await t.test("a role edit takes effect for a signed-in token, and a 403 names the capability", async () => {
    other = await openTab(browser);
    await s.call("PUT", "/v1/secrets/app/public/banner", { token: s.rootToken, body: { value: "hello" } });
    await signIn(other.page, s.url, ciToken);
    await other.page.getByRole("link", { name: "password", exact: true }).waitFor();

    await section(page, "Roles");
    await page.getByRole("link", { name: "ci", exact: true }).click();
    await page.getByLabel(/Rules, one per line/).fill("app/public/**:read,list");
    await page.getByRole("button", { name: "Save role" }).click();
    await page.getByText(/Saved ci \(version 2\)/).waitFor();

    await other.page.reload();
    await other.page.getByRole("link", { name: "banner" }).waitFor();
    assert.equal(await other.page.getByRole("link", { name: "password", exact: true }).count(), 0, "the narrowed role no longer lists app/db/password");
    await section(other.page, "Tokens");
    assert.match(await other.page.getByRole("alert").first().innerText(), /needs read on sys:tokens/);
    assert.deepEqual(other.dialogs, []);
  });

  await t.test("revoke the token: its open session ends with a message", async () => {
    await section(page, "Tokens");
    const row = page.getByRole("row", { name: /ci-deploy/ });
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByRole("button", { name: "Revoke token" }).click();
    await row.getByText("revoked").waitFor();
    const r = await s.call("GET", "/v1/auth/self", { token: ciToken });
    assert.equal(r.status, 401);
    await section(other!.page, "Secrets").catch(() => {});
    await other!.page.getByText(/^Signed out: /).waitFor();
    await other!.page.getByLabel("API token").waitFor();
    assert.equal(await inPage(other!.page, "sessionStorage.length"), 0);
  });

  await t.test("run a runbook and watch its output; markup in the output stays text", async () => {
    await section(page, "Runbooks");
    await page.getByRole("link", { name: "greet" }).click();
    await page.getByLabel(/REGION/).fill("eu-west-1");
    await page.getByRole("button", { name: "Run" }).click();
    await page.locator("[data-status=succeeded]").waitFor();
    const output = await page.getByLabel("Output").innerText();
    assert.match(output, /hello eu-west-1/);
    assert.ok(output.includes(XSS), output);
    assert.equal(await page.locator("img").count(), 0);
    await screenshot(page, "execution");
    await page.getByRole("link", { name: "← greet" }).click();
    await page.getByRole("cell", { name: "succeeded" }).waitFor();
    await screenshot(page, "runbook");
  });

  await t.test("a runbook someone else asked for waits on the Approvals page; Approve runs it", async () => {
    const bob = await s.call("POST", "/dev-login", { body: { subject: "bob", roles: ["ops"] } });
    assert.equal(bob.status, 201, bob.text);
    const asked = await s.call("POST", "/v1/runbooks/guarded/run", { token: (bob.json as { token: string }).token, body: {} });
    assert.equal(asked.status, 202, asked.text);
    await section(page, "Approvals");
    await page.getByRole("cell", { name: "pending-approval" }).waitFor();
    await screenshot(page, "approvals");
    await page.getByRole("link", { name: /^[0-9a-f]{8}$/ }).first().click();
    await page.getByRole("button", { name: "Approve" }).click();
    await page.locator("[data-status=succeeded]").waitFor();
    assert.match(await page.getByLabel("Output").innerText(), /ran/);
    await section(page, "Approvals");
    await page.getByText("Nothing waits for approval.").waitFor();
  });

  await t.test("the audit page shows those actions and the verified chain", async () => {
    await section(page, "Audit");
    await page.getByText(/Hash chain verified/).waitFor();
    const text = await page.locator("main").innerText();
    for (const action of ["secret.write", "secret.read", "secret.rollback", "secret.rotate", "token.create", "token.revoke", "role.write", "runbook.run", "runbook.approve"]) {
      assert.match(text, new RegExp(action.replace(".", "\\.")), action);
    }
    await page.getByLabel("Action").fill("secret.rollback");
    await page.getByRole("button", { name: "Filter" }).click();
    // The filtered page holds the rollback and no write.
    await page.getByRole("cell", { name: "secret.write", exact: true }).first().waitFor({ state: "detached" });
    await page.getByRole("cell", { name: "secret.rollback" }).waitFor();
    assert.ok(!text.includes(V1) && !text.includes(V2), "no value in the audit page");
    await page.getByLabel("Action").fill("");
    await page.getByRole("button", { name: "Filter" }).click();
    await screenshot(page, "audit");
  });

  await t.test("the README's picture: a team's secrets as a tree", async () => {
    const demo: [string, string][] = [
      ["app/api/stripe-key", "payments, live mode"],
      ["app/db/replica-password", "read replica"],
      ["ci/deploy-key", "GitHub Actions deploy key"],
      ["ops/pagerduty-token", "alerts"],
    ];
    for (const [name, description] of demo) {
      const r = await s.call("PUT", `/v1/secrets/${name}`, { token: s.rootToken, body: { value: "demo", description } });
      assert.equal(r.status, 200, r.text);
    }
    await section(page, "Secrets");
    await page.getByRole("link", { name: "pagerduty-token" }).waitFor();
    await screenshot(page, "console");
  });

  await t.test("every page is readable at 375 px: no horizontal overflow", async () => {
    const narrow = await openTab(browser, 375);
    t.after(() => narrow.context.close());
    await signIn(narrow.page, s.url, s.rootToken);
    for (const name of ["Secrets", "Tokens", "Roles", "Audit", "Runbooks", "Approvals"]) {
      await section(narrow.page, name);
      await narrow.page.waitForLoadState("networkidle");
      assert.equal(await overflowX(narrow.page), 0, `${name} overflows at 375 px`);
    }
    await narrow.page.getByRole("link", { name: "Secrets" }).click();
    await narrow.page.getByRole("link", { name: "password", exact: true }).click();
    await narrow.page.getByRole("button", { name: "Reveal" }).waitFor();
    assert.equal(await overflowX(narrow.page), 0, "a secret's page overflows at 375 px");
    await screenshot(narrow.page, "secret-375");
  });

  await t.test("every control is reachable with the keyboard", async () => {
    await section(page, "Secrets");
    const reached = new Set<string>();
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      reached.add(await inPage<string>(page, `(document.activeElement?.textContent ?? "").trim() || document.activeElement?.getAttribute("id") || ""`));
    }
    for (const label of ["Secrets", "Tokens", "Audit", "Sign out", "New secret", "filter"]) assert.ok(reached.has(label), `${label} is not reachable with Tab`);
  });

  await t.test("sign out forgets the token", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    assert.equal(await inPage(page, "sessionStorage.length"), 0);
    await page.reload();
    await page.getByLabel("API token").waitFor();
    assert.deepEqual(admin.dialogs, [], "no page opened a dialog");
    assert.deepEqual(admin.errors.filter((e) => !/status of 40[134]/.test(e)), [], "no script error (a CSP violation is one)");
  });
});
