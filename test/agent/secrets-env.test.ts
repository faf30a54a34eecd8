import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { parse } from "dotenv";
import { formatSecretsEnv, parseSecretsEnv } from "../../src/deliver/formats/secrets-env.ts";
import { tempDir } from "../helpers.ts";

/**
 * systemd's `EnvironmentFile=` reader, written from systemd.exec(5) and the state machine of
 * src/basic/env-file.c (parse_env_file_internal + load_env_file_push):
 * - `#`/`;` at the start of a line begin a comment; whitespace (space, tab, CR, LF) before a key
 *   is skipped; a key line without `=` is dropped; trailing whitespace of the key is cut.
 * - After `=`: whitespace is skipped; `'` opens a literal string (any char but `'`, lines too);
 *   `"` opens a string where `\` + one of `"\`$` gives that char, `\`+LF is dropped, `\` + other
 *   keeps both; `\` unquoted keeps the next char (LF dropped); other text runs to the line end,
 *   trailing whitespace cut. After a closing quote the parser is back "before the value", so
 *   pieces concatenate, as in a shell.
 * - A pushed pair with invalid UTF-8 is an error (we work on JS strings: lone surrogates).
 * - A later assignment of the same key replaces the earlier one.
 */
function systemdEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const WS = " \t\n\r";
  const NL = "\n\r";
  type State = "PRE_KEY" | "KEY" | "PRE_VALUE" | "VALUE" | "VALUE_ESCAPE" | "SQ" | "DQ" | "DQ_ESCAPE" | "COMMENT" | "COMMENT_ESCAPE";
  let state: State = "PRE_KEY";
  let key = "";
  let value: string | null = null;
  let lastKeyWs = -1;
  let lastValueWs = -1;
  const add = (c: string) => {
    value = (value ?? "") + c;
  };
  const push = (trimValue: boolean) => {
    let k = key;
    if (lastKeyWs !== -1) k = k.slice(0, lastKeyWs);
    let v: string = value ?? "";
    if (trimValue && lastValueWs !== -1) v = v.slice(0, lastValueWs);
    assert.ok(k.isWellFormed() && v.isWellFormed(), "systemd refuses invalid UTF-8");
    out.set(k, v);
    key = "";
    value = null;
  };
  for (const c of text) {
    switch (state) {
      case "PRE_KEY":
        if ("#;".includes(c)) state = "COMMENT";
        else if (!WS.includes(c)) {
          state = "KEY";
          lastKeyWs = -1;
          key += c;
        }
        break;
      case "KEY":
        if (NL.includes(c)) {
          state = "PRE_KEY";
          key = "";
        } else if (c === "=") {
          state = "PRE_VALUE";
          lastValueWs = -1;
        } else {
          if (!WS.includes(c)) lastKeyWs = -1;
          else if (lastKeyWs === -1) lastKeyWs = key.length;
          key += c;
        }
        break;
      case "PRE_VALUE":
        if (NL.includes(c)) {
          state = "PRE_KEY";
          push(false);
        } else if (c === "'") state = "SQ";
        else if (c === '"') state = "DQ";
        else if (c === "\\") state = "VALUE_ESCAPE";
        else if (!WS.includes(c)) {
          state = "VALUE";
          add(c);
        }
        break;
      case "VALUE":
        if (NL.includes(c)) {
          state = "PRE_KEY";
          push(true);
        } else if (c === "\\") {
          state = "VALUE_ESCAPE";
          lastValueWs = -1;
        } else {
          if (!WS.includes(c)) lastValueWs = -1;
          else if (lastValueWs === -1) lastValueWs = (value ?? "").length;
          add(c);
        }
        break;
      case "VALUE_ESCAPE":
        state = "VALUE";
        if (!NL.includes(c)) add(c);
        break;
      case "SQ":
        if (c === "'") state = "PRE_VALUE";
        else add(c);
        break;
      case "DQ":
        if (c === '"') state = "PRE_VALUE";
        else if (c === "\\") state = "DQ_ESCAPE";
        else add(c);
        break;
      case "DQ_ESCAPE":
        state = "DQ";
        if ('"\\`$'.includes(c)) add(c);
        else if (c !== "\n") add(`\\${c}`);
        break;
      case "COMMENT":
        if (c === "\\") state = "COMMENT_ESCAPE";
        else if (NL.includes(c)) state = "PRE_KEY";
        break;
      case "COMMENT_ESCAPE":
        state = NL.includes(c) ? "PRE_KEY" : "COMMENT";
        break;
    }
  }
  if (state !== "PRE_KEY" && state !== "KEY" && state !== "COMMENT" && state !== "COMMENT_ESCAPE") push(state === "VALUE");
  return out;
}

