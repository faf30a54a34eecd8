/**
 * The console renders every name, description and output as text: no file of web/ builds HTML
 * from a string (innerHTML, outerHTML, insertAdjacentHTML, document.write,
 * dangerouslySetInnerHTML) or evaluates one (eval, new Function, a string to setTimeout).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { walk } from "../helpers.ts";

const WEB = fileURLToPath(new URL("../../web/", import.meta.url));
const FORBIDDEN = /\b(innerHTML|outerHTML|insertAdjacentHTML|dangerouslySetInnerHTML|document\.write|eval\s*\(|new Function\b|setTimeout\s*\(\s*["'`])/;

test("no file of the web console builds HTML from a string or evaluates one", () => {
  const files = [...walk(WEB)].filter((f) => /\.(tsx?|html)$/.test(f));
  assert.ok(files.length > 5, `the console's sources are in ${WEB}`);
  for (const f of files) {
    const m = FORBIDDEN.exec(readFileSync(f, "utf8"));
    assert.equal(m, null, `${f} uses ${m?.[0]}`);
  }
});
