import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkParams,
  checkRunbook,
  claimsMatch,
  DEFAULT_OUTPUT_LIMIT,
  DEFAULT_TIMEOUT_MS,
  MATCH_TIMEOUT_MS,
  MAX_RUNBOOK_BYTES,
  parseRunbook,
  runbookEnvNameRule,
  type Runbook,
} from "../../src/runbooks/definition.ts";
import { configError } from "../helpers.ts";

const F = "cdn-flush.yml";

const ISSUE_EXAMPLE = `description: Flush the CDN cache for one region
run: |                      # the script; given to \`shell\` as a file, never on argv
  echo "flushing $REGION"
shell: /bin/sh              # default /bin/sh
params:                     # each becomes an env var of the same name
  REGION: { pattern: "^[a-z0-9-]{1,32}$", required: true, description: the region }
  NOTE: { required: false, default: "" }
secrets:                    # env var ← secret in the server's store
  CDN_TOKEN: cdn/token
files:                      # file in the execution dir, mode 0400; the env var holds its path
  CLIENT_KEY: cdn/client-key
timeout: 10m                # default 10m
outputLimit: 10MiB          # default 10MiB, stdout and stderr together (B, KiB, MiB, GiB)
concurrency: 1              # optional: at most N running at once; more get 409
approvals: 0                # optional: how many other people must approve before it runs
isolation: tempdir          # tempdir (default) or sandbox
require: { claims: { team: ops } }
`;

const problems = (text: string, name = "rb"): string[] => {
  const r = checkRunbook(name, F, text);
  assert.ok("problems" in r, "expected problems");
  return r.problems;
};
const one = (text: string): Runbook => parseRunbook("rb", F, text);

test("the issue's example parses to the documented shape", () => {
  const r = parseRunbook("cdn-flush", F, ISSUE_EXAMPLE);
  assert.equal(r.name, "cdn-flush");
  assert.equal(r.file, F);
  assert.equal(r.description, "Flush the CDN cache for one region");
  assert.equal(r.run, 'echo "flushing $REGION"\n');
  assert.equal(r.shell, "/bin/sh");
  assert.deepEqual({ ...r.params }, {
    REGION: { required: true, pattern: "^[a-z0-9-]{1,32}$", description: "the region", default: null },
    NOTE: { required: false, pattern: null, description: null, default: "" },
  });
  assert.deepEqual({ ...r.secrets }, { CDN_TOKEN: "cdn/token" });
  assert.deepEqual({ ...r.files }, { CLIENT_KEY: "cdn/client-key" });
  assert.equal(r.timeoutMs, 600_000);
  assert.equal(r.outputLimit, 10 * 1024 * 1024);
  assert.equal(r.concurrency, 1);
  assert.equal(r.approvals, 0);
  assert.equal(r.isolation, "tempdir");
  assert.deepEqual({ ...r.requireClaims }, { team: "ops" });
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r.params) && Object.isFrozen(r.params["REGION"]));
});

test("defaults: only run: is required", () => {
  const r = one("run: 'true'\n");
  assert.equal(r.description, "");
  assert.equal(r.shell, "/bin/sh");
  assert.deepEqual({ ...r.params }, {});
  assert.equal(r.timeoutMs, DEFAULT_TIMEOUT_MS);
  assert.equal(r.outputLimit, DEFAULT_OUTPUT_LIMIT);
  assert.equal(r.concurrency, null);
  assert.equal(r.approvals, 0);
  assert.equal(r.isolation, "tempdir");
  assert.equal(r.requireClaims, null);
  assert.deepEqual(problems("description: x\n"), [`${F}:1: missing run: the script to run`]);
  assert.deepEqual(problems(""), [`${F}:1: the file is empty; a runbook needs at least run: (the script)`]);
  assert.deepEqual(problems("run: ''\n"), [`${F}:1: run must not be empty`]);
});

