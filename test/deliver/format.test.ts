import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { parse } from "dotenv";
import dotenvx from "@dotenvx/dotenvx";
import { formatDocker, formatDotenv } from "../../src/deliver/formats/dotenv.ts";
import { formatGithub, githubDelimiter } from "../../src/deliver/formats/github.ts";
import { formatJson, formatShell } from "../../src/deliver/formats/shell.ts";
import { tempDir } from "../helpers.ts";

/** Pieces that stress every quoting rule. */
const PIECES = [
  "a", "Z", "0", " ", "  ", "\t", "\n", "\r\n", "\r", "'", '"', "`", "$", "${HOME}", "$(id)", "#", " #", "=", "\\", "\\n", "\\r",
  "\\\\", "ü", "日本", "🔑", "\u2028", "\u00a0", "export ", "K=v", "%0A", "%", "::", "<<", "EOF", "ghadelimiter_",
];

function randomValue(): string {
  let s = "";
  for (let n = randomInt(0, 8); n > 0; n--) s += PIECES[randomInt(PIECES.length)];
  return s;
}

/** Fixed values first (each edge on its own), then random combinations. */
function values(count: number): string[] {
  const fixed = [
    "", "plain", "with space", " lead", "trail ", "a#b", "a #b", "#x", "line1\nline2", "crlf\r\nline", "cr\ronly", "end\n",
    "\nstart", "it's", 'say "hi"', "back`tick", "'\"`", "'\"`\n", "'quoted'", '"dq"', "`bt`", "lit\\nnot-newline", "\\n\n", "tail\\",
    "a\\'b\"c`d\ne", "$HOME", "x=y", "\ttab\t", "ünïcødé 🔑", "a\u2028b", "\\r\r", "%0A%25", "::add-mask::x",
  ];
  return [...fixed, ...PIECES, ...Array.from({ length: count }, randomValue)];
}

const name = (i: number): string => `V_${i}`;

