/**
 * The environment variables that change how programs load or run (docs/design.md §9): a committed
 * file that sets one takes over every command started with it. The one list of coffer: project
 * files, agent.yml and runbooks all check names with {@link isDangerousEnvName}.
 */

/**
 * The list: exact names, or a prefix ending in `*`. The proxy names match in any case (curl and
 * most HTTP clients read `https_proxy` as well as `HTTPS_PROXY`). `HOME` chooses the dotfiles
 * (`.bashrc`, `.npmrc`, `.gitconfig`) programs load; `PYTHON*`, `PERL5*` and `RUBY*` are whole
 * prefixes because each interpreter reads many (PYTHONBREAKPOINT, PYTHONWARNINGS, PERL5DB,
 * RUBYSHELL, …) that load or run code. `SHELLOPTS`/`BASHOPTS` (with `xtrace`) and `PS4` make bash
 * run a command substitution on every line.
 */
export const DANGEROUS_ENV_NAMES = [
  "PATH", "HOME", "LD_*", "DYLD_*", "NODE_OPTIONS", "NODE_PATH", "BASH_ENV", "ENV", "PROMPT_COMMAND", "IFS", "SHELLOPTS",
  "BASHOPTS", "PS4", "PERL5*", "PERLLIB", "RUBY*", "PYTHON*", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
  "GCONV_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_CONFIG_*", "npm_config_*", "HTTP_PROXY", "HTTPS_PROXY",
  "ALL_PROXY",
] as const;

const ANY_CASE = new Set(["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]);
const EXACT = new Set<string>(DANGEROUS_ENV_NAMES.filter((n) => !n.endsWith("*")));
const PREFIXES = DANGEROUS_ENV_NAMES.filter((n) => n.endsWith("*")).map((n) => n.slice(0, -1));

/**
 * Whether setting `name` changes how programs load or run (see {@link DANGEROUS_ENV_NAMES}).
 * @example isDangerousEnvName("LD_PRELOAD") // true
 * @example isDangerousEnvName("https_proxy") // true
 * @example isDangerousEnvName("DATABASE_URL") // false
 */
export function isDangerousEnvName(name: string): boolean {
  return EXACT.has(name) || ANY_CASE.has(name.toUpperCase()) || PREFIXES.some((p) => name.startsWith(p));
}

/** Why a dangerous name is refused, and how to opt in (for messages). */
export function dangerousEnvRule(name: string, optIn: string): string {
  return `${name} changes how programs load or run, so a config file may not set it unless ${optIn} names it`;
}
