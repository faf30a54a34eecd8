/**
 * Renders the systemd units that give a service its secrets (`coffer units`): the side-car
 * style of the NixOS "secrets for services" design (a privileged `NAME-secrets.service` writes
 * the secrets into a PrivateTmp that `NAME.service` joins) and the credentials style (the
 * side-car writes into `/run/coffer/NAME`, `NAME.service` takes the files through systemd's own
 * `LoadCredential=`). Pure: builds text, touches no file; `docs/systemd.md` explains the design.
 */
import { parseProviderSpec } from "../providers/index.ts";
import { fileNameOf, SECRETS_ENV_FILE } from "./config.ts";
import { CofferError } from "../errors.ts";
import { assertEnvName, assertSecretName } from "../core/names.ts";

/** One secret a service receives: its ID in the provider and, if given, its variable name. */
export interface UnitSecret {
  id: string;
  /** the variable in `secrets.env`; when absent, the agent derives it from the ID */
  env?: string;
}

/** `side-car`: PrivateTmp + `coffer exec-env`; `credentials`: `LoadCredential=`. */
export type UnitStyle = "side-car" | "credentials";

/** Where the agent gets the values: a provider SPEC, or the agent config file and this service's entry. */
export type UnitSource = { provider: string } | { config: string };

/** What {@link renderUnits} needs. */
export interface UnitsOptions {
  /** the service's unit name without `.service` */
  name: string;
  /** the service's command line; `exec[0]` is an absolute path */
  exec: string[];
  secrets: UnitSecret[];
  source: UnitSource;
  /** the command line that runs coffer, e.g. `[process.execPath, "/opt/coffer/dist/bundle/bin.js"]`; `coffer[0]` is absolute */
  coffer: string[];
  /** default `side-car` */
  style?: UnitStyle;
  /** run the service as this existing user instead of a `DynamicUser=` */
  user?: string;
}

/** A rendered unit file, e.g. `web-secrets.service` and its text. */
export type RenderedUnit = { filename: string; text: string };

const UNIT_NAME_RE = /^[a-zA-Z0-9:_.\-]+$/;
const SIDE_CAR_SUFFIX = "-secrets.service";
// A unit name is at most 255 characters with its suffix.
const UNIT_NAME_MAX = 255 - SIDE_CAR_SUFFIX.length;
// systemd's relaxed user-name rule (valid_user_group_name) without the oddities, or a numeric UID.
const USER_RE = /^(?:[A-Za-z_][A-Za-z0-9_.\-]{0,31}|[0-9]{1,10})$/;
const SAFE_WORD_RE = /^[A-Za-z0-9_@+=:,./\-]+$/;

/**
 * Checks a service name for `coffer units`: systemd unit-name characters, without the
 * `.service` suffix (it is added), not starting with `.` or `-` (it also names
 * `/run/coffer/NAME` and must not read as a flag).
 * @throws CofferError E_INVALID_NAME naming the rule
 */
export function assertUnitName(name: string): void {
  const shown = JSON.stringify(name.slice(0, 80));
  if (name.endsWith(".service")) {
    throw new CofferError("E_INVALID_NAME", `invalid unit name ${shown}: give it without ".service" (coffer adds it)`);
  }
  if (!UNIT_NAME_RE.test(name) || name.startsWith(".") || name.startsWith("-") || name.length > UNIT_NAME_MAX) {
    throw new CofferError(
      "E_INVALID_NAME",
      `invalid unit name ${shown}: must match ^[a-zA-Z0-9:_.\\-]+$, not start with "." or "-", at most ${UNIT_NAME_MAX} characters`,
    );
  }
}

/**
 * Parses `--secrets`: comma-separated `ID` or `ID=ENV_NAME`, each ID a valid secret name, each
 * ENV_NAME a valid variable name, no ID twice.
 * @example parseUnitSecrets("db/password=DB_PASSWORD,api-key") // [{ id: "db/password", env: "DB_PASSWORD" }, { id: "api-key" }]
 * @throws CofferError E_USAGE when empty or an ID repeats; E_INVALID_NAME for a bad ID or ENV_NAME
 */
