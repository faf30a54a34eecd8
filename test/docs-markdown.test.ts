/**
 * The README and docs/*.md render as written: every ``` fence is closed (an unclosed one swallows
 * the rest of the page into a code block) and every table is one block (a blank line inside a
 * table ends it, and the rows after it render as stray text).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const DELIMITER_ROW = /^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

/** The cells of a table row: split on `|` outside code spans and not escaped. */
function cellCount(row: string): number {
  let cells = 1;
  let inCode = false;
  const body = row.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === "\\") i++;
    else if (ch === "`") inCode = !inCode;
    else if (ch === "|" && !inCode) cells++;
  }
  return cells;
}

/** Problems with `text`'s fences and tables, one line each, naming the line. */
function markdownProblems(text: string): string[] {
  const lines = text.split("\n");
  const problems: string[] = [];
  let open: { marker: string; line: number } | undefined;
  let table: { line: number; cells: number } | undefined;
  let lastTableEnd: number | undefined; // line number of the last row of the table just ended
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const n = i + 1;
    const fence = FENCE.exec(line);
    if (open !== undefined) {
      if (fence !== null && fence[1]![0] === open.marker[0] && fence[1]!.length >= open.marker.length) {
        if (fence[2]!.trim() === "") open = undefined;
        else if (fence[2]!.includes("`")) problems.push(`line ${n}: text after a closing \`\`\` keeps the fence open (a closing fence stands alone on its line)`);
        else problems.push(`line ${n}: a fence opens inside the one opened at line ${open.line}: is that one unclosed?`);
      }
      continue;
    }
    if (fence !== null) {
      if (fence[1]![0] === "`" && fence[2]!.includes("`")) {
        problems.push(`line ${n}: text after a \`\`\` is not a fence (a closing fence stands alone on its line)`);
        continue;
      }
      open = { marker: fence[1]!, line: n };
      table = undefined;
      continue;
    }
    const isRow = line.trimStart().startsWith("|");
    if (isRow && table === undefined) {
      const next = lines[i + 1] ?? "";
      if (!DELIMITER_ROW.test(next.trim())) {
        problems.push(
          lastTableEnd !== undefined && lastTableEnd >= n - 2
            ? `line ${n}: a blank line splits the table above (rows after it are not part of it)`
            : `line ${n}: a table row without a header and a delimiter row (| --- |) under it`,
        );
      }
      table = { line: n, cells: cellCount(line) };
    } else if (isRow && table !== undefined) {
      const cells = cellCount(line);
      if (cells !== table.cells) problems.push(`line ${n}: ${cells} cells where the table's header (line ${table.line}) has ${table.cells}`);
    } else if (table !== undefined) {
      lastTableEnd = n - 1;
      table = undefined;
    }
  }
  if (open !== undefined) problems.push(`line ${open.line}: this fence is never closed`);
  return problems;
}

function docs(): string[] {
  const dir = `${ROOT}docs`;
  return ["README.md", ...readdirSync(dir).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
}

test("an unclosed fence or a split table in README.md or docs/*.md fails (they swallow or scatter the text after them)", () => {
  const found: string[] = [];
  for (const file of docs()) {
    for (const p of markdownProblems(readFileSync(`${ROOT}${file}`, "utf8"))) found.push(`${file} ${p}`);
  }
  assert.deepEqual(found, []);
});

test("the checker finds a fence closed with text after it, as the README once had", () => {
  const text = "```sh\nalias coffer=…\n``` `npm run build` emits\n\n## Tour\n\n```sh\n$ coffer init\n```\n";
  const problems = markdownProblems(text);
  assert.deepEqual(problems, [
    "line 3: text after a closing ``` keeps the fence open (a closing fence stands alone on its line)",
    "line 7: a fence opens inside the one opened at line 1: is that one unclosed?",
  ]);
});

test("the checker finds a fence never closed", () => {
  assert.deepEqual(markdownProblems("text\n```sh\ncode\n"), ["line 2: this fence is never closed"]);
  assert.deepEqual(markdownProblems("````md\n```sh\nx\n```\n````\n"), [], "a longer fence may hold a shorter one");
});

test("the checker finds a table split by a blank line, and a row with the wrong number of cells", () => {
  const split = "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n| 3 | 4 |\n";
  assert.deepEqual(markdownProblems(split), ["line 5: a blank line splits the table above (rows after it are not part of it)"]);
  assert.deepEqual(markdownProblems("| a | b |\n| --- | --- |\n| 1 | `x|y` |\n| 2 |\n"), ["line 4: 1 cells where the table's header (line 1) has 2"]);
  assert.deepEqual(markdownProblems("| a | b |\n| --- | --- |\n\n| c |\n| --- |\n"), [], "two tables, each with its header");
});