/** Pieces that stress every quoting rule of the three readers. */
const PIECES = [
  "a", "Z", "0", " ", "  ", "\t", "\n", "\r\n", "\r", "'", '"', "`", "$", "${HOME}", "$(id)", "#", " #", ";", "=", "\\", "\\n", "\\r",
  "\\\\", "\\'", "\\a", "\\$", "ü", "日本", "🔑", "\u2028", "\u2029", "\u00a0", "\ufeff", "\ufffe", "\ud800", "\x1b", "\x7f", "\0",
  "export ", "K=v", "'\\''", "!", "!!", "~", "*", "?", "[a]", "\\\n",
];

function randomValue(): string {
  let s = "";
  for (let n = randomInt(0, 8); n > 0; n--) s += PIECES[randomInt(PIECES.length)];
  return s;
}

const FIXED = [
  "", "plain", "with space", " lead", "trail ", "a#b", "a #b", "#x", "line1\nline2", "end\n", "\nstart", "\n", "\n\n", "it's",
  "it's \"quoted\"", "say 'hi' \\o/", 'say "hi"', "back`tick", "$HOME", "'$HOME'", "x=y", "\ttab\t", "ünïcødé 🔑", "a\u2028b",
  "lit\\nnot-newline", "tail\\", "it's tail\\", "it's\nmulti\nline", "'", "''", "' '", " ' ", "\\", "a\\b", "a\\\\b", "C:\\dir\\file",
];

const name = (i: number): string => `V_${i}`;

interface Outcome {
  accepted: [string, string][];
  refused: [string, string, Error & { code?: string }][];
}

function classify(values: readonly string[]): Outcome {
  const out: Outcome = { accepted: [], refused: [] };
  values.forEach((v, i) => {
    try {
      const line = formatSecretsEnv([[name(i), v]]);
      assert.ok(line.endsWith("\n") && line.startsWith(`${name(i)}=`), JSON.stringify(line));
      out.accepted.push([name(i), v]);
    } catch (err) {
      out.refused.push([name(i), v, err as Error & { code?: string }]);
    }
  });
  return out;
}

