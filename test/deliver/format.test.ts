import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { parse } from "dotenv";
import { formatDotenv, formatGithub, formatJson, formatShell, githubDelimiter } from "../../src/deliver/format.ts";
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

/**
 * Every way the test can think of to write `value` for dotenv, used to check that a refusal is
 * right: a form counts when it parses back whatever line follows it (a line may end with any
 * quote kind; a form whose closing quote the parser skips then swallows that line).
 */
function anyDotenvForm(value: string): boolean {
  const esc = value.replace(/\n/g, "\\n").replace(/\r/g, "\\r");
  const forms = [value, `'${value}'`, `"${value}"`, `"${esc}"`, `\`${value}\``, `"${value.replace(/\r/g, "\\r")}"`];
  const after = ["", "N=x\n", "N='\n", 'N="\n', "N=`\n"];
  return forms.some((f) =>
    [`K=${f}\n`, `export K=${f}\n`, `K = ${f} \n`].some((line) => after.every((a) => parse(line + a)["K"] === value)),
  );
}

test("dotenv: strict round trip for every value it accepts; refusals are values no quoting can carry", () => {
  const vals = values(3000);
  const accepted: [string, string][] = [];
  let refused = 0;
  vals.forEach((v, i) => {
    try {
      const text = formatDotenv([[name(i), v]]);
      assert.deepEqual({ ...parse(text) }, { [name(i)]: v }, JSON.stringify(v));
      assert.ok(text.endsWith("\n"));
      accepted.push([name(i), v]);
    } catch (err) {
      refused++;
      assert.equal((err as { code?: string }).code, "E_INVALID_VALUE", String(err));
      const msg = (err as Error).message;
      assert.match(msg, new RegExp(`^variable ${name(i)} cannot be written as dotenv: its value holds `));
      assert.equal(anyDotenvForm(v), false, `refused but writable: ${JSON.stringify(v)}`);
    }
  });
  assert.ok(accepted.length > vals.length / 2, `accepted ${accepted.length} of ${vals.length}`);
  assert.ok(refused > 0);
  // All the accepted values in one file, in order, parse back together.
  const all = formatDotenv(accepted);
  assert.deepEqual(new Map(Object.entries(parse(all))), new Map(accepted));
});

test("dotenv: the simple forms it picks", () => {
  assert.equal(formatDotenv([["A", ""], ["B", "plain"], ["C", " x "], ["D", "a#b"], ["E", "l1\nl2"], ["F", "it's #"]]),
    "A=\nB=plain\nC=' x '\nD='a#b'\nE='l1\nl2'\nF=\"it's #\"\n");
  assert.equal(formatDotenv([["G", "cr\r\nlf"]]), 'G="cr\\r\\nlf"\n');
  assert.equal(formatDotenv([["H", "'\"#\n"]]), "H=`'\"#\n`\n");
  assert.equal(formatDotenv([]), "");
});

test("dotenv: all three quote kinds, a line break and a # are refused naming the variable, never the value", () => {
  const secret = "p'a\"s`s\nw#rd";
  assert.throws(() => formatDotenv([["OK", "x"], ["DB_PASSWORD", secret]]), (err: Error & { code?: string }) => {
    assert.equal(err.code, "E_INVALID_VALUE");
    assert.match(err.message, /variable DB_PASSWORD cannot be written as dotenv: its value holds all three quote kinds, a line break and a #/);
    assert.ok(!err.message.includes("w#rd") && !err.message.includes("p'a"));
    return true;
  });
  // A carriage return needs double quotes; with a literal backslash-n those would change it.
  assert.throws(() => formatDotenv([["X", "a\\nb\rc"]]), { code: "E_INVALID_VALUE", message: /variable X .*carriage return/ });
});

test("every format refuses a NUL byte naming the variable", () => {
  const vars = [["NUL_VAR", "a\0b"]] as const;
  for (const f of [formatDotenv, formatShell, formatJson, (v: typeof vars) => formatGithub(v)]) {
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