export function parseUnitSecrets(spec: string): UnitSecret[] {
  const seen = new Set<string>();
  return spec.split(",").map((item) => {
    if (item === "") throw new CofferError("E_USAGE", "--secrets: an empty item; give ID or ID=ENV_NAME, comma-separated, e.g. db/password=DB_PASSWORD,api-key");
    const eq = item.indexOf("=");
    const secret = eq === -1 ? { id: item } : { id: item.slice(0, eq), env: item.slice(eq + 1) };
    checkSecret(secret);
    if (seen.has(secret.id)) throw new CofferError("E_USAGE", `--secrets: ${secret.id} is listed twice`);
    seen.add(secret.id);
    return secret;
  });
}

function checkSecret(s: UnitSecret): void {
  assertSecretName(s.id);
  if (s.id === SECRETS_ENV_FILE) throw new CofferError("E_USAGE", "--secrets: the ID secrets.env is reserved (the agent writes its env file under that name)");
  if (s.env !== undefined) assertEnvName(s.env);
}

/**
 * Splits a command line given as one string (`--exec`, `--coffer`) into words, as a POSIX shell
 * would without expansions: blanks separate words, `'…'` is literal, `"…"` keeps `\"`, `\\`,
 * `\$` and `` \` `` escapes, a backslash outside quotes escapes the next character. `$`, `*`,
 * `;` and the like are plain characters: nothing is expanded.
 * @example splitCommandLine(`/usr/bin/app --name 'my app'`) // ["/usr/bin/app", "--name", "my app"]
 * @throws CofferError E_USAGE on an unclosed quote or a trailing backslash
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === " " || c === "\t" || c === "\n") {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new CofferError("E_USAGE", `unclosed ' in ${JSON.stringify(line)}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      word ??= "";
      for (i++; ; i++) {
        if (i >= line.length) throw new CofferError("E_USAGE", `unclosed " in ${JSON.stringify(line)}`);
        const d = line[i]!;
        if (d === '"') break;
        if (d === "\\" && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) word += line[++i]!;
        else word += d;
      }
    } else if (c === "\\") {
      if (i + 1 >= line.length) throw new CofferError("E_USAGE", `trailing \\ in ${JSON.stringify(line)}`);
      word = (word ?? "") + line[++i]!;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/**
 * Quotes one word for a systemd command line (`ExecStart=`): `%` becomes `%%` (no specifier
 * expansion) and `$` becomes `$$` (no variable expansion); a word with anything but safe
 * characters is put in double quotes with C escapes (`\\`, `\"`, `\n`, `\xNN`…), and a lone `;`
 * is written `\;` (it would separate commands).
 * @example quoteExecWord('say "hi" 100% $HOME') // "\"say \\\"hi\\\" 100%% $$HOME\""
 * @throws CofferError E_INVALID_VALUE for a NUL character (no argument can hold one)
 */
export function quoteExecWord(word: string): string {
  if (word.includes("\0")) throw new CofferError("E_INVALID_VALUE", "a command-line word holds a NUL character, which no argument can carry");
  if (word === ";") return "\\;";
  if (SAFE_WORD_RE.test(word)) return word;
  let out = '"';
  for (const ch of word) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === '"') out += '\\"';
    else if (ch === "%") out += "%%";
    else if (ch === "$") out += "$$";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Joins words into a systemd command line with {@link quoteExecWord}. */
export function execLine(words: readonly string[]): string {
  return words.map(quoteExecWord).join(" ");
}

