/**
 * The web console's browser tests: Debian's chromium driven by playwright-core, headless, with
 * the flags a root CI needs (`--no-sandbox` only as root) and none of its background traffic.
 * Every dialog a page opens is recorded (and dismissed): a test asserts there was none. Each
 * page's screenshot goes to test-output/screenshots/ (ignored by git); `npm run screenshots`
 * copies the README's from there.
 */
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/** Where chromium is: COFFER_TEST_CHROMIUM, else Debian's. */
export const CHROMIUM = process.env.COFFER_TEST_CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOTS = fileURLToPath(new URL("../../test-output/screenshots/", import.meta.url));

/** Starts chromium for the test (closed after it); fails, never skips, when it is missing. */
export async function startBrowser(t: TestContext): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium) or set COFFER_TEST_CHROMIUM`);
  const args = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];
  if (process.getuid?.() === 0) args.push("--no-sandbox"); // chromium refuses to run as root with its sandbox
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  t.after(() => browser.close());
  return browser;
}

/** One signed-out tab at `width` × 900, with every dialog and page error recorded. */
export interface Tab {
  context: BrowserContext;
  page: Page;
  dialogs: string[];
  errors: string[];
}

export async function openTab(browser: Browser, width = 1280): Promise<Tab> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  const dialogs: string[] = [];
  const errors: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return { context, page, dialogs, errors };
}

/** Saves a screenshot of the page as test-output/screenshots/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

/**
 * The value of a JavaScript expression in the page (a string: these files are type-checked for
 * Node, which has no DOM).
 */
export async function inPage<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

/** How far the page is wider than its viewport (0: no horizontal overflow). */
export function overflowX(page: Page): Promise<number> {
  return inPage(page, "document.documentElement.scrollWidth - document.documentElement.clientWidth");
}
