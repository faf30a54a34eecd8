import { test } from "node:test";
import assert from "node:assert/strict";
import { checkDuration, DURATION_RULE, formatDuration, parseDuration, requireDuration } from "../../src/core/durations.ts";
import { isCofferError } from "../../src/errors.ts";

const UNITS: [string, number][] = [
  ["ms", 1],
  ["s", 1000],
  ["m", 60_000],
  ["h", 3_600_000],
  ["d", 86_400_000],
  ["w", 604_800_000],
];

test("the grammar: a whole number and one unit of ms, s, m, h, d or w, in milliseconds", () => {
  const table: [string, number][] = [
    ["0ms", 0],
    ["500ms", 500],
    ["1s", 1000],
    ["30s", 30_000],
    ["1m", 60_000],
    ["90m", 5_400_000],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    ["90d", 7_776_000_000],
    ["1w", 604_800_000],
    ["2w", 1_209_600_000],
    ["007s", 7000],
    [`${Number.MAX_SAFE_INTEGER}ms`, Number.MAX_SAFE_INTEGER],
  ];
  for (const [text, ms] of table) assert.equal(parseDuration(text), ms, text);
});

test("every unit round-trips: parseDuration(n + unit) is n times the unit, and formatDuration writes it back", () => {
  // a deterministic spread of numbers per unit, from 0 to the largest that stays a safe integer
  for (const [unit, size] of UNITS) {
    const largest = Math.floor(Number.MAX_SAFE_INTEGER / size);
    const samples = [0, 1, 2, 7, 59, 60, 61, 999, 1000, 1001, 86_399, 123_456_789, largest - 1, largest];
    for (let i = 1; i < 200; i++) samples.push(Math.floor((largest / 199) * i));
    for (const n of samples.filter((x) => x <= largest)) {
      const ms = parseDuration(`${n}${unit}`);
      assert.equal(ms, n * size, `${n}${unit}`);
      assert.equal(parseDuration(formatDuration(ms!)), ms, `${n}${unit} formats as ${formatDuration(ms!)}`);
    }
    assert.equal(parseDuration(`${largest + 1}${unit}`), undefined, `${largest + 1}${unit} is past MAX_SAFE_INTEGER ms`);
  }
});

test("formatDuration writes the largest unit that holds the value exactly", () => {
  assert.equal(formatDuration(100), "100ms");
  assert.equal(formatDuration(1500), "1500ms");
  assert.equal(formatDuration(1000), "1s");
  assert.equal(formatDuration(3_600_000), "1h");
  assert.equal(formatDuration(86_400_000), "1d");
  assert.equal(formatDuration(366 * 86_400_000), "366d");
  assert.equal(formatDuration(14 * 86_400_000), "2w");
  assert.equal(formatDuration(0), "0ms");
});

test("not a duration: empty, bare numbers, signs, fractions, unknown units, spaces, case, overflow", () => {
  const bad = [
    "",
    "1", // a bare number: the unit is always written
    "30",
    "m",
    "ms",
    "-1s",
    "+1s",
    "1.5s",
    ".5s",
    "1e3ms",
    "0x10s",
    "1y",
    "1mo",
    "1min",
    "1sec",
    "1us",
    "1ns",
    "1M",
    "1S",
    "1W",
    "1s1",
    "1h30m",
    "1 m",
    " 1s",
    "1s ",
    "1s\n",
    "\t1s",
    "１s", // a full-width digit
    "9007199254740992ms", // MAX_SAFE_INTEGER + 1
    "99999999999999999ms",
    "9999999999999999w",
    "15250284452w", // just past MAX_SAFE_INTEGER ms in weeks
    "1".repeat(10_000) + "s",
  ];
  for (const text of bad) assert.equal(parseDuration(text), undefined, JSON.stringify(text.slice(0, 40)));
  assert.deepEqual(checkDuration("1h30m"), { rule: DURATION_RULE });
});

test("bounds are the caller's, written in the grammar's own units", () => {
  assert.deepEqual(checkDuration("500ms", { min: 100, max: 3_600_000 }), { ok: 500 });
  assert.deepEqual(checkDuration("99ms", { min: 100, max: 3_600_000 }), { rule: "must be between 100ms and 1h" });
  assert.deepEqual(checkDuration("2w", { min: 100, max: 3_600_000 }), { rule: "must be between 100ms and 1h" });
  assert.deepEqual(checkDuration("0s", { min: 1000 }), { rule: "must be at least 1s" });
  assert.deepEqual(checkDuration("2d", { max: 86_400_000 }), { rule: "must be at most 1d" });
  assert.deepEqual(checkDuration("2w"), { ok: 1_209_600_000 });
});

test("requireDuration names what was being set and the rule, with the caller's error code", () => {
  assert.equal(requireDuration("2w", "--rotate-every"), 1_209_600_000);
  const caught = (f: () => unknown): { code: string; message: string } => {
    try {
      f();
    } catch (err) {
      assert.ok(isCofferError(err));
      return { code: err.code, message: err.message };
    }
    assert.fail("no error");
  };
  assert.deepEqual(caught(() => requireDuration("soon", "--restart-grace")), {
    code: "E_INVALID_VALUE",
    message: `invalid --restart-grace "soon": ${DURATION_RULE}`,
  });
  assert.deepEqual(caught(() => requireDuration("0ms", "--restart-grace", { min: 1 }, "E_USAGE")), {
    code: "E_USAGE",
    message: `invalid --restart-grace "0ms": must be at least 1ms`,
  });
  assert.match(caught(() => requireDuration("x".repeat(500), "--since")).message, /^invalid --since "x{40}…": /);
});
