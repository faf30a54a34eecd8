/**
 * `npm run screenshots`: runs the web console's browser test (test/browser/console.test.ts),
 * which saves a screenshot of each page in test-output/screenshots/, and copies the one the
 * README shows to docs/console.png. Run `npm run build` first (the test serves dist/ui/).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";

const r = spawnSync(process.execPath, ["--test", "test/browser/console.test.ts"], { stdio: "inherit" });
if (r.status !== 0) {
  console.error("the browser test failed: no screenshot was copied");
  process.exit(r.status ?? 1);
}
copyFileSync("test-output/screenshots/console.png", "docs/console.png");
console.error("docs/console.png: the README's screenshot of the console");