/** True for the values no dotenv line can carry so that dotenv, dotenvx and sh all agree. */
function uncarriable(v: string): boolean {
  return v.includes("\r") || v.includes("\0") || (!v.includes("'") && v.endsWith("\\")) || (v.includes("'") && /["$`\\]/.test(v));
}

/** What `sh -c 'set -a; . FILE'` reads for each name (one sh run). */
function shRead(dir: string, text: string, names: readonly string[]): string[] {
  const file = join(dir, "env");
  writeFileSync(file, text);
  const script = `set -a; . "$1"; printf '%s\\0' ${names.map((n) => `"$${n}"`).join(" ")}`;
  const r = spawnSync("sh", ["-c", script, "sh", file], { cwd: dir, maxBuffer: 64 << 20, env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
  assert.equal(r.status, 0, r.stderr.toString());
  const got = r.stdout.toString("utf8").split("\0");
  assert.equal(got.pop(), "");
  return got;
}

test("dotenv: every value it accepts reads back exactly in dotenv, dotenvx and sh, and nothing in it runs", (t) => {
  const dir = tempDir(t);
  const marker = join(dir, "ran");
  const hostile = [
    `$(touch ${marker})`, `\`touch ${marker}\``, `\${HOME}`, "$HOME", "a # b", "#x", " lead", "trail ", "\\n\\t", "C:\\dir\\x",
    "it's", "l1\nl2\n", "\nstart", 'say "hi"', "ünïcødé 🔑 日本", "\u2028", "a=b", "export X=1", "\t", "`", '"', "%",
  ];
  const vals = [...hostile, ...values(3000)];
  const accepted: [string, string][] = [];
  vals.forEach((v, i) => {
    try {
      const text = formatDotenv([[name(i), v]]);
      assert.ok(text.endsWith("\n"));
      accepted.push([name(i), v]);
    } catch (err) {
      assert.equal((err as { code?: string }).code, "E_INVALID_VALUE", String(err));
      assert.match((err as Error).message, new RegExp(`^variable ${name(i)} cannot be written as dotenv: its value holds `));
      assert.ok(uncarriable(v), `refused but carriable: ${JSON.stringify(v)}`);
    }
  });
  for (const v of hostile.filter((h) => !uncarriable(h))) assert.ok(accepted.some(([, a]) => a === v), JSON.stringify(v));
  assert.equal(accepted.length, vals.filter((v) => !uncarriable(v)).length, "only the uncarriable are refused");
  const text = formatDotenv(accepted);
  const expected = Object.fromEntries(accepted);
  assert.deepEqual({ ...parse(text) }, expected, "dotenv");
  assert.deepEqual(dotenvx.parse(text, { processEnv: {} }), expected, "dotenvx");
  assert.deepEqual(shRead(dir, text, accepted.map(([n]) => n)), accepted.map(([, v]) => v), "sh");
  assert.equal(existsSync(marker), false, "no value ran");
});

test("dotenv: the forms it writes", () => {
  assert.equal(formatDotenv([["A", ""], ["B", "plain"], ["C", " x "], ["D", "a#b"], ["E", "l1\nl2"], ["F", "it's #"], ["G", "$(id)"]]),
    "A=''\nB='plain'\nC=' x '\nD='a#b'\nE='l1\nl2'\nF=\"it's #\"\nG='$(id)'\n");
  assert.equal(formatDotenv([]), "");
});

test("dotenv: a value no quoting carries in all three readers is refused naming the variable, never the value", () => {
  const secret = "p'a$sw0rd";
  assert.throws(() => formatDotenv([["OK", "x"], ["DB_PASSWORD", secret]]), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_INVALID_VALUE");
    assert.match(err.message, /^variable DB_PASSWORD cannot be written as dotenv: its value holds a single quote and a \$, .*; use --format shell or json/);
    assert.ok(!err.message.includes("sw0rd"));
    return true;
  });
  assert.throws(() => formatDotenv([["X", "a\r\nb"]]), { code: "E_INVALID_VALUE", message: /variable X .*carriage return/ });
  assert.throws(() => formatDotenv([["Y", "C:\\dir\\"]]), { code: "E_INVALID_VALUE", message: /variable Y .*trailing backslash/ });
});

test("docker: raw NAME=value lines; a line break is refused naming the variable", () => {
  assert.equal(formatDocker([["A", `it's "q" $(id) # x `], ["B", ""], ["C", "ü"]]), `A=it's "q" $(id) # x \nB=\nC=ü\n`);
  for (const v of ["a\nb", "a\rb", "end\n"]) {
    assert.throws(() => formatDocker([["OK", "x"], ["MULTI", v]]), (err: Error & { code?: string }) => {
      assert.equal(err.code, "E_INVALID_VALUE");
      assert.match(err.message, /^variable MULTI cannot be written as a Docker env file: its value holds a line break/);
      return true;
    });
  }
});

test("every format refuses a NUL byte naming the variable", () => {
  const vars = [["NUL_VAR", "a\0b"]] as const;
  for (const f of [formatDotenv, formatShell, formatJson, formatDocker, (v: typeof vars) => formatGithub(v)]) {
    assert.throws(() => f(vars), { code: "E_INVALID_VALUE", message: /variable NUL_VAR .*NUL byte/ });
  }
});

test("shell: bash gives back every byte of every value (one bash run)", (t) => {
  const dir = tempDir(t);
  const vals = values(2000);
  const vars = vals.map((v, i) => [name(i), v] as const);
  const file = join(dir, "env.sh");
  writeFileSync(file, formatShell(vars));
  const script = `set -e; source "$1"; for n in ${vars.map(([n]) => n).join(" ")}; do printf '%s\\0' "\${!n}"; done`;
  const r = spawnSync("bash", ["-c", script, "x", file], { maxBuffer: 64 << 20, env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" } });
  assert.equal(r.status, 0, r.stderr.toString());
  const got = r.stdout.toString("utf8").split("\0");
  assert.equal(got.pop(), "");
  assert.deepEqual(got, vals);
});

test("shell: the quoting", () => {
  assert.equal(formatShell([["A", "it's"], ["B", ""], ["C", "$x\n`y`"]]), "export A='it'\\''s'\nexport B=''\nexport C='$x\n`y`'\n");
});

test("json: an object in order, pretty, with a trailing newline", () => {
  const vals = values(200);
  const vars = vals.map((v, i) => [name(i), v] as const);
  const text = formatJson(vars);
  assert.ok(text.endsWith("}\n"));
  const back = JSON.parse(text) as Record<string, string>;
  assert.deepEqual(Object.entries(back), vars.map(([n, v]) => [n, v]));
  assert.equal(formatJson([["B", "1"], ["A", "x\ny"]]), '{\n  "B": "1",\n  "A": "x\\ny"\n}\n');
  assert.equal(formatJson([]), "{}\n");
  assert.deepEqual(Object.keys(JSON.parse(formatJson([["__proto__", "x"]])) as object), ["__proto__"]);
});

/**
 * GitHub's `$GITHUB_ENV` rules, as the runner reads them on Linux and macOS: lines split at
 * `\n`; `NAME=value`, or `NAME<<DELIM`, the lines up to a line equal to DELIM, joined by `\n`.
 */
function parseGithubEnv(text: string): [string, string][] {
  const out: [string, string][] = [];
  const lines = text.split("\n");
  assert.equal(lines.pop(), "", "the file ends with a newline");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    const eq = line.indexOf("=");
    const hd = line.indexOf("<<");
    if (eq >= 0 && (hd < 0 || eq < hd)) {
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
    } else {
      assert.ok(hd > 0, `bad line ${JSON.stringify(line)}`);
      const delim = line.slice(hd + 2);
      const body: string[] = [];
      for (i++; lines[i] !== delim; i++) {
        assert.ok(i < lines.length, "matching delimiter not found");
        body.push(lines[i] as string);
      }
      out.push([line.slice(0, hd), body.join("\n")]);
    }
  }
  return out;
}

/** The runner's unescaping of workflow-command data. */
const unescapeData = (s: string): string => s.replaceAll("%0D", "\r").replaceAll("%0A", "\n").replaceAll("%25", "%");

test("github: the env file parses back; one add-mask per non-blank line", () => {
  const vals = values(2000);
  const vars = vals.map((v, i) => [name(i), v] as const);
  const { stdout, envFile } = formatGithub(vars);
  assert.deepEqual(parseGithubEnv(envFile), vars.map(([n, v]) => [n, v]));
  const expectedMasks = vals.flatMap((v) => v.split(/\r\n|\r|\n/).filter((l) => l.trim() !== ""));
  const lines = stdout.split("\n");
  assert.equal(lines.pop(), "");
  assert.deepEqual(lines.map((l) => {
    assert.ok(l.startsWith("::add-mask::"));
    return unescapeData(l.slice("::add-mask::".length));
  }), expectedMasks);
  for (const l of lines) assert.ok(!/\r/.test(l));
});

test("github: forms, masks and delimiters", () => {
  const { stdout, envFile } = formatGithub([["A", "one"], ["B", ""], ["C", "l1\n\nl3 50%"], ["D", "cr\ronly"]], () => "EOF");
  assert.equal(stdout, "::add-mask::one\n::add-mask::l1\n::add-mask::l3 50%25\n::add-mask::cr\n::add-mask::only\n");
  assert.equal(envFile, "A=one\nB=\nC<<EOF\nl1\n\nl3 50%\nEOF\nD<<EOF\ncr\ronly\nEOF\n");
  assert.match(githubDelimiter(), /^ghadelimiter_[0-9a-f]{32}$/);
  assert.notEqual(githubDelimiter(), githubDelimiter());
});

test("github: a delimiter that occurs in the value is regenerated", () => {
  const candidates = ["ghadelimiter_x", "x_ghadelimiter_y", "ghadelimiter_z"];
  let calls = 0;
  const { envFile } = formatGithub([["V", "a\nghadelimiter_x\nb x_ghadelimiter_y"]], () => candidates[calls++] ?? "never");
  assert.equal(calls, 3);
  assert.equal(envFile, "V<<ghadelimiter_z\na\nghadelimiter_x\nb x_ghadelimiter_y\nghadelimiter_z\n");
  assert.deepEqual(parseGithubEnv(envFile), [["V", "a\nghadelimiter_x\nb x_ghadelimiter_y"]]);
  assert.throws(() => formatGithub([["V", "a\nEOF"]], () => "EOF"), { code: "E_INTERNAL", message: /variable V/ });
});
