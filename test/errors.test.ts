import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CofferError, ERROR_CODES, type ErrorCode } from "../src/errors.ts";

const README = readFileSync(new URL("../README.md", import.meta.url), "utf8");

test("every error code has its line in the README, with its exit status", () => {
  for (const [code, { exit }] of Object.entries(ERROR_CODES)) {
    assert.match(README, new RegExp(`^\\| \`${code}\` \\| ${exit} \\|`, "m"), `README lacks the row for ${code}`);
  }
});

test("CofferError carries its code, exit and HTTP status", () => {
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    const e = new CofferError(code, "m");
    assert.equal(e.code, code);
    assert.equal(e.exitCode, ERROR_CODES[code].exit);
    assert.equal(e.httpStatus, ERROR_CODES[code].http);
    assert.ok(e instanceof Error);
  }
});
