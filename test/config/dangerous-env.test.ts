import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAgentConfig } from "../../src/agent/config.ts";
import { DANGEROUS_ENV_NAMES, isDangerousEnvName } from "../../src/config/dangerous-env.ts";
import { parseConfig, planFor } from "../../src/config/load.ts";
import { configError } from "../helpers.ts";


const F = ".coffer.yml";

test("the dangerous list: exact names, prefixes with *, proxy names in any case", () => {
  assert.equal(DANGEROUS_ENV_NAMES.length, 29);
  for (const name of [
    "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "NODE_OPTIONS", "NODE_PATH", "BASH_ENV", "ENV",
    "PROMPT_COMMAND", "IFS", "PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME",
    "HOME", "PYTHONBREAKPOINT", "PYTHONWARNINGS", "PYTHONUNBUFFERED", "PERL5DB", "PERLLIB", "RUBYSHELL", "SHELLOPTS", "BASHOPTS", "PS4",
    "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    "JAVA_TOOL_OPTIONS", "GCONV_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_COUNT",
    "npm_config_registry", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "Https_Proxy",
  ]) {
    assert.equal(isDangerousEnvName(name), true, name);
  }
  for (const name of ["DATABASE_URL", "path", "Path", "MY_PATH", "PATH2", "NODE_ENV", "ENVIRONMENT", "LD", "GIT_AUTHOR_NAME", "NO_PROXY", "home", "HOMEDIR", "PERL", "RUBBY", "ld_preload"]) {
    assert.equal(isDangerousEnvName(name), false, name);
  }
});

const withEnv = (env: string, top = ""): string => `${top}environments:\n  dev:\n${env}`;

test("a committed PATH is refused unless allowDangerous names it", () => {
  assert.equal(
    configError(() => parseConfig(withEnv("    env:\n      PATH: tools/path\n"), F)),
    `${F}:4: PATH changes how programs load or run, so a config file may not set it unless the top-level allowDangerous: [PATH] names it`,
  );
  const config = parseConfig(withEnv("    env:\n      PATH: tools/path\n      A: a\n", "allowDangerous: [PATH]\n"), F);
  const plan = planFor(config, "dev", {});
  assert.deepEqual(plan.dangerous, ["PATH"]);
  assert.equal(planFor(parseConfig(withEnv("    env:\n      A: a\n"), F), "dev", {}).dangerous, undefined);
});

test("a committed LD_PRELOAD file is refused: files: set the variable to a path the secret controls", () => {
  assert.match(configError(() => parseConfig(withEnv("    files:\n      LD_PRELOAD: evil/so\n"), F)), /^\.coffer\.yml:4: LD_PRELOAD changes how programs load or run/);
  assert.match(configError(() => parseConfig(withEnv("    env:\n      https_proxy: p\n"), F)), /https_proxy changes how programs load or run/);
  assert.match(configError(() => parseConfig(withEnv("    env:\n      NODE_OPTIONS: n\n", "allowDangerous: [PATH]\n"), F)), /NODE_OPTIONS changes/);
});

test("allowDangerous takes only names on the list", () => {
  assert.equal(
    configError(() => parseConfig(withEnv("    env: {}\n", "allowDangerous: [DATABASE_URL, 1X]\n"), F)),
    `${F}: 2 problems:\n  ${F}:1: allowDangerous: "DATABASE_URL" is not on the dangerous list and needs no opt-in; remove it\n  ` +
      `${F}:1: allowDangerous: environment variable name "1X" must match ^[A-Za-z_][A-Za-z0-9_]*$`,
  );
  assert.match(configError(() => parseConfig(withEnv("    env: {}\n", "allowDangerous: PATH\n"), F)), /allowDangerous must be a list of variable names, got the string "PATH"/);
});

const agentYml = (service: string): string => `backends:\n  f: { type: folder, dir: /etc/secrets }\nservices:\n  web:\n    backend: f\n${service}`;

test("an agent.yml secret named PATH (or defaulting to it) is refused unless the service's allowDangerous names it", () => {
  assert.equal(
    configError(() => parseAgentConfig(agentYml("    secrets: [path]\n"), "agent.yml", "web")),
    `agent.yml:6: service "web" secrets: PATH changes how programs load or run, so a config file may not set it unless the service's allowDangerous: [PATH] names it; or give it another name with ID=ENV_NAME`,
  );
  assert.match(configError(() => parseAgentConfig(agentYml("    secrets: [x=LD_PRELOAD]\n"), "agent.yml", "web")), /LD_PRELOAD changes how programs load or run/);
  const ok = parseAgentConfig(agentYml("    secrets: [path, x=LD_PRELOAD]\n    allowDangerous: [PATH, LD_PRELOAD]\n"), "agent.yml", "web");
  assert.deepEqual(ok.secrets.map((s) => s.env), ["PATH", "LD_PRELOAD"]);
  assert.match(configError(() => parseAgentConfig(agentYml("    secrets: [a]\n    allowDangerous: [A]\n"), "agent.yml", "web")), /"A" is not on the dangerous list/);
});