test("every problem at once, each with file:line, unknown keys included", () => {
  const text = [
    "run: x",
    "foo: 1",
    "timeout: 10",
    "outputLimit: 10MB",
    "approvals: 11",
    "isolation: vm",
    "shell: sh",
    "concurrency: 0",
    "params: { A: { requird: true } }",
  ].join("\n");
  assert.deepEqual(problems(text), [
    `${F}:2: unknown key "foo" in the top level; allowed: description, run, shell, params, secrets, files, timeout, outputLimit, concurrency, approvals, isolation, require`,
    `${F}:3: timeout must be a duration: a whole number with a unit ms, s, m, h, d or w, e.g. 500ms, 30s, 12h, 2w, got number 10`,
    `${F}:4: outputLimit must be a size: a whole number with a unit B, KiB, MiB or GiB (e.g. 512KiB, 10MiB), got "10MB"`,
    `${F}:5: approvals must be a whole number from 0 to 10, got number 11`,
    `${F}:6: isolation must be one of tempdir, sandbox, got "vm"`,
    `${F}:7: shell "sh" must be an absolute path of letters, digits and ._+-/ (no ..)`,
    `${F}:8: concurrency must be a whole number from 1 to 1000, got number 0`,
    `${F}:9: unknown key "requird" in param "A"; allowed: required, pattern, description, default`,
  ]);
  assert.match(configError(() => one(text)), /^cdn-flush\.yml: 8 problems:\n {2}cdn-flush\.yml:2: unknown key "foo"/);
  assert.match(configError(() => one("run: x\nrequire: { claims: {}, other: 1 }\n")), /unknown key "other" in require; allowed: claims[\s\S]*require\.claims is empty/);
});

test("bounds: timeout 1s..1d, outputLimit 1KiB..1GiB, units B KiB MiB GiB", () => {
  assert.equal(one("run: x\ntimeout: 1s\n").timeoutMs, 1000);
  assert.equal(one("run: x\ntimeout: 1d\n").timeoutMs, 86_400_000);
  assert.deepEqual(problems("run: x\ntimeout: 500ms\n"), [`${F}:2: timeout must be between 1s and 1d, got "500ms"`]);
  assert.deepEqual(problems("run: x\ntimeout: 2d\n"), [`${F}:2: timeout must be between 1s and 1d, got "2d"`]);
  assert.equal(one("run: x\noutputLimit: 1024B\n").outputLimit, 1024);
  assert.equal(one("run: x\noutputLimit: 512KiB\n").outputLimit, 512 * 1024);
  assert.equal(one("run: x\noutputLimit: 1GiB\n").outputLimit, 1024 ** 3);
  assert.deepEqual(problems("run: x\noutputLimit: 2GiB\n"), [`${F}:2: outputLimit must be between 1KiB and 1GiB, got "2GiB"`]);
  assert.deepEqual(problems("run: x\noutputLimit: 1023B\n"), [`${F}:2: outputLimit must be between 1KiB and 1GiB, got "1023B"`]);
});

test("a variable that changes how programs load or run is refused in params, secrets and files, with no opt-in", () => {
  for (const name of ["PATH", "HOME", "LD_PRELOAD", "NODE_OPTIONS", "BASH_ENV", "ENV", "PYTHONPATH", "PYTHONWARNINGS", "PERL5OPT", "RUBYOPT", "IFS"]) {
    for (const section of ["params: { NAME: {} }", "secrets: { NAME: a/b }", "files: { NAME: a/b }"]) {
      const p = problems(`run: x\n${section.replace("NAME", name)}\n`);
      assert.equal(p.length, 1, `${name} in ${section}`);
      assert.match(p[0]!, new RegExp(`^${F}:2: (params|secrets|files): variable "${name}" (changes how programs load or run|is set by the server)`));
    }
  }
  assert.match(problems("run: x\nsecrets: { allowDangerous: [PATH] }\n")[0]!, /secrets "allowDangerous": invalid secret name|must be/);
});

