import { test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  assertUnitName, execLine, parseUnitSecrets, quoteExecWord, renderUnits, splitCommandLine,
} from "../../src/agent/units.ts";
import type { RenderedUnit, UnitsOptions } from "../../src/agent/units.ts";
import { fileNameOf } from "../../src/agent/config.ts";
import { isCofferError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";

const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";
const BIN = fileURLToPath(new URL("../../dist/bundle/bin.js", import.meta.url));
const COFFER = [process.execPath, BIN];
/** Arguments that stress every quoting rule of a systemd command line. */
const TRICKY = ["with space", "100%", "%n", "$HOME", "${PATH}", "$$", 'say "hi"', "it's", "back\\slash", ";", "", "tab\there", "line\nbreak", "ünï 🔑", "a=b,c"];

function code(err: unknown): string {
  return isCofferError(err) ? err.code : `not a CofferError: ${String(err)}`;
}

function base(extra: Partial<UnitsOptions> = {}): UnitsOptions {
  return {
    name: "web",
    exec: ["/usr/bin/env", "--port", "8080"],
    secrets: parseUnitSecrets("db/password=DB_PASSWORD,api-key"),
    source: { provider: "folder:/etc/web/secrets" },
    coffer: COFFER,
    ...extra,
  };
}

function unit(units: RenderedUnit[], filename: string): string {
  const u = units.find((x) => x.filename === filename);
  assert.ok(u, `${filename} rendered`);
  return u.text;
}

function lines(text: string, key: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

/**
 * systemd's reading of a command line, for the round trip: `%%` → `%` (specifiers), words split
 * on blanks with "…"/'…' quoting and C escapes, then `$$` → `$` (variable expansion). Any other
 * `%` or `$` fails the test: it would have been expanded.
 */
function systemdWords(line: string): string[] {
  assert.doesNotMatch(line.replaceAll("%%", ""), /%/, "a lone % would be a specifier");
  const s = line.replaceAll("%%", "%");
  const words: string[] = [];
  let i = 0;
  const escape = (): string => {
    const c = s[++i]!;
    const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", '"': '"', "'": "'", ";": ";", " ": " " };
    if (c === "x") {
      const hex = s.slice(i + 1, i + 3);
      i += 2;
      return String.fromCharCode(parseInt(hex, 16));
    }
    const v = simple[c];
    assert.ok(v !== undefined, `unknown escape \\${c}`);
    return v;
  };
  while (i < s.length) {
    while (s[i] === " ") i++;
    if (i >= s.length) break;
    let word = "";
    while (i < s.length && s[i] !== " ") {
      const c = s[i]!;
      if (c === '"' || c === "'") {
        for (i++; s[i] !== c; i++) {
          assert.ok(i < s.length, "unbalanced quote");
          word += s[i] === "\\" ? escape() : s[i];
        }
        i++;
      } else {
        word += c === "\\" ? escape() : c;
        i++;
      }
    }
    words.push(word);
  }
  return words.map((w) => {
    assert.doesNotMatch(w.replaceAll("$$", ""), /\$/, "a lone $ would be expanded");
    return w.replaceAll("$$", "$");
  });
}

function verify(t: TestContext, units: RenderedUnit[]): void {
  const dir = tempDir(t, "coffer-units-");
  for (const u of units) writeFileSync(join(dir, u.filename), u.text);
  // Run from the dir with ./ paths: the unit names then come from the files.
  const r = spawnSync(SYSTEMD_ANALYZE, ["verify", ...units.map((u) => `./${u.filename}`)], { cwd: dir, encoding: "utf8" });
  assert.equal(r.error, undefined);
  assert.equal(r.stderr, "", `systemd-analyze verify complains:\n${r.stderr}`);
  assert.equal(r.status, 0);
  for (const u of units) {
    const s = spawnSync(SYSTEMD_ANALYZE, ["security", "--offline=yes", `./${u.filename}`], { cwd: dir, encoding: "utf8" });
    const level = /Overall exposure level for \S+: ([0-9.]+)/.exec(s.stdout);
    assert.ok(level, `security --offline reports a level for ${u.filename}:\n${s.stdout}${s.stderr}`);
    // Today 1.8–2.6 for the side-car (network kept for remote providers), 2.1 for the service.
    assert.ok(Number(level[1]) <= 3.0, `${u.filename} exposure ${level[1]} is above 3.0`);
  }
}

test("parseUnitSecrets reads ID and ID=ENV_NAME items", () => {
  assert.deepEqual(parseUnitSecrets("db/password=DB_PASSWORD,api-key"), [{ id: "db/password", env: "DB_PASSWORD" }, { id: "api-key" }]);
  assert.deepEqual(parseUnitSecrets("a"), [{ id: "a" }]);
});

test("parseUnitSecrets refuses bad items, naming the rule", () => {
  const cases: [string, string, RegExp][] = [
    ["", "E_USAGE", /empty item/],
    ["a,,b", "E_USAGE", /empty item/],
    ["a,a=X", "E_USAGE", /a is listed twice/],
    ["../etc", "E_INVALID_NAME", /invalid secret name/],
    ["/abs", "E_INVALID_NAME", /invalid secret name/],
    ["a b", "E_INVALID_NAME", /invalid secret name/],
    ["a=1X", "E_INVALID_NAME", /environment variable name "1X"/],
    ["a=", "E_INVALID_NAME", /environment variable name/],
    ["a=X-Y", "E_INVALID_NAME", /environment variable name/],
    ["secrets.env", "E_USAGE", /reserved/],
  ];
  for (const [spec, want, msg] of cases) {
    assert.throws(() => parseUnitSecrets(spec), (e: unknown) => code(e) === want && msg.test((e as Error).message), spec);
  }
});

test("assertUnitName takes systemd unit-name characters and refuses .service, dots and dashes first", () => {
  for (const ok of ["web", "my_app.v2", "a:b", "A-1"]) assertUnitName(ok);
  for (const bad of ["web.service", "a b", "a/b", "a@b", "", ".", "..", ".hidden", "-x", "x%i", "x".repeat(240), "wéb"]) {
    assert.throws(() => assertUnitName(bad), (e: unknown) => code(e) === "E_INVALID_NAME", JSON.stringify(bad));
  }
  assertUnitName("x".repeat(239));
});

test("splitCommandLine splits like a shell, without expansions", () => {
  assert.deepEqual(splitCommandLine(`/usr/bin/app --name 'my app' "say \\"hi\\"" a\\ b $HOME ';' ''`), [
    "/usr/bin/app", "--name", "my app", 'say "hi"', "a b", "$HOME", ";", "",
  ]);
  assert.deepEqual(splitCommandLine("  a\t b  "), ["a", "b"]);
  assert.deepEqual(splitCommandLine("x'y'\"z\""), ["xyz"]);
  for (const bad of ["'open", '"open', "trail\\"]) {
    assert.throws(() => splitCommandLine(bad), (e: unknown) => code(e) === "E_USAGE", bad);
  }
});

test("quoteExecWord: %→%%, $→$$, double quotes with C escapes, a lone ; escaped", () => {
  assert.equal(quoteExecWord("/usr/bin/env"), "/usr/bin/env");
  assert.equal(quoteExecWord("--on-change"), "--on-change");
  assert.equal(quoteExecWord("db/password=DB_PW,api-key"), "db/password=DB_PW,api-key");
  assert.equal(quoteExecWord("100%"), '"100%%"');
  assert.equal(quoteExecWord("$HOME"), '"$$HOME"');
  assert.equal(quoteExecWord('say "hi"'), '"say \\"hi\\""');
  assert.equal(quoteExecWord("it's"), '"it\'s"');
  assert.equal(quoteExecWord("a\\b"), '"a\\\\b"');
  assert.equal(quoteExecWord("with space"), '"with space"');
  assert.equal(quoteExecWord("a\nb\tc\x01"), '"a\\nb\\tc\\x01"');
  assert.equal(quoteExecWord(""), '""');
  assert.equal(quoteExecWord(";"), "\\;");
  assert.throws(() => quoteExecWord("a\0b"), (e: unknown) => code(e) === "E_INVALID_VALUE");
});

test("execLine round-trips through systemd's rules for tricky and random words", () => {
  assert.deepEqual(systemdWords(execLine(TRICKY)), TRICKY);
  const pieces = [" ", "%", "%%", "$", "${X}", '"', "'", "\\", "\\n", "\n", "\t", ";", "a", "ü", "🔑", "%n", "\x7f", "#"];
  for (let n = 0; n < 300; n++) {
    const words = Array.from({ length: randomInt(1, 5) }, () => {
      let w = "";
      for (let k = randomInt(0, 6); k > 0; k--) w += pieces[randomInt(pieces.length)];
      return w;
    });
    assert.deepEqual(systemdWords(execLine(words)), words, JSON.stringify(words));
  }
});

test("side-car style: the agent in a PrivateTmp, the service joining it through exec-env", () => {
  const units = renderUnits(base());
  assert.deepEqual(units.map((u) => u.filename), ["web-secrets.service", "web.service"]);
  const car = unit(units, "web-secrets.service");
  for (const l of ["Type=notify", "NotifyAccess=all", "PrivateTmp=yes", "BindsTo=web.service", "PartOf=web.service", "Before=web.service", "Restart=on-success", "PrivateNetwork=yes", "CapabilityBoundingSet="]) {
    assert.ok(car.split("\n").includes(l), `side-car has ${l}`);
  }
  assert.deepEqual(systemdWords(lines(car, "ExecStart")[0]!), [
    ...COFFER, "agent", "--provider", "folder:/etc/web/secrets", "--secrets", "db/password=DB_PASSWORD,api-key",
    "--dir", "/tmp", "--watch", "--on-change", "exit", "--mode", "0444",
  ]);
  const svc = unit(units, "web.service");
  for (const l of ["Requires=web-secrets.service", "After=web-secrets.service", "JoinsNamespaceOf=web-secrets.service", "PrivateTmp=yes", "DynamicUser=yes", "CapabilityBoundingSet=", "WantedBy=multi-user.target"]) {
    assert.ok(svc.split("\n").includes(l), `service has ${l}`);
  }
  assert.deepEqual(systemdWords(lines(svc, "ExecStart")[0]!), [...COFFER, "exec-env", "/tmp/secrets.env", "--", "/usr/bin/env", "--port", "8080"]);
  for (const text of [car, svc]) {
    for (const l of ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "LimitCORE=0", "UMask=0077", "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectControlGroups=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes"]) {
      assert.ok(text.split("\n").includes(l), `${l} in both units`);
    }
    // Both units run Node, whose JIT needs writable+executable pages.
    assert.doesNotMatch(text, /MemoryDenyWriteExecute/);
    assert.equal(lines(text, "ExecStart").length, 1);
  }
});

test("side-car style with --user: User= and files 0400 owned by that user", () => {
  const units = renderUnits(base({ user: "www-data" }));
  const svc = unit(units, "web.service");
  assert.ok(svc.split("\n").includes("User=www-data"));
  assert.doesNotMatch(svc, /DynamicUser/);
  const car = unit(units, "web-secrets.service");
  assert.deepEqual(systemdWords(lines(car, "ExecStart")[0]!).slice(-4), ["--mode", "0400", "--owner", "www-data"]);
  // chown, and replacing/removing a file it no longer owns in the sticky /tmp
  assert.deepEqual(lines(car, "CapabilityBoundingSet"), ["CAP_CHOWN CAP_FOWNER"]);
});

test("--config: the agent gets --config F --service NAME; a remote provider keeps the network", () => {
  const car = unit(renderUnits(base({ source: { config: "/etc/coffer/agent.yml" }, secrets: [] })), "web-secrets.service");
  assert.deepEqual(systemdWords(lines(car, "ExecStart")[0]!).slice(COFFER.length, COFFER.length + 5), ["agent", "--config", "/etc/coffer/agent.yml", "--service", "web"]);
  assert.doesNotMatch(car, /PrivateNetwork/);
  const store = unit(renderUnits(base({ source: { provider: "store" } })), "web-secrets.service");
  for (const l of ["Environment=COFFER_HOME=/var/lib/coffer", "StateDirectory=coffer", "StateDirectoryMode=0700", "PrivateNetwork=yes"]) {
    assert.ok(store.split("\n").includes(l), `a store side-car has ${l}`);
  }
  assert.doesNotMatch(car, /COFFER_HOME/);
  const vault = unit(renderUnits(base({ source: { provider: "vault:https://vault:8200#secret" } })), "web-secrets.service");
  assert.doesNotMatch(vault, /PrivateNetwork/);
});

test("credentials style: LoadCredential= per ID from /run/coffer/NAME, restart-unit on change", () => {
  const units = renderUnits(base({ style: "credentials" }));
  assert.deepEqual(units.map((u) => u.filename), ["web-secrets.service", "web.service"]);
  const car = unit(units, "web-secrets.service");
  for (const l of ["RuntimeDirectory=coffer/web", "RuntimeDirectoryPreserve=yes", "RuntimeDirectoryMode=0700", "Type=notify", "NotifyAccess=all"]) {
    assert.ok(car.split("\n").includes(l), `side-car has ${l}`);
  }
  assert.doesNotMatch(car, /PrivateTmp/);
  const args = systemdWords(lines(car, "ExecStart")[0]!);
  assert.deepEqual(args.slice(args.indexOf("--dir")), ["--dir", "/run/coffer/web", "--watch", "--on-change", "restart-unit:web.service"]);
  const svc = unit(units, "web.service");
  assert.deepEqual(lines(svc, "LoadCredential"), ["db_password:/run/coffer/web/db_password", "api-key:/run/coffer/web/api-key"]);
  assert.deepEqual(systemdWords(lines(svc, "ExecStart")[0]!), ["/usr/bin/env", "--port", "8080"]);
  assert.doesNotMatch(svc, /JoinsNamespaceOf|exec-env/);
  assert.equal(fileNameOf("a/b/c"), "a_b_c"); // the credential name of an ID is its file name
});

test("renderUnits refuses bad inputs before rendering anything", () => {
  const cases: [Partial<UnitsOptions>, string, RegExp][] = [
    [{ name: "web.service" }, "E_INVALID_NAME", /without ".service"/],
    [{ exec: ["env"] }, "E_USAGE", /--exec: the program must be an absolute path/],
    [{ exec: [] }, "E_USAGE", /--exec: an empty command line/],
    [{ coffer: ["node", "bin.js"] }, "E_USAGE", /--coffer: the program must be an absolute path/],
    [{ source: { provider: "folder:relative/dir" } }, "E_USAGE", /absolute path/],
    [{ source: { provider: "Nope!" } }, "E_USAGE", /--provider/],
    [{ source: { config: "agent.yml" } }, "E_USAGE", /--config/],
    [{ secrets: [] }, "E_USAGE", /at least one ID/],
    [{ secrets: [], source: { config: "/etc/coffer/agent.yml" }, style: "credentials" }, "E_USAGE", /credentials style needs the IDs/],
    [{ secrets: parseUnitSecrets("a/b,a_b"), style: "credentials" }, "E_USAGE", /both be the credential a_b/],
    [{ user: "bad user" }, "E_INVALID_NAME", /invalid user/],
    [{ user: "%n" }, "E_INVALID_NAME", /invalid user/],
    [{ user: "nobody" }, "E_USAGE", /--user nobody: not safe/],
    [{ user: "root" }, "E_USAGE", /--user root: not safe/],
    [{ style: "other" as "credentials" }, "E_USAGE", /--style/],
    [{ exec: ["/bin/x", "a\0b"] }, "E_INVALID_VALUE", /NUL/],
  ];
  for (const [extra, want, msg] of cases) {
    assert.throws(() => renderUnits(base(extra)), (e: unknown) => code(e) === want && msg.test((e as Error).message), JSON.stringify(extra));
  }
});

test("systemd-analyze verify accepts every style, with and without --user, with tricky arguments", { skip: !existsSync(SYSTEMD_ANALYZE) && "no systemd-analyze" }, (t) => {
  assert.ok(existsSync(BIN), `${BIN} is missing: run \`npm run build\``);
  for (const style of ["side-car", "credentials"] as const) {
    for (const user of [undefined, "coffer-web"]) {
      for (const source of [{ provider: "folder:/etc/web/my secrets%" }, { provider: "store" }, { provider: "vault:https://vault:8200#secret" }, { config: "/etc/coffer/agent $x.yml" }]) {
        const units = renderUnits(base({ style, source, exec: ["/usr/bin/env", ...TRICKY], ...(user !== undefined && { user }) }));
        verify(t, units);
      }
    }
  }
});

test("systemd-analyze verify catches a broken unit (the check is real)", { skip: !existsSync(SYSTEMD_ANALYZE) && "no systemd-analyze" }, (t) => {
  const dir = tempDir(t, "coffer-units-");
  writeFileSync(join(dir, "bad.service"), '[Service]\nExecStart=/usr/bin/env "unbalanced\n');
  const r = spawnSync(SYSTEMD_ANALYZE, ["verify", "./bad.service"], { cwd: dir, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /Unbalanced quoting/);
});

test("the e2e CLI writes 0644 units, lists them, and refuses to overwrite without --force", async (t) => {
  if (!existsSync(BIN)) return t.skip("no dist/bundle: run `npm run build`");
  const { coffer } = await import("../e2e/run-cli.ts");
  const home = tempDir(t, "coffer-home-");
  const out = join(home, "units");
  const args = ["units", "--name", "web", "--exec", "env --port '8 080' '100% $HOME'", "--secrets", "db/password=DB_PASSWORD,api-key", "--provider", "folder:/etc/web/secrets", "--out", out];
  const r = coffer(home, args);
  assert.equal(r.err.includes("internal error"), false, r.err);
  assert.equal(r.code, 0, r.err);
  const car = join(out, "web-secrets.service");
  const svc = join(out, "web.service");
  assert.equal(r.out, `${car}\n${svc}\n`);
  assert.match(r.err, /systemctl link .* && systemctl daemon-reload && systemctl enable --now web\.service/);
  for (const f of [car, svc]) assert.equal(statSync(f).mode & 0o777, 0o644, f);
  const text = readFileSync(svc, "utf8");
  // The default coffer is this bundle run by an absolute node; a bare CMD is found on PATH.
  const words = systemdWords(lines(text, "ExecStart")[0]!);
  assert.equal(words[0], process.execPath);
  assert.equal(words[1], BIN);
  assert.deepEqual(words.slice(words.indexOf("--") + 1), ["/usr/bin/env", "--port", "8 080", "100% $HOME"]);
  if (existsSync(SYSTEMD_ANALYZE)) {
    const v = spawnSync(SYSTEMD_ANALYZE, ["verify", "./web-secrets.service", "./web.service"], { cwd: out, encoding: "utf8" });
    assert.equal(v.stderr, "");
    assert.equal(v.status, 0);
  }

  writeFileSync(svc, "edited");
  const again = coffer(home, args);
  assert.equal(again.code, 4);
  assert.match(again.err, /web-secrets\.service, .*web\.service exists; --force overwrites/);
  assert.equal(readFileSync(svc, "utf8"), "edited");
  const forced = coffer(home, [...args, "--force", "--style", "credentials", "--user", "coffer-web"]);
  assert.equal(forced.code, 0, forced.err);
  assert.match(readFileSync(svc, "utf8"), /^LoadCredential=db_password:\/run\/coffer\/web\/db_password$/m);
  assert.equal(statSync(svc).mode & 0o777, 0o644);
});

test("the e2e CLI: usage errors, bad names and --help", async (t) => {
  if (!existsSync(BIN)) return t.skip("no dist/bundle: run `npm run build`");
  const { coffer } = await import("../e2e/run-cli.ts");
  const home = tempDir(t, "coffer-home-");
  const common = ["--exec", "/bin/true", "--secrets", "a", "--out", join(home, "u")];
  const both = coffer(home, ["units", "--name", "web", ...common, "--provider", "store", "--config", "/etc/c.yml"]);
  assert.equal(both.code, 2);
  assert.match(both.err, /exactly one of --provider SPEC and --config F/);
  const bad = coffer(home, ["units", "--name", "web.service", ...common, "--provider", "store"]);
  assert.equal(bad.code, 7);
  assert.match(bad.err, /without "\.service"/);
  const missing = coffer(home, ["units", "--name", "web", "--exec", "no-such-program-here", "--secrets", "a", "--provider", "store", "--out", join(home, "u")]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /not on PATH/);
  assert.equal(existsSync(join(home, "u")), false, "nothing written on an error");
  const help = coffer(home, ["units", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /Examples:\n {2}coffer units --name web/);
});

test("docs/systemd.md's LoadCredential= lines point at the files the agent writes (db_password, never a db/password it does not write)", () => {
  const doc = readFileSync(fileURLToPath(new URL("../../docs/systemd.md", import.meta.url)), "utf8");
  const documented = doc.split("\n").filter((l) => l.startsWith("LoadCredential="));
  assert.ok(documented.length > 0, "the doc shows the credentials style");
  const service = renderUnits({
    name: "web", exec: ["/usr/bin/web"], secrets: parseUnitSecrets("db/password=DB_PASSWORD,api-key"),
    source: { provider: "folder:/etc/coffer/web" }, coffer: ["/usr/bin/node", "/opt/coffer/dist/bundle/bin.js"],
    style: "credentials", user: "web",
  }).find((u) => u.filename === "web.service")!;
  const rendered = service.text.split("\n").filter((l) => l.startsWith("LoadCredential="));
  assert.deepEqual(documented, rendered);
});
