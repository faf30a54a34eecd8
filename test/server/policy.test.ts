import { test } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { matchPath, Policy, policyPatternContains, ROOT_ROLE, SYSTEM_PATHS } from "../../src/server/policy.ts";

/** [pattern, path, expected] */
const MATRIX: ReadonlyArray<readonly [string, string, boolean]> = [
  ["app/*", "app/db", true],
  ["app/*", "app/db/x", false],
  ["app/*", "app", false],
  ["app/*", "apps/db", false],
  ["app/**", "app/db", true],
  ["app/**", "app/db/x/y", true],
  ["app/**", "app", false],
  ["app/**", "apps/db", false],
  ["app/**", "x/app/db", false],
  ["**", "a", true],
  ["**", "a/b/c", true],
  ["**/x", "x", true],
  ["**/x", "a/b/x", true],
  ["**/x", "a/b/xy", false],
  ["a/**/b", "a/b", true],
  ["a/**/b", "a/x/y/b", true],
  ["a/**/b", "a/x/y/c", false],
  ["a/**/b", "b", false],
  ["a/**/**/b", "a/b", true],
  ["api-*", "api-v1", true],
  ["api-*", "api-", true], // like a shell glob, "*" may be empty
  ["api-*", "api", false],
  ["api-*", "api-v1/x", false],
  ["db/api-*/password", "db/api-billing/password", true],
  ["db/api-*/password", "db/api-billing/x/password", false],
  ["*.pem", "key.pem", true],
  ["*.pem", "tls/key.pem", false],
  ["a*b*c", "aXbYc", true],
  ["a*b*c", "abc", true],
  ["a*b*c", "acb", false],
  ["app/db", "app/db", true],
  ["app/db", "app/db2", false],
  ["App/db", "app/db", false],
  ["*", "app", true],
  ["*", "app/db", false],
  ["*/*", "app/db", true],
  ["sys:tokens", "sys:tokens", true],
  ["sys:tokens", "sys:audit", false],
  ["**", "sys:tokens", false],
  ["*", "sys:tokens", false],
];

test("matchPath: the matrix", () => {
  for (const [pattern, path, expected] of MATRIX) {
    assert.equal(matchPath(pattern, path), expected, `${pattern} vs ${path}`);
  }
});

test("matchPath: no glob matches a system path, and a system-path rule never matches a secret name", () => {
  for (const sys of SYSTEM_PATHS) {
    for (const glob of ["**", "*", "sys*", "**/*"]) {
      assert.equal(matchPath(glob, sys), false, `${glob} vs ${sys}`);
    }
    assert.equal(matchPath(sys, sys), true);
    for (const name of ["sys", "tokens", "sys/tokens", "a"]) assert.equal(matchPath(sys, name), false);
  }
});

test("matchPath: invalid names match nothing, not even '**' (traversal)", () => {
  for (const path of ["app/../x", "..", "/app/db", "app/", "app//db", "", "a b", "sys:unknown", "x".repeat(257)]) {
    assert.equal(matchPath("**", path), false, path);
    assert.equal(matchPath("app/**", path), false, path);
  }
});

test("matchPath: malformed patterns are refused naming the rule", () => {
  for (const bad of ["", "app/", "/app", "a//b", "a/**b/c", "a***", "a b", "sys:unknown", "sys:*", "../x", ".hidden", "a:b", "x".repeat(257)]) {
    assert.throws(() => matchPath(bad, "a"), { code: "E_CONFIG", message: /invalid policy pattern .*a pattern is/s }, bad);
  }
});

test("matchPath: pathological patterns against a 256-character name of 120 segments stay polynomial", () => {
  const name = [...Array.from({ length: 119 }, () => "a"), "a".repeat(256 - 119 * 2)].join("/");
  assert.equal(name.length, 256);
  assert.equal(name.split("/").length, 120);
  // Each of these would take exponential time with a naive backtracking matcher.
  assert.equal(matchPath("**/**/**/**/**/**/x", name), false);
  assert.equal(matchPath("**/a/**/a/**/a/**/a/**/a/**/x", name), false);
  assert.equal(matchPath("a/**/a/**/a/**/a/**/a/**/a*a*a*a*a*a*a*a*a*a*b", name), false);
  assert.equal(matchPath("**/**/**/**/**/**/a*", name), true);
  const oneSegment = "a".repeat(256);
  assert.equal(matchPath(`${"a*".repeat(60)}b`, oneSegment), false);
  assert.equal(matchPath(`${"*a".repeat(60)}*`, oneSegment), true);
});