test("a variable the executor sets itself (PATH, HOME, LANG, COFFER_*) cannot be replaced by a param", () => {
  for (const name of ["LANG", "COFFER_EXECUTION_ID", "COFFER_X", "TMPDIR", "PWD"]) {
    assert.match(runbookEnvNameRule(name) ?? "", /is set by the server for every execution/, name);
    assert.match(problems(`run: x\nparams: { ${name}: {} }\n`)[0]!, /is set by the server for every execution/);
  }
  assert.equal(runbookEnvNameRule("REGION"), undefined);
  assert.equal(runbookEnvNameRule("coffer_x"), undefined); // not the executor's (case matters in the environment)
  assert.match(runbookEnvNameRule("1A")!, /must match/);
  assert.match(problems("run: x\nparams: { 'A-B': {} }\n")[0]!, /params: variable "A-B" must match \^\[A-Za-z_\]/);
});

test("one variable is set once across params, secrets and files", () => {
  assert.deepEqual(problems("run: x\nparams: { A: {} }\nsecrets: { A: a/b, B: c }\nfiles: { B: d, C: e }\n"), [
    `${F}:3: secrets: variable "A" is already set by params; each variable is set once`,
    `${F}:4: files: variable "B" is already set by secrets; each variable is set once`,
  ]);
  // Two variables from the same secret are fine.
  assert.deepEqual({ ...one("run: x\nsecrets: { A: a/b, B: a/b }\n").secrets }, { A: "a/b", B: "a/b" });
});

test("secret names follow the secret-name rule", () => {
  const p = problems("run: x\nsecrets: { A: ../etc/passwd, B: /abs, C: 'a//b' }\nfiles: { D: 'x y' }\n");
  assert.equal(p.length, 4);
  for (const line of p) assert.match(line, /invalid secret name/);
});

test("patterns: JavaScript with the u flag, at most 256 characters, compiled at parse time", () => {
  assert.match(problems("run: x\nparams: { A: { pattern: '(' } }\n")[0]!, /param "A" pattern is not a JavaScript regular expression \(u flag\)/);
  // Without u, \\- outside a class is an identity escape; with u it is an error: the rule is u.
  assert.match(problems("run: x\nparams: { A: { pattern: '\\q' } }\n")[0]!, /u flag/);
  assert.match(problems(`run: x\nparams: { A: { pattern: '${"a".repeat(257)}' } }\n`)[0]!, /longer than 256 characters/);
  assert.match(problems("run: x\nparams: { A: { pattern: '' } }\n")[0]!, /pattern must not be empty/);
  // A text that compiles only once wrapped must not change meaning: refused.
  assert.match(problems("run: x\nparams: { A: { pattern: 'a)|(b' } }\n")[0]!, /not a JavaScript regular expression/);
});

test("a pattern is always matched against the whole value, anchors written or not", () => {
  const r = one("run: x\nparams: { A: { pattern: '[a-z]+', required: true }, B: { pattern: 'x|y' } }\n");
  assert.deepEqual(checkParams(r, { A: "abc" }), { params: Object.assign(Object.create(null), { A: "abc" }) });
  for (const bad of ["abc; rm -rf /", "1abc", "abc\n", "ABC", ""]) {
    assert.deepEqual(checkParams(r, { A: bad }), { problems: ['param "A" does not match its pattern "[a-z]+" (the whole value must match)'] }, JSON.stringify(bad));
  }
  // x|y anchored as ^(?:x|y)$, not ^x|y$ (which would take "xzzz").
  assert.ok("problems" in checkParams(r, { A: "a", B: "xzzz" }));
  assert.ok("params" in checkParams(r, { A: "a", B: "y" }));
});