function validate(o: UnitsOptions): void {
  assertUnitName(o.name);
  const style = o.style ?? "side-car";
  if (style !== "side-car" && style !== "credentials") {
    throw new CofferError("E_USAGE", `unknown --style ${JSON.stringify(style)}: side-car or credentials`);
  }
  for (const [flag, argv] of [["--exec", o.exec], ["--coffer", o.coffer]] as const) {
    const first = argv[0];
    if (first === undefined) throw new CofferError("E_USAGE", `${flag}: an empty command line`);
    if (!first.startsWith("/")) throw new CofferError("E_USAGE", `${flag}: the program must be an absolute path, not ${JSON.stringify(first)}`);
  }
  const seen = new Map<string, string>();
  for (const s of o.secrets) {
    checkSecret(s);
    // The agent's file name of an ID is also its credential name.
    const cred = fileNameOf(s.id);
    const other = seen.get(cred);
    if (other !== undefined) {
      throw new CofferError("E_USAGE", `--secrets: ${other} and ${s.id} would both be the credential ${cred} ("/" becomes "_"); rename one`);
    }
    seen.set(cred, s.id);
  }
  if ("provider" in o.source) {
    if (o.secrets.length === 0) throw new CofferError("E_USAGE", "--secrets: give at least one ID with --provider");
    const p = o.source.provider;
    if (p.startsWith("folder:") && !p.slice("folder:".length).startsWith("/")) {
      throw new CofferError("E_USAGE", `--provider ${JSON.stringify(p)}: the folder must be an absolute path (the unit runs in /)`);
    }
    // The agent's own grammar (src/providers/), so a unit never holds a spec the agent refuses.
    try {
      parseProviderSpec(p);
    } catch (err) {
      throw new CofferError("E_USAGE", `--provider: ${(err as Error).message}`);
    }
  } else if (!o.source.config.startsWith("/")) {
    throw new CofferError("E_USAGE", `--config ${JSON.stringify(o.source.config)}: must be an absolute path (the unit runs in /)`);
  }
  if (style === "credentials" && o.secrets.length === 0) {
    throw new CofferError("E_USAGE", "--secrets: the credentials style needs the IDs (one LoadCredential= line each)");
  }
  if (o.user !== undefined && !USER_RE.test(o.user)) {
    throw new CofferError("E_INVALID_NAME", `invalid user ${JSON.stringify(o.user.slice(0, 40))}: a user name ([A-Za-z_][A-Za-z0-9_.-]*, at most 32) or a numeric UID`);
  }
  // systemd itself warns that nobody is unsafe (shared by unrelated daemons); root defeats the point.
  if (o.user !== undefined && ["root", "0", "nobody", "nfsnobody", "65534"].includes(o.user)) {
    throw new CofferError("E_USAGE", `--user ${o.user}: not safe for a service holding secrets; create a dedicated user, or omit --user for DynamicUser=yes`);
  }
}

/** Hardening both units share (both run Node, whose JIT needs W+X pages: no MemoryDenyWriteExecute=). */
const COMMON_HARDENING = [
  "NoNewPrivileges=yes",
  "ProtectSystem=strict",
  "ProtectHome=yes",
  "PrivateDevices=yes",
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectKernelLogs=yes",
  "ProtectControlGroups=yes",
  "ProtectClock=yes",
  "ProtectHostname=yes",
  "ProtectProc=invisible",
  "RestrictSUIDSGID=yes",
  "RestrictRealtime=yes",
  "RestrictNamespaces=yes",
  "LockPersonality=yes",
  "SystemCallArchitectures=native",
  "SystemCallFilter=@system-service",
  "SystemCallErrorNumber=EPERM",
  "LimitCORE=0",
  "UMask=0077",
];

// The service's own unit in both styles: it needs its side-car and runs hardened.
function serviceUnit(car: string, description: string, unitExtra: string[], serviceLines: string[]): string {
  return unitText([
    ["Unit", [`Description=${description}`, `Requires=${car}`, `After=${car}`, ...unitExtra]],
    ["Service", [...serviceLines, "PrivateTmp=yes", "CapabilityBoundingSet=", "AmbientCapabilities=", ...COMMON_HARDENING]],
    ["Install", ["WantedBy=multi-user.target"]],
  ]);
}

function unitText(sections: [string, string[]][]): string {
  const header = "# Rendered by `coffer units`; see docs/systemd.md. Change it with a drop-in (systemctl edit).";
  return `${header}\n${sections.map(([title, lines]) => `[${title}]\n${lines.join("\n")}\n`).join("\n")}`;
}

function agentArgs(o: UnitsOptions, dir: string, onChange: string, owner: string[]): string[] {
  const ids = o.secrets.map((s) => (s.env === undefined ? s.id : `${s.id}=${s.env}`)).join(",");
  const source = "provider" in o.source
    ? ["--provider", o.source.provider, "--secrets", ids]
    : ["--config", o.source.config, "--service", o.name];
  return [...o.coffer, "agent", ...source, "--dir", dir, "--watch", "--on-change", onChange, ...owner];
}

/** The side-car needs no network for local providers; it joins none then. */
function localOnly(o: UnitsOptions): boolean {
  return "provider" in o.source && (o.source.provider === "store" || o.source.provider.startsWith("folder:"));
}

