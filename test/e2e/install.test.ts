/**
 * coffer installs as a user installs it (README "Install"): `npm pack`, then `npm install -g`
 * of the tarball into a temporary global prefix with the repo's Node 24 and its npm, and the
 * installed `coffer`, found on PATH from another directory with a fresh HOME, runs init, set,
 * get and run. Runtime dependencies come from npm's cache (--prefer-offline); the tarball
 * carries dist/ already, so nothing is built at install.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NODE_FLOOR } from "../../src/floor.ts";
import { tempDir } from "../helpers.ts";
import { NODE_DIR, npmEnv, packInto, REPO, sh } from "./npm.ts";

/** The environment of a user who installed coffer into `prefix`: its bin and Node 24 on PATH. */
function userOf(prefix: string, home: string): Record<string, string> {
  return { PATH: `${join(prefix, "bin")}:${NODE_DIR}:/usr/bin:/bin`, HOME: home, LANG: "C.UTF-8" };
}

/** init, set, get and run, as the README's first screen has them, from `dir`. */
function firstSteps(dir: string, env: Record<string, string>, prefix: string): void {
  const ok = (script: string, input = "") => {
    const r = sh(script, { cwd: dir, env, input });
    assert.equal(r.status, 0, `\`${script}\`: ${r.stderr}`);
    return r.stdout;
  };
  assert.equal(ok("command -v coffer").trim(), join(prefix, "bin", "coffer"));
  assert.match(ok("coffer --version"), /^coffer \d+\.\d+\.\d+/);
  ok("coffer init --name x");
  ok("coffer set app/a", "v");
  assert.equal(ok("coffer get app/a"), "v");
  writeFileSync(join(dir, ".coffer.yml"), "environments:\n  dev:\n    env:\n      A: app/a\n");
  assert.equal(ok(`coffer run -e dev -- sh -c 'printf "%s" "$A"'`), "v");
}

test(`package.json's engines say Node ${NODE_FLOOR}, as src/floor.ts does`, () => {
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { engines: { node: string } };
  assert.equal(pkg.engines.node, `>=${NODE_FLOOR}`);
});

test("npm pack holds dist/ only (no single binary, no source maps), and its tarball installed with npm install -g gives a coffer on PATH that runs init, set, get and run from another directory", (t) => {
  const tmp = tempDir(t, "coffer-install-");
  const nodeOfNpm = sh("npm exec --offline -c 'node -p process.versions.node'", { cwd: tmp, env: npmEnv() });
  assert.ok(Number.parseInt(nodeOfNpm.stdout, 10) >= NODE_FLOOR, `npm runs on Node ${nodeOfNpm.stdout.trim()}: ${nodeOfNpm.stderr}`);
  const { tarball, files } = packInto(tmp);
  for (const needed of ["package.json", "README.md", "dist/bundle/bin.js", "dist/lib/index.js", "dist/lib/config.js", "dist/index.d.ts", "dist/app/config.d.ts", "dist/ui/index.html"]) assert.ok(files.includes(needed), `the tarball has ${needed}`);
  assert.deepEqual(files.filter((f) => !f.startsWith("dist/") && !["package.json", "README.md", "LICENSE"].includes(f)), [], "only dist/ besides package.json and README");
  assert.deepEqual(files.filter((f) => f.startsWith("dist/binary/") || f.endsWith(".map")), [], "no single binary, no source maps");
  assert.deepEqual(files.filter((f) => f.endsWith(".js") && !/^dist\/(bundle|lib|ui)\//.test(f)), [], "no JavaScript but the bundles (tsc emits only types)");
  // what runs must not need a devDependency: every package the bundles import is a dependency
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const f of files.filter((p) => p.endsWith(".js") && !p.startsWith("dist/ui/"))) {
    const code = readFileSync(join(REPO, f), "utf8");
    for (const [, spec] of code.matchAll(/(?:\bfrom|\bimport\()\s*"((?:@[\w.-]+\/)?\w[\w.-]*(?:\/[\w./-]+)?)"/g)) {
      const name = spec!.startsWith("@") ? spec!.split("/").slice(0, 2).join("/") : spec!.split("/")[0]!;
      assert.ok(name in pkg.dependencies, `${f} imports ${spec}, which is not a dependency`);
    }
  }

  const prefix = join(tmp, "prefix");
  const install = sh(`npm install -g --foreground-scripts --prefix "${prefix}" --prefer-offline "${tarball}"`, { cwd: tmp, env: npmEnv() });
  assert.equal(install.status, 0, install.stderr);
  assert.doesNotMatch(install.stdout + install.stderr, /^> coffer@\S+ (prepare|build)/m, "nothing built at install: dist/ came in the tarball");
  assert.equal(realpathSync(join(prefix, "bin", "coffer")), join(prefix, "lib", "node_modules", "coffer", "dist", "bundle", "bin.js"));

  const home = join(tmp, "home");
  const app = join(tmp, "app");
  mkdirSync(home, { mode: 0o700 });
  mkdirSync(app);
  firstSteps(app, userOf(prefix, home), prefix);
});

test("npm install -g . from the clone (after npm ci) links it: coffer on PATH runs init, set, get and run from another directory", (t) => {
  const tmp = tempDir(t, "coffer-install-link-");
  const prefix = join(tmp, "prefix");
  // --ignore-scripts: a link install runs the clone's `prepare` (a rebuild), which would empty
  // dist/bundle under the tests running beside this one; npm ci built dist/ already
  const install = sh(`npm install -g --ignore-scripts --prefix "${prefix}" .`, { cwd: REPO, env: npmEnv() });
  assert.equal(install.status, 0, install.stderr);
  assert.equal(realpathSync(join(prefix, "bin", "coffer")), join(realpathSync(REPO), "dist", "bundle", "bin.js"));
  const home = join(tmp, "home");
  const app = join(tmp, "app");
  mkdirSync(home, { mode: 0o700 });
  mkdirSync(app);
  firstSteps(app, userOf(prefix, home), prefix);
});