test("checkParams: hostile JSON is refused whole, naming the param and never its value", () => {
  const r = parseRunbook("rb", F, ISSUE_EXAMPLE);
  for (const bad of [null, "REGION=x", 1, ["x"], new Map(), new (class X {})()]) {
    assert.deepEqual(checkParams(r, bad), { problems: ["params must be a JSON object of names to strings"] });
  }
  const SECRET = "hunter2-\u0007-value";
  const res = checkParams(r, { REGION: SECRET, NOTE: 5, EXTRA: "x", ["__proto__"]: "y" } as unknown);
  assert.ok("problems" in res);
  assert.deepEqual(res.problems, [
    'unknown param "EXTRA"; runbook "rb" takes REGION, NOTE',
    'unknown param "__proto__"; runbook "rb" takes REGION, NOTE', // a computed key is an own property
    'param "REGION" holds a control character; only newline and tab are allowed',
    'param "NOTE" must be a string',
  ]);
  // JSON.parse makes __proto__ an own key: unknown, and no prototype is touched.
  const parsed = JSON.parse('{"REGION":"eu","__proto__":{"polluted":true}}');
  assert.deepEqual(checkParams(r, parsed), { problems: ['unknown param "__proto__"; runbook "rb" takes REGION, NOTE'] });
  assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  for (const p of res.problems) assert.ok(!p.includes("hunter2"), "a problem never shows a value");
});

test("checkParams: required, defaults, 4 KiB, control characters, newline and tab allowed", () => {
  const r = one("run: x\nparams:\n  A: { required: true }\n  B: { default: dflt }\n  C: {}\n");
  assert.deepEqual(checkParams(r, {}), { problems: ['param "A" is required'] });
  assert.deepEqual(checkParams(r, undefined), { problems: ['param "A" is required'] });
  const ok = checkParams(r, { A: "line1\nline2\tx" });
  assert.ok("params" in ok);
  assert.deepEqual({ ...ok.params }, { A: "line1\nline2\tx", B: "dflt" }); // C: absent, no default
  assert.deepEqual({ ...(checkParams(r, { A: "", B: "given" }) as { params: object }).params }, { A: "", B: "given" });
  assert.ok("params" in checkParams(r, { A: "é".repeat(2048) })); // 4096 bytes
  assert.deepEqual(checkParams(r, { A: "é".repeat(2048) + "x" }), { problems: ['param "A" is over 4096 bytes (4 KiB)'] });
  for (const c of ["\u0000", "\r", "\u001b", "\u007f", "\u0085"]) {
    assert.deepEqual(checkParams(r, { A: `a${c}b` }), { problems: ['param "A" holds a control character; only newline and tab are allowed'] }, JSON.stringify(c));
  }
  assert.deepEqual(checkParams(r, { A: "\ud800" }), { problems: ['param "A" is not well-formed Unicode (a lone surrogate)'] });
  assert.match((checkParams(r, Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`P${i}`, "x"]))) as { problems: string[] }).problems[0]!, /300 given, more than the 256/);
});

test("a default is checked like a value; a required param takes no default", () => {
  assert.deepEqual(problems("run: x\nparams: { A: { required: true, default: x } }\n"), [
    `${F}:2: param "A" is required and has a default; remove one (a default makes it optional)`,
  ]);
  assert.deepEqual(problems("run: x\nparams:\n  A:\n    pattern: '[a-z]+'\n    default: 'A B'\n"), [
    `${F}:5: default of param "A" does not match its pattern "[a-z]+" (the whole value must match)`,
  ]);
  assert.match(problems('run: x\nparams: { A: { default: "a\\u0001" } }\n')[0]!, /default of param "A" holds a control character/);
  assert.match(problems("run: x\nparams: { A: { default: 3 } }\n")[0]!, /param "A" default must be a string, got number 3 \(quote it: "3"\)/);
});