test("property: matchPath agrees with a reference matcher on random patterns and names", () => {
  // The reference: a plain recursive definition of the documented semantics (exponential, so
  // only on small inputs).
  const glob = (g: string, t: string): boolean =>
    g === "" ? t === "" : g[0] === "*" ? glob(g.slice(1), t) || (t !== "" && glob(g, t.slice(1))) : t[0] === g[0] && glob(g.slice(1), t.slice(1));
  const segs = (p: string[], n: string[], alone: boolean): boolean => {
    if (p.length === 0) return n.length === 0;
    const [head, ...rest] = p as [string, ...string[]];
    if (head === "**") {
      const trailingMin = rest.length === 0 && !alone ? 1 : 0;
      for (let k = trailingMin; k <= n.length; k++) if (segs(rest, n.slice(k), false)) return true;
      return false;
    }
    return n.length > 0 && glob(head, n[0] ?? "") && segs(rest, n.slice(1), false);
  };
  const reference = (pattern: string, name: string): boolean => segs(pattern.split("/"), name.split("/"), pattern.split("/").length === 1);
  const pick = <T>(xs: readonly T[]): T => xs[randomInt(xs.length)] as T;
  for (let i = 0; i < 3000; i++) {
    const pattern = Array.from({ length: randomInt(1, 5) }, () => pick(["a", "b", "*", "**", "a*", "*b", "a*b", "ab"])).join("/");
    const name = Array.from({ length: randomInt(1, 6) }, () => pick(["a", "b", "ab", "ba", "aab", "bb"])).join("/");
    assert.equal(matchPath(pattern, name), reference(pattern, name), `${pattern} vs ${name}`);
  }
});

const policy = new Policy({
  app: [
    { path: "app/**", capabilities: ["read", "list"] },
    { path: "app/deploy/*", capabilities: ["write"] },
  ],
  ops: [
    { path: "app/db/*", capabilities: ["read", "write", "delete"] },
    { path: "sys:metrics", capabilities: ["read"] },
  ],
  everything: [{ path: "**", capabilities: ["read", "list", "write", "delete"] }],
  nothing: [],
});

const sorted = (s: Set<string>): string[] => [...s].sort();

test("Policy: deny by default; capabilities come only from matching rules", () => {
  assert.deepEqual(sorted(policy.capabilities(["app"], "app/db/password")), ["list", "read"]);
  assert.deepEqual(sorted(policy.capabilities(["app"], "app/deploy/key")), ["list", "read", "write"]);
  // "write" on app/deploy/* does not leak to a sibling or a deeper name.
  assert.equal(policy.allows(["app"], "write", "app/db/password"), false);
  assert.equal(policy.allows(["app"], "write", "app/deploy/key/x"), false);
  assert.deepEqual(sorted(policy.capabilities(["app"], "other/x")), []);
  assert.deepEqual(sorted(policy.capabilities(["app"], "app")), []);
  assert.deepEqual(sorted(policy.capabilities(["nothing"], "app/db")), []);
  assert.deepEqual(sorted(policy.capabilities([], "app/db")), []);
});

test("Policy: capabilities are the union over the caller's roles", () => {
  assert.deepEqual(sorted(policy.capabilities(["app", "ops"], "app/db/password")), ["delete", "list", "read", "write"]);
  assert.deepEqual(sorted(policy.capabilities(["ops", "app"], "app/other")), ["list", "read"]);
  assert.deepEqual(sorted(policy.capabilities(["ops"], "app/other")), []);
});

test("Policy: unknown role names grant nothing, including names of Object.prototype members", () => {
  for (const role of ["unknown", "__proto__", "constructor", "toString", "hasOwnProperty", "ROOT", "Root", ""]) {
    assert.deepEqual(sorted(policy.capabilities([role], "app/db/password")), [], role);
    assert.equal(policy.mayList([role], ""), false, role);
  }
});

