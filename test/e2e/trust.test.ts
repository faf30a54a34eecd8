import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers.ts";
import { CLI, coffer, userEnv } from "./run-cli.ts";

const OTHER = 65534;
// Reads only coffer's own environment: no store is needed to resolve it.
const YML = "providers:\n  os: { type: env }\nenvironments:\n  dev:\n    env:\n      WHO: { from: os, path: HOME }\n";

// chown to another user needs root; CI runs the tests as root.
const asRoot = process.getuid?.() === 0 ? {} : { skip: "needs root to chown a file to another user" };

function inDir(home: string, cwd: string, args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, env: userEnv(home), encoding: "utf8" });
  return { code: r.status ?? 128, out: r.stdout, err: r.stderr };
}

test("a .coffer.yml owned by another user in a parent directory is refused until coffer trust DIR", asRoot, (t) => {
  const root = tempDir(t);
  const home = join(root, "home");
  const shared = join(root, "shared");
  const cwd = join(shared, "checkout");
  mkdirSync(home);
  mkdirSync(cwd, { recursive: true });
  writeFileSync(join(shared, ".coffer.yml"), YML);
  chownSync(join(shared, ".coffer.yml"), OTHER, OTHER);

  const refused = inDir(home, cwd, ["config", "check"]);
  assert.equal(refused.code, 5, refused.err);
  assert.equal(refused.out, "");
  assert.match(refused.err, new RegExp(`^coffer: refusing the project file ${shared}/\\.coffer\\.yml: it is owned by uid ${OTHER}, not by you \\(uid 0\\) or root; .*run \`coffer trust ${shared}\`\\n$`));

  const trusted = coffer(home, ["trust", shared]);
  assert.equal(trusted.code, 0, trusted.err);
  assert.equal(trusted.err, `trusted: ${shared} (its .coffer.yml is obeyed whoever owns it)\n`);
  assert.equal(coffer(home, ["trust", shared]).err, `already trusted: ${shared}\n`);
  assert.equal(coffer(home, ["trust", "--list"]).out, `${shared}\n`);
  assert.deepEqual(JSON.parse(coffer(home, ["trust", "--list", "--json"]).out), { file: join(home, ".config", "coffer", "trusted"), trusted: [shared] });

  const ok = inDir(home, cwd, ["config", "check"]);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /WHO +env +os:HOME/);

  assert.equal(coffer(home, ["trust", "--remove", shared]).err, `no longer trusted: ${shared}\n`);
  const gone = coffer(home, ["trust", "--remove", shared]);
  assert.equal(gone.code, 3);
  assert.equal(inDir(home, cwd, ["config", "check"]).code, 5);
  assert.equal(coffer(home, ["trust"]).code, 2);
  assert.equal(coffer(home, ["trust", "a", "--list"]).code, 2);
});

test("root is refused a user's checkout, with --config too", asRoot, (t) => {
  const root = tempDir(t);
  const home = join(root, "home");
  const checkout = join(root, "checkout");
  mkdirSync(home);
  mkdirSync(checkout);
  writeFileSync(join(checkout, ".coffer.yml"), YML);
  chownSync(join(checkout, ".coffer.yml"), 1000, 1000);
  chownSync(checkout, 1000, 1000);
  const r = coffer(home, ["run", "--config", join(checkout, ".coffer.yml"), "--", "true"]);
  assert.equal(r.code, 5, r.err);
  assert.match(r.err, /it is owned by uid 1000, not by you \(uid 0\) or root/);
});

test("a project file in a sticky shared dir above the checkout is never read", (t) => {
  const root = tempDir(t);
  const home = join(root, "home");
  const shared = join(root, "shared-tmp"); // as /tmp: sticky, everyone may write
  const cwd = join(shared, "work", "app");
  mkdirSync(home);
  mkdirSync(cwd, { recursive: true });
  chmodSync(shared, 0o1777);
  writeFileSync(join(shared, ".coffer.yml"), YML);
  const r = inDir(home, cwd, ["config", "check"]);
  assert.equal(r.code, 7, r.err);
  assert.match(r.err, new RegExp(`^coffer: no \\.coffer\\.yml in ${cwd} or its parents up to ${shared}/work \\(the search stops`));
});