test("a pattern with catastrophic backtracking refuses the value instead of stalling the server (ReDoS)", () => {
  const r = one("run: x\nparams: { A: { pattern: '(a+)+b' } }\n");
  const start = Date.now();
  const res = checkParams(r, { A: "a".repeat(4000) });
  assert.deepEqual(res, { problems: [`param "A": its pattern took longer than ${MATCH_TIMEOUT_MS} ms on the value, which is refused; simplify the pattern`] });
  // Not a timing assertion on the product: only that the watchdog ended it (seconds, not hours).
  assert.ok(Date.now() - start < 30_000);
  assert.ok("params" in checkParams(r, { A: "aab" }));
});

test("YAML: no custom tags, aliases limited, one document, duplicate keys, size cap", () => {
  assert.deepEqual(problems("run: !!js/function x\n"), [`${F}:1: YAML: Unresolved tag: tag:yaml.org,2002:js/function`]);
  assert.match(problems("run: !custom x\n")[0]!, /YAML: Unresolved tag/);
  assert.match(problems("run: x\n---\nrun: y\n")[0]!, /one YAML document/);
  assert.match(problems("run: x\nrun: y\n")[0]!, /Map keys must be unique/);
  const aliases = `run: &r x\ndescription: x\nparams:\n${Array.from({ length: 65 }, (_, i) => `  P${i}: { description: *r }`).join("\n")}\n`;
  assert.deepEqual(problems(aliases), [`${F}:68: more than 64 aliases; write the entries out`]);
  const big = `run: |\n${"  echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".repeat(Math.ceil(MAX_RUNBOOK_BYTES / 60) + 1)}`;
  assert.deepEqual(problems(big), [`${F}: the runbook file is larger than ${MAX_RUNBOOK_BYTES} bytes (256 KiB); move the script's bulk into a program the runbook calls`]);
  // A few aliases are fine.
  assert.equal(one("run: &r x\ndescription: *r\n").description, "x");
});

test("the runbook's name is one segment of the secret-name rule", () => {
  for (const bad of ["a/b", "../x", "..", ".x", "-x", "", "a b", "%2e%2e%2fx"]) {
    assert.match(problems("run: x\n", bad)[0]!, /runbook name .* is not allowed/, bad);
  }
  for (const good of ["deploy", "cdn-flush", "db.backup", "A_1"]) assert.equal(parseRunbook(good, F, "run: x\n").name, good);
});

test("require.claims: a map of claim names to strings", () => {
  assert.deepEqual({ ...one("run: x\nrequire:\n  claims:\n    team: ops\n    'https://example.com/env': prod\n").requireClaims }, { team: "ops", "https://example.com/env": "prod" });
  assert.match(problems("run: x\nrequire: {}\n")[0]!, /require needs claims/);
  assert.match(problems("run: x\nrequire: { claims: { level: 3 } }\n")[0]!, /must be a string/);
  assert.match(problems("run: x\nrequire: { claims: { 'a b': x } }\n")[0]!, /claim name "a b" must match/);
});

test("claimsMatch: equal, or held by an array claim; no claims never match", () => {
  assert.equal(claimsMatch({ team: "ops" }, { team: "ops" }), true);
  assert.equal(claimsMatch({ team: "ops" }, { team: ["dev", "ops"] }), true);
  assert.equal(claimsMatch({ team: "ops", env: "prod" }, { team: "ops", env: "dev" }), false);
  assert.equal(claimsMatch({ team: "ops" }, { team: "opsx" }), false);
  assert.equal(claimsMatch({ team: "ops" }, { team: { ops: true } }), false);
  assert.equal(claimsMatch({ team: "ops" }, {}), false);
  assert.equal(claimsMatch({ team: "ops" }, undefined), false);
  assert.equal(claimsMatch({}, undefined), false);
  assert.equal(claimsMatch({ team: "1" }, { team: 1 }), false);
  // Only own claims: an inherited property is not a claim.
  assert.equal(claimsMatch({ constructor: "x" }, {}), false);
  assert.equal(claimsMatch({ toString: "x" }, Object.create({ toString: "x" })), false);
});
