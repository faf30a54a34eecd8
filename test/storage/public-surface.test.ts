/**
 * Nothing the package exports has a raw-SQL door (issue 12): the declarations `dist/index.d.ts`
 * reaches, import by import, have no `sql(` or `transaction(` method. Needs `npm run build`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

test("the declarations the package exports have no sql() or transaction()", () => {
  const root = resolve(import.meta.dirname, "../../dist/index.d.ts");
  assert.ok(existsSync(root), "run `npm run build` first");
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    assert.doesNotMatch(text, /^\s*(sql|transaction)\s*[<(]/m, `${file} declares a raw-SQL method`);
    for (const m of text.matchAll(/from "(\.{1,2}\/[^"]+)"/g)) {
      const target = join(dirname(file), m[1]!.replace(/\.(ts|js)$/, ".d.ts"));
      if (existsSync(target)) visit(target);
    }
  };
  visit(root);
  assert.ok([...seen].some((f) => f.endsWith(join("store", "store.d.ts"))), "store.d.ts is reached");
  assert.ok(![...seen].some((f) => f.includes(`${join("dist", "storage")}`)), "no storage driver type is reached");
});
