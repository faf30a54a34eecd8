/**
 * The agent config file (`coffer agent --config /etc/coffer/agent.yml --service NAME`), checked
 * against {@link AGENT_SCHEMA} by the one config checker (config/schema-check.ts); problems are
 * `E_CONFIG` naming `file:line: rule`, every problem of the file at once. The settings' own
 * grammars are options.ts's, the backends' are the providers' (src/providers/).
 */
import { dangerousEnvRule, isDangerousEnvName } from "../config/dangerous-env.ts";
import { CONFIG_FORMATS } from "../config/load.ts";
import { grammarOf, PROVIDERS } from "../providers/index.ts";
import { readConfigFile } from "../config/read.ts";
import { PROVIDER_NAME_PATTERN, SHARED_DEFS } from "../config/schema.ts";
import { SchemaChecker, type Formats, type Schema } from "../config/schema-check.ts";
import { parseYaml, show } from "../config/yaml-checker.ts";
import { unquotedModeRule } from "../core/file-mode.ts";
import { CofferError } from "../errors.ts";
import type { ProviderSpec } from "../providers/provider.ts";
import { interval, mode, onChange, owner, secretConflicts, secretItem, type AgentSecret, type AgentSettings } from "./options.ts";

export * from "./options.ts";
export { parseProviderSpec } from "../providers/index.ts";

/** A service's name in the agent config. */
export const SERVICE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.@-]*$";

const setting = (format: string): Schema => ({ type: "string", "x-format": format, "x-rule": "{where}: {rule}" });
const names = (expect: string): Schema => ({ type: "array", items: { type: "string" }, "x-expect": expect });
const secretsForm = "a list of ID or ID=ENV_NAME";

/** The JSON Schema of agent.yml, with coffer's `x-` message keywords (schema-check.ts). */
export const AGENT_SCHEMA: Schema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "urn:coffer:schema:agent.yml:1",
  title: "coffer agent config (agent.yml)",
  type: "object",
  additionalProperties: false,
  required: ["backends", "services"],
  properties: {
    backends: {
      type: "object",
      propertyNames: { pattern: PROVIDER_NAME_PATTERN, "x-rule": "backend name {value} must match {pattern}" },
      additionalProperties: { $ref: "#/$defs/backend" },
      "x-item": "backend {key}",
      "x-needs": "a map of backend names to { type, … }",
    },
    // Of services, only the chosen one is checked (against #/$defs/service): another's mistake does not stop it.
    services: { type: "object", "x-needs": "a map of service names to { backend, secrets, … }" },
  },
  $defs: {
    ...SHARED_DEFS,
    backend: {
      "x-typed": true,
      oneOf: PROVIDERS.map((g) => ({ ...g.schema, properties: { ...g.schema["properties"], ...g.agentProperties } })),
    },
    service: {
      type: "object",
      additionalProperties: false,
      required: ["backend", "secrets"],
      properties: {
        backend: { type: "string", "x-needs": "the name of one of backends:" },
        override: {}, // a map of the backend's settings: checked against the backend's type in code
        secrets: { ...names(secretsForm), minItems: 1, "x-needs": secretsForm, "x-empty": "{where} is empty; list at least one ID" },
        allowDangerous: { $ref: "#/$defs/allowDangerous" },
        dir: { $ref: "#/$defs/absolutePath" },
        watch: { type: "boolean" },
        pollInterval: setting("poll-interval"),
        onChange: setting("on-change"),
        mode: setting("agent-mode"),
        owner: setting("owner"),
      },
    },
  },
};

const ruleOf = <T>(r: { ok: T } | { rule: string }): string | undefined => ("rule" in r ? r.rule : undefined);
const AGENT_FORMATS: Formats = {
  ...CONFIG_FORMATS,
  "poll-interval": (s, number) => (number === true ? undefined : ruleOf(interval(s))),
  "on-change": (s, number) => (number === true ? undefined : ruleOf(onChange(s))),
  "agent-mode": (s, number) => (number === true ? unquotedModeRule(s) : ruleOf(mode(s))),
  owner: (s, number) => (number === true ? undefined : ruleOf(owner(s))),
};

/**
 * Reads the agent config (`--config F`) and returns the settings of one service.
 *
 * The file holds `backends:` (name → a provider entry as in `.coffer.yml`'s `providers:`, vault
 * with an optional `tokenFile`) and `services:` (name → `{ backend, secrets: [ID or ID=ENV_NAME,
 * …], override?, dir?, watch?, pollInterval?, onChange?, mode?, owner?, allowDangerous? }`).
 * `override:` replaces settings of the chosen backend (not its type). The top level and every
 * backend are checked; of `services:` only the chosen entry is checked deeply, so a mistake in
 * another service's entry does not stop this service. A variable on the dangerous list
 * (dangerous-env.ts: PATH, LD_*, …) is refused unless the service's `allowDangerous: [NAME, …]`
 * names it; the file may be at most 1 MiB (MAX_CONFIG_BYTES).
 * @throws CofferError E_CONFIG listing every problem as `file:line: rule`; for an unknown
 *   service, listing the services
 */
export function loadAgentConfig(path: string, service: string): AgentSettings {
  return parseAgentConfig(readConfigFile(path, "agent config file"), path, service);
}

/**
 * Parses and checks agent-config text (what {@link loadAgentConfig} does after reading).
 * @param file - the name messages show
 * @throws CofferError E_CONFIG listing every problem
 */