/** Reads the variables back with real bash, in one bash run: `set -a; source FILE`. */
function bashReads(file: string, names: readonly string[]): string[] {
  const script = `set -a; source "$1" || exit 9; for n in ${names.join(" ")}; do printf '%s\\0' "\${!n}"; done`;
  const r = spawnSync("bash", ["--norc", "--noprofile", "-c", script, "x", file], { maxBuffer: 256 << 20, env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.equal(r.stderr.toString(), "");
  const got = r.stdout.toString("utf8").split("\0");
  assert.equal(got.pop(), "");
  return got;
}

test("every accepted value reads back the same in bash, dotenv (both parsers), systemd and parseSecretsEnv", (t) => {
  const values = [...FIXED, ...PIECES, ...Array.from({ length: 4000 }, randomValue)];
  const { accepted, refused } = classify(values);
  assert.ok(accepted.length > values.length / 3, `accepted ${accepted.length} of ${values.length}`);
  assert.ok(refused.length > 0);
  const text = formatSecretsEnv(accepted);
  const expected = new Map(accepted);

  // (a) bash
  const file = join(tempDir(t), "secrets.env");
  writeFileSync(file, text);
  assert.deepEqual(bashReads(file, accepted.map(([n]) => n)), accepted.map(([, v]) => v));
  // (b) dotenv: its default parser and its `fast` one
  assert.deepEqual(new Map(Object.entries(parse(text))), expected);
  assert.deepEqual(new Map(Object.entries(parse(text, { fast: true } as never))), expected);
  // (c) systemd EnvironmentFile=
  assert.deepEqual(systemdEnvFile(text), expected);
  // (d) coffer's own strict reader
  assert.deepEqual(parseSecretsEnv(text), accepted);

  // Each value also alone (no neighbour can rescue or mask a bad line).
  for (const [n, v] of accepted.slice(0, 600)) {
    const one = formatSecretsEnv([[n, v]]);
    assert.equal(parse(one)[n], v, JSON.stringify(v));
    assert.equal(parse(one, { fast: true } as never)[n], v, JSON.stringify(v));
    assert.equal(systemdEnvFile(one).get(n), v, JSON.stringify(v));
  }

  // Refusals: E_INVALID_VALUE, naming the variable, never holding the value.
  for (const [n, v, err] of refused) {
    assert.equal(err.code, "E_INVALID_VALUE", String(err));
    assert.match(err.message, new RegExp(`^${n}: a value with .* cannot be written so that bash, dotenv and systemd EnvironmentFile= all read it the same; `));
    if (v.length >= 4) assert.ok(!err.message.includes(v), err.message);
  }
});

test("the forms it writes", () => {
  assert.equal(formatSecretsEnv([]), "");
  assert.equal(
    formatSecretsEnv([["A", ""], ["B", "plain"], ["C", "$x `y` \"z\" #"], ["D", "l1\nl2"], ["E", "it's"], ["F", "it's a\\b\nc"]]),
    "A=''\nB='plain'\nC='$x `y` \"z\" #'\nD='l1\nl2'\nE=\"it's\"\nF=\"it's a\\b\nc\"\n",
  );
  assert.ok(!formatSecretsEnv([["X", "v"]]).includes("export"));
});

test("refusals name the variable and the reason, never the value", () => {
  const cases: [string, RegExp][] = [
    ["pa\0ss", /NUL byte/],
    ["pa\rss", /carriage return/],
    ["pa\x1bss", /control character/],
    ["pass\\", /trailing backslash/],
    ["it's $HOME", /single quote and \$/],
    ["it's \"x\"", /single quote and "/],
    ["it's `x`", /single quote and `/],
    ["it's a\\nb", /single quote and a backslash/],
    ["it's a\\\\b", /single quote and a backslash/],
    ["it's a\\\nb", /single quote and a backslash/],
    ["bad \ud800", /not valid Unicode/],
    ["bom \ufeff", /U\+FEFF/],
    ["non \ufdd0", /noncharacter/],
    ["x".repeat(128 * 1024), /128 KiB/],
  ];
  for (const [value, reason] of cases) {
    assert.throws(() => formatSecretsEnv([["OK", "fine"], ["DB_PASSWORD", value]]), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_INVALID_VALUE");
      assert.match(err.message, /^DB_PASSWORD: a value with /);
      assert.match(err.message, reason);
      assert.ok(!err.message.includes(value.slice(0, 6)), err.message);
      return true;
    });
  }
  // Just under the execve limit is fine: "N=" + value + NUL = 128 KiB.
  assert.doesNotThrow(() => formatSecretsEnv([["N", "x".repeat(128 * 1024 - 3)]]));
  assert.throws(() => formatSecretsEnv([["N", "x".repeat(128 * 1024 - 2)]]), /128 KiB/);
});

test("names: env names only, not bash's own, each once", () => {
  for (const bad of ["", "1A", "A-B", "A B", "A=B", "Ä", "export A"]) {
    assert.throws(() => formatSecretsEnv([[bad, "v"]]), { code: "E_INVALID_NAME" });
  }
  for (const reserved of ["UID", "EUID", "PPID", "SHELLOPTS", "RANDOM", "SECONDS", "BASH_VERSION", "LINENO"]) {
    assert.throws(() => formatSecretsEnv([[reserved, "v"]]), { code: "E_INVALID_NAME", message: new RegExp(`^${reserved} is a variable bash keeps`) });
  }
  assert.throws(() => formatSecretsEnv([["A", "1"], ["A", "2"]]), { code: "E_INVALID_NAME", message: /A is given twice/ });
  assert.equal(formatSecretsEnv([["_a1", "v"], ["PATH_X", "v"]]), "_a1='v'\nPATH_X='v'\n");
});

test("parseSecretsEnv refuses anything formatSecretsEnv does not write, naming the line and never the value", () => {
  const bad: [string, RegExp][] = [
    ["A='x'", /line 1: the value of A must be followed by a line break/],
    ["A='x'\n\nB='y'\n", /line 2: expected NAME=/],
    ["# comment\n", /line 1: expected NAME=/],
    ["export A='x'\n", /line 1: expected NAME=/],
    [" A='x'\n", /line 1: expected NAME=/],
    ["A=x\n", /line 1: the value of A must be in/],
    ["A= 'x'\n", /line 1: the value of A must be in/],
    ["A='x' \n", /line 1: the value of A must be followed by a line break/],
    ["A='x'#c\n", /line 1: the value of A must be followed/],
    ["A='x'y'\n", /line 1: the value of A must be followed/],
    ["A='a\nb'\nB='never closed\n", /line 3: the quote opened for B is never closed/],
    ["A=\"plain\"\n", /line 1: A is not written the way coffer writes it/],
    ["A='x'\nA='y'\n", /line 2: A is set twice/],
    ["A='l1\nl2\nl3'\nB='secret\\'\n", /line 4: B: a value with a trailing backslash/],
    ["A='x'\nB=\"it's $HOME\"\n", /line 2: B: a value with both a single quote and \$/],
    ["A='x'\r\n", /line 1: the value of A must be followed/],
    ["A='a\rb'\n", /line 1: A: a value with a carriage return/],
    ["UID='0'\n", /line 1: UID is a variable bash keeps/],
    ["\ufeffA='x'\n", /line 1: expected NAME=/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseSecretsEnv(text), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_INVALID_VALUE", `${JSON.stringify(text)}: ${err.message}`);
      assert.match(err.message, /^secrets\.env line \d+: /);
      assert.match(err.message, message, JSON.stringify(text));
      assert.ok(!err.message.includes("secret\\") && !err.message.includes("HOME"), err.message);
      return true;
    });
  }
  assert.deepEqual(parseSecretsEnv(""), []);
  assert.deepEqual(parseSecretsEnv("A=''\nB='x\ny'\nC=\"it's\"\n"), [["A", ""], ["B", "x\ny"], ["C", "it's"]]);
});