test("Policy: root holds every capability on every name (purge too) and system path", () => {
  for (const path of ["app/db/password", "x"]) {
    assert.deepEqual(sorted(policy.capabilities([ROOT_ROLE], path)), ["delete", "list", "purge", "read", "rotate", "write"], path);
    assert.deepEqual(sorted(policy.capabilities(["nothing", ROOT_ROLE], path)), ["delete", "list", "purge", "read", "rotate", "write"], path);
    assert.equal(policy.allows([ROOT_ROLE], "purge", path), true);
  }
  for (const path of SYSTEM_PATHS) {
    assert.deepEqual(sorted(policy.capabilities([ROOT_ROLE], path)), ["delete", "list", "read", "write"], path);
    assert.deepEqual(sorted(policy.capabilities(["nothing", ROOT_ROLE], path)), ["delete", "list", "read", "write"], path);
  }
  assert.equal(policy.mayList([ROOT_ROLE], "anything/"), true);
  // Even root gets nothing on a path that is neither a valid name nor a system path.
  assert.deepEqual(sorted(policy.capabilities([ROOT_ROLE], "app/../x")), []);
  assert.deepEqual(sorted(policy.capabilities([ROOT_ROLE], "sys:other")), []);
});

test("Policy: '**' never reaches a system path; only a rule naming it does", () => {
  for (const sys of SYSTEM_PATHS) assert.deepEqual(sorted(policy.capabilities(["everything"], sys)), [], sys);
  assert.deepEqual(sorted(policy.capabilities(["ops"], "sys:metrics")), ["read"]);
  assert.deepEqual(sorted(policy.capabilities(["ops"], "sys:tokens")), []);
  assert.deepEqual(sorted(policy.capabilities(["ops"], "metrics")), []);
});

test("Policy: mayList is never false when a listable name exists under the prefix", () => {
  assert.equal(policy.mayList(["app"], ""), true);
  assert.equal(policy.mayList(["app"], "app/"), true);
  assert.equal(policy.mayList(["app"], "app/d"), true);
  assert.equal(policy.mayList(["app"], "ap"), true);
  assert.equal(policy.mayList(["app"], "other/"), false);
  assert.equal(policy.mayList(["app"], "apps"), false);
  assert.equal(policy.mayList(["ops"], ""), false, "ops has no list capability");
  assert.equal(policy.mayList(["everything"], "z/y/x"), true);
  assert.equal(policy.mayList([], ""), false);

  // Against brute force: for every prefix of every listable name, mayList is true.
  const p = new Policy({ r: [{ path: "db/api-*/pass*", capabilities: ["list"] }, { path: "x/**/y", capabilities: ["list"] }] });
  for (const name of ["db/api-a/password", "db/api-/pass", "x/y", "x/q/r/y"]) {
    assert.ok(p.allows(["r"], "list", name), name);
    for (let i = 0; i <= name.length; i++) assert.equal(p.mayList(["r"], name.slice(0, i)), true, name.slice(0, i));
  }
  for (const prefix of ["db/b", "db/api-a/x", "db/apx", "y", "x/y/z/"]) {
    // "x/y/z/" can still lead to x/y/z/…/y, so only the first four are false.
    assert.equal(p.mayList(["r"], prefix), prefix === "x/y/z/", prefix);
  }
});

test("Policy: roleNames lists the defined roles, not root", () => {
  assert.deepEqual(policy.roleNames.sort(), ["app", "everything", "nothing", "ops"]);
  policy.roleNames.push("intruder");
  assert.equal(policy.roleNames.includes("intruder"), false);
});

test("Policy: refuses to redefine root, unknown capabilities and bad patterns, naming role and rule", () => {
  assert.throws(() => new Policy({ root: [] }), { code: "E_CONFIG", message: /role "root" is built in/ });
  assert.throws(
    () => new Policy({ r: [{ path: "a", capabilities: ["read"] }, { path: "b", capabilities: ["admin" as "read"] }] }),
    { code: "E_CONFIG", message: /unknown capability "admin" \(role "r", rule 2\): capabilities are read, list, write, delete, purge, rotate, run, approve/ },
  );
  assert.throws(() => new Policy({ r: [{ path: "a/../b", capabilities: ["read"] }] }), {
    code: "E_CONFIG",
    message: /invalid policy pattern "a\/\.\.\/b" \(role "r", rule 1\)/,
  });
});

test("a role set never borrows the rules another role set was cached with (names that join alike stay apart)", () => {
  const policy = new Policy({ a: [{ path: "x/*", capabilities: ["read"] }], b: [{ path: "y/*", capabilities: ["read"] }] });
  assert.equal(policy.allows(["a", "b"], "read", "y/k"), true); // cached for the set a, b
  for (const roles of [["a\nb"], ["a,b"], [`a","b`], ["a\u0000b"]]) {
    assert.equal(policy.allows(roles, "read", "y/k"), false, JSON.stringify(roles));
    assert.equal(policy.mayList(roles, "y/"), false, JSON.stringify(roles));
  }
  assert.equal(policy.allows(["b", "a"], "read", "x/k"), true, "the same roles in another order");
});