/**
 * Renders the units for a service: `NAME-secrets.service` (the agent) and `NAME.service`,
 * in the given style. Validates every input first.
 * @example
 * renderUnits({ name: "web", exec: ["/usr/bin/web", "--port", "8080"], secrets: parseUnitSecrets("db/password"),
 *   source: { provider: "folder:/etc/web/secrets" }, coffer: [process.execPath, "/opt/coffer/dist/bundle/bin.js"] })
 * @returns the units, side-car first
 * @throws CofferError E_USAGE / E_INVALID_NAME naming the bad input
 */
export function renderUnits(o: UnitsOptions): RenderedUnit[] {
  validate(o);
  const style = o.style ?? "side-car";
  const svc = `${o.name}.service`;
  const car = `${o.name}-secrets.service`;
  const user = o.user === undefined ? ["DynamicUser=yes"] : [`User=${o.user}`];
  const carNetwork = localOnly(o) ? ["PrivateNetwork=yes"] : [];
  // root's home is hidden (ProtectHome=yes) and the store writes its audit log: a system store
  // lives in /var/lib/coffer, the one place the side-car may write besides its output dir.
  const carStore = "provider" in o.source && o.source.provider === "store"
    ? ["Environment=COFFER_HOME=/var/lib/coffer", "StateDirectory=coffer", "StateDirectoryMode=0700"]
    : [];

  // The side-car runs as root (it reads the provider's credentials) with almost no capabilities.
  const carCommon = (execStart: string, extra: string[], caps: string): [string, string[]] => [
    "Service",
    [
      "Type=notify",
      // The agent signals readiness through `systemd-notify --pid=`, a child process; the
      // default NotifyAccess=main would drop its READY=1.
      "NotifyAccess=all",
      `ExecStart=${execStart}`,
      "Restart=on-success",
      ...extra,
      ...carStore,
      ...carNetwork,
      "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
      `CapabilityBoundingSet=${caps}`,
      ...COMMON_HARDENING,
    ],
  ];

  if (style === "side-car") {
    // In the private /tmp only the two units (and root) see the files. A named user gets them
    // 0400 and owned; a dynamic user does not exist yet when the side-car writes, so the files
    // are 0444 there — readable by nothing outside this namespace.
    const owner = o.user === undefined ? ["--mode", "0444"] : ["--mode", "0400", "--owner", o.user];
    const sidecar = unitText([
      ["Unit", [
        `Description=coffer secrets for ${svc}`,
        `BindsTo=${svc}`,
        `PartOf=${svc}`,
        `Before=${svc}`,
      ]],
      carCommon(execLine(agentArgs(o, "/tmp", "exit", owner)), ["PrivateTmp=yes"], o.user === undefined ? "" : "CAP_CHOWN CAP_FOWNER"),
    ]);
    const service = serviceUnit(car, `${o.name} (secrets from coffer through ${car})`, [`JoinsNamespaceOf=${car}`], [
      `ExecStart=${execLine([...o.coffer, "exec-env", "/tmp/secrets.env", "--", ...o.exec])}`,
      ...user,
    ]);
    return [{ filename: car, text: sidecar }, { filename: svc, text: service }];
  }

  const dir = `/run/coffer/${o.name}`;
  const sidecar = unitText([
    ["Unit", [
      `Description=coffer secrets for ${svc} (credentials in ${dir})`,
      `BindsTo=${svc}`,
      `PartOf=${svc}`,
      `Before=${svc}`,
    ]],
    carCommon(execLine(agentArgs(o, dir, `restart-unit:${svc}`, [])), [
      `RuntimeDirectory=coffer/${o.name}`,
      "RuntimeDirectoryMode=0700",
      "RuntimeDirectoryPreserve=yes",
    ], ""),
  ]);
  const service = serviceUnit(car, `${o.name} (secrets from coffer as credentials)`, [], [
    `ExecStart=${execLine(o.exec)}`,
    ...user,
    // Read once at start into $CREDENTIALS_DIRECTORY (%d), readable only by the service's user.
    // The agent writes each ID as DIR/fileNameOf(id), which is also its credential name.
    ...o.secrets.map((s) => `LoadCredential=${fileNameOf(s.id)}:${dir}/${fileNameOf(s.id)}`),
  ]);
  return [{ filename: car, text: sidecar }, { filename: svc, text: service }];
}