export function parseAgentConfig(text: string, file: string, service: string): AgentSettings {
  const { doc, lines } = parseYaml(text, file);
  const c = new SchemaChecker(file, doc, lines).use(AGENT_SCHEMA, AGENT_FORMATS);
  const settings = agentSettings(c, doc.contents, service);
  c.throwIfAny();
  if (settings === undefined) throw new CofferError("E_INTERNAL", `${file}: the agent config was not checked`);
  return settings;
}

type Settings = Record<string, unknown>;

function agentSettings(c: SchemaChecker, contents: unknown, service: string): AgentSettings | undefined {
  if (c.isEmpty(contents)) {
    c.problem(1, "the file is empty; it needs backends: and services:");
    return undefined;
  }
  const top = c.check(contents, AGENT_SCHEMA, "", 1) as { backends?: Record<string, Settings>; services?: Record<string, unknown> } | undefined;
  for (const [name, b] of Object.entries(top?.backends ?? {})) {
    if (b["tokenEnv"] !== undefined && b["tokenFile"] !== undefined) c.problem(c.at(top!.backends!, name)!.key, `backend ${show(name)}: give tokenEnv or tokenFile, not both`);
  }
  if (top?.services === undefined) return undefined;
  const chosen = c.at(top.services, service);
  if (chosen === undefined || !Object.hasOwn(top.services, service)) {
    c.problem(c.at(top, "services")!.key, `unknown service ${show(service)}; services: ${c.keysOf(top.services).join(", ") || "(none)"}`);
    return undefined;
  }
  if (!new RegExp(SERVICE_NAME_PATTERN).test(service)) {
    c.problem(chosen.key, `service name ${show(service)} must match ${SERVICE_NAME_PATTERN}`);
    return undefined;
  }
  const where = `service ${show(service)}`;
  const before = c.problems.length;
  const s = c.check(top.services[service], c.def("service"), where, chosen.key) as Settings | undefined;
  if (s === undefined) return undefined;

  // backend + override
  let fields: Settings | undefined;
  let type: ProviderSpec["type"] | undefined;
  const name = s["backend"] as string | undefined;
  const backend = name === undefined || top.backends === undefined ? undefined : top.backends[name];
  if (name !== undefined && top.backends !== undefined && c.at(top.backends, name) === undefined) {
    // A backend written but broken has its problems reported already.
    c.problem(c.lineOf(s, "backend"), `${where}: backend ${show(name)} is not in backends:; backends: ${c.keysOf(top.backends).join(", ") || "(none)"}`);
  }
  if (backend !== undefined) {
    type = backend["type"] as ProviderSpec["type"];
    fields = { ...backend };
    if (s["override"] !== undefined) {
      const ow = `${where} override (backend ${show(name!)}, type ${type})`;
      const { type: _, ...properties } = c.def("backend")["oneOf"].find((b: Schema) => b["properties"]["type"]["const"] === type)["properties"];
      const typeRule = { not: {}, "x-rule": `${ow}: type cannot be overridden; choose another backend` };
      const override = c.check(s["override"], { type: "object", additionalProperties: false, properties: { type: typeRule, ...properties } }, ow, c.lineOf(s, "override")) as Settings;
      if (override !== undefined && override["tokenEnv"] !== undefined && override["tokenFile"] !== undefined) {
        c.problem(c.at(s, "override")!.key, `${ow}: give tokenEnv or tokenFile, not both`);
      }
      for (const [k, v] of Object.entries(override ?? {})) {
        if (k === "tokenEnv") delete fields["tokenFile"];
        if (k === "tokenFile") delete fields["tokenEnv"];
        fields[k] = v;
      }
    }
  }

  const allowed = (s["allowDangerous"] ?? []) as string[];

  const secrets: AgentSecret[] = [];
  const secretLines: number[] = [];
  const items = (s["secrets"] ?? []) as string[];
  items.forEach((item, i) => {
    const line = c.lineOf(items, i);
    const r = secretItem(item.trim());
    if ("rule" in r) c.problem(line, `${where} secrets: ${r.rule}`);
    else if (isDangerousEnvName(r.ok.env) && !allowed.includes(r.ok.env)) {
      c.problem(line, `${where} secrets: ${dangerousEnvRule(r.ok.env, `the service's allowDangerous: [${r.ok.env}]`)}; or give it another name with ID=ENV_NAME`);
    } else {
      secrets.push(r.ok);
      secretLines.push(line);
    }
  });
  for (const { index, rule } of secretConflicts(secrets)) c.problem(secretLines[index] ?? c.lineOf(s, "secrets"), `${where} secrets: ${rule}`);

  if (c.problems.length > before || fields === undefined || type === undefined) return undefined;
  const tokenFile = type === "vault" ? (fields["tokenFile"] as string | undefined) : undefined;
  const str = (k: string): string | undefined => s[k] as string | undefined;
  const out: AgentSettings = {
    provider: grammarOf(type)!.spec(fields) as ProviderSpec,
    ...(tokenFile !== undefined && { tokenFile }),
    secrets,
    ...(str("dir") !== undefined && { dir: str("dir")! }),
    ...(s["watch"] !== undefined && { watch: s["watch"] as boolean }),
    ...(str("pollInterval") !== undefined && { pollIntervalMs: (interval(str("pollInterval")!) as { ok: number }).ok }),
    ...(str("onChange") !== undefined && { onChange: (onChange(str("onChange")!) as { ok: NonNullable<AgentSettings["onChange"]> }).ok }),
    ...(str("mode") !== undefined && { mode: (mode(str("mode")!) as { ok: number }).ok }),
    ...(str("owner") !== undefined && { owner: str("owner")! }),
  };
  return out;
}