/* ------------------------------------------ runbooks ------------------------------------------ */

const runbookPolicy = new Policy({
  operator: [
    { path: "runbook:cdn-*", capabilities: ["read", "run"] },
    { path: "runbook:*", capabilities: ["read"] },
  ],
  approver: [{ path: "runbook:deploy", capabilities: ["approve", "read"] }],
  secrets: [{ path: "**", capabilities: ["read", "list", "write", "delete"] }],
});

test("runbook:NAME paths: a runbook: rule's glob over one-segment names grants read, run, approve", () => {
  assert.equal(runbookPolicy.allows(["operator"], "run", "runbook:cdn-flush"), true);
  assert.equal(runbookPolicy.allows(["operator"], "read", "runbook:cdn-flush"), true);
  assert.equal(runbookPolicy.allows(["operator"], "run", "runbook:deploy"), false, "runbook:* grants only read");
  assert.equal(runbookPolicy.allows(["operator"], "read", "runbook:deploy"), true);
  assert.equal(runbookPolicy.allows(["operator"], "approve", "runbook:cdn-flush"), false);
  assert.equal(runbookPolicy.allows(["approver"], "approve", "runbook:deploy"), true);
  assert.equal(runbookPolicy.allows(["approver"], "run", "runbook:deploy"), false);
  assert.deepEqual(sorted(runbookPolicy.capabilities(["operator", "approver"], "runbook:deploy")), ["approve", "read"]);
  assert.deepEqual(sorted(runbookPolicy.capabilities(["operator"], "runbook:cdn-eu")), ["read", "run"]);
  assert.deepEqual(sorted(runbookPolicy.capabilities([], "runbook:cdn-eu")), [], "deny by default");
  assert.equal(matchPath("runbook:cdn-*", "runbook:cdn-flush"), true);
  assert.equal(matchPath("runbook:cdn-*", "runbook:db-flush"), false);
  assert.equal(matchPath("runbook:*", "runbook:x"), true);
});

test("a secret-name pattern never matches a runbook path, and a runbook rule never matches a secret or system path", () => {
  // "**" with every capability on names: nothing on runbooks.
  for (const cap of ["read", "run", "approve", "list", "write", "delete"] as const) {
    assert.equal(runbookPolicy.allows(["secrets"], cap, "runbook:cdn-flush"), false, cap);
  }
  assert.deepEqual(sorted(runbookPolicy.capabilities(["secrets"], "runbook:deploy")), []);
  for (const glob of ["**", "*", "runbook*", "**/*"]) assert.equal(matchPath(glob, "runbook:x"), false, glob);
  // A runbook rule matches no secret name (not even one spelled like the runbook) nor system path.
  for (const path of ["cdn-flush", "runbook/cdn-flush", "sys:tokens", "sys:audit"]) {
    assert.equal(runbookPolicy.allows(["operator"], "read", path), false, path);
    assert.equal(matchPath("runbook:*", path), false, path);
  }
  assert.equal(runbookPolicy.mayList(["operator"], ""), false, "a runbook rule never makes a listing scan");
});

test("runbook paths that are not one-segment names grant nothing, even to root (../x, a/b, %2e%2e)", () => {
  for (const path of ["runbook:", "runbook:../x", "runbook:a/b", "runbook:..", "runbook:%2e%2e%2fx", "runbook:-x", "runbook:a b", "RUNBOOK:x", "runbook:x/"]) {
    assert.equal(runbookPolicy.allows(["operator"], "read", path), false, path);
    assert.equal(runbookPolicy.allows([ROOT_ROLE], "run", path), false, path);
    assert.deepEqual(sorted(runbookPolicy.capabilities([ROOT_ROLE], path)), [], path);
  }
});

test("root holds every runbook capability on every runbook", () => {
  assert.deepEqual(sorted(runbookPolicy.capabilities([ROOT_ROLE], "runbook:anything")), ["approve", "read", "run"]);
  for (const cap of ["read", "run", "approve"] as const) assert.equal(runbookPolicy.allows([ROOT_ROLE], cap, "runbook:anything"), true);
});

test("capabilities of the wrong kind are refused at load: run/approve on secrets or sys, list/write/delete/purge on runbooks", () => {
  for (const [path, cap] of [["app/*", "run"], ["**", "approve"], ["sys:audit", "run"]] as const) {
    assert.throws(() => new Policy({ r: [{ path, capabilities: [cap] }] }), {
      code: "E_CONFIG",
      message: new RegExp(`\\(role "r", rule 1\\): ${cap} applies only to runbooks \\(runbook:NAME\\); secret names take read, list, write, delete, purge, rotate; system paths read, list, write, delete`),
    });
  }
  for (const cap of ["list", "write", "delete", "purge"] as const) {
    assert.throws(() => new Policy({ r: [{ path: "runbook:*", capabilities: ["read", cap] }] }), {
      code: "E_CONFIG",
      message: new RegExp(`${cap} does not apply to runbooks; a runbook: rule grants read, run, approve`),
    });
  }
});

test("attack: delete never implies purge (an existing role does not gain the power to destroy history); purge is granted only by name", () => {
  const p = new Policy({
    janitor: [{ path: "app/**", capabilities: ["read", "list", "write", "delete"] }],
    shredder: [{ path: "app/leaked/*", capabilities: ["purge"] }],
  });
  assert.equal(p.allows(["janitor"], "delete", "app/db"), true);
  assert.equal(p.allows(["janitor"], "purge", "app/db"), false);
  assert.equal(p.allows(["shredder"], "purge", "app/leaked/key"), true);
  assert.equal(p.allows(["shredder"], "purge", "app/db"), false);
  assert.equal(p.allows(["shredder"], "delete", "app/leaked/key"), false, "purge does not imply delete either");
  assert.deepEqual(sorted(p.capabilities(["janitor", "shredder"], "app/leaked/key")), ["delete", "list", "purge", "read", "write"]);
});

test("purge is a capability of secret names only: refused at load on system paths and runbooks", () => {
  assert.throws(() => new Policy({ r: [{ path: "sys:audit", capabilities: ["purge"] }] }), {
    code: "E_CONFIG",
    message: /\(role "r", rule 1\): purge applies only to secret names; system paths take read, list, write, delete/,
  });
  assert.throws(() => new Policy({ r: [{ path: "runbook:*", capabilities: ["purge"] }] }), {
    code: "E_CONFIG",
    message: /purge does not apply to runbooks; a runbook: rule grants read, run, approve/,
  });
  assert.doesNotThrow(() => new Policy({ r: [{ path: "**", capabilities: ["purge"] }] }));
});

test("runbook patterns are one segment of the pattern language", () => {
  for (const [path, why] of [
    ["runbook:a/b", /one segment: runbook names have no '\/'/],
    ["runbook:**", /use runbook:\* for every runbook/],
    ["runbook:", /runbook pattern empty/],
    ["runbook:..", /'\.\.' is not allowed/],
    ["runbook:a b", /character outside the rule/],
  ] as const) {
    assert.throws(() => new Policy({ r: [{ path, capabilities: ["read"] }] }), { code: "E_CONFIG", message: why }, path);
  }
});

test("policyPatternContains: system paths only by name, runbook patterns only by runbook patterns, names by patternContains", () => {
  const yes: [string, string][] = [
    ["sys:roles", "sys:roles"], ["runbook:*", "runbook:cdn-flush"], ["runbook:*", "runbook:cdn-*"], ["runbook:cdn-*", "runbook:cdn-x"],
    ["app/**", "app/x/y"], ["**", "app/*"],
  ];
  const no: [string, string][] = [
    ["**", "sys:roles"], ["sys:tokens", "sys:roles"], ["**", "runbook:x"], ["runbook:*", "app/x"], ["runbook:cdn-*", "runbook:*"],
    ["runbook:x", "runbook:*"], ["sys:roles", "sys:nope"], ["sys:nope", "sys:nope"], ["app/*", "app/**"],
  ];
  for (const [o, i] of yes) assert.equal(policyPatternContains(o, i), true, `${o} ⊇ ${i}`);
  for (const [o, i] of no) assert.equal(policyPatternContains(o, i), false, `${o} ⊉ ${i}`);
});

test("Policy.rulesOf gives a role's rules as written; root and unknown roles have none", () => {
  const policy = new Policy({ dev: [{ path: "app/*", capabilities: ["read", "list"] }] });
  assert.deepEqual(policy.rulesOf("dev"), [{ path: "app/*", capabilities: ["read", "list"] }]);
  assert.equal(policy.rulesOf("root"), undefined);
  assert.equal(policy.rulesOf("nope"), undefined);
});
