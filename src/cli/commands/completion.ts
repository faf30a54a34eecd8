/**
 * `coffer completion bash|zsh|fish`: the shell's completion script. Each script only asks the
 * hidden `coffer __complete WORDS…` (src/cli/complete.ts) for the candidates, so commands, flags,
 * secret names and environment names always come from the coffer that is installed. They call
 * `coffer` by name, not `command coffer`, so a shell function or alias named coffer works too.
 */
import { CofferError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { COMMAND_DIRECTIVE, FILE_DIRECTIVE } from "../complete.ts";

const BASH = `# bash completion for coffer: source <(coffer completion bash)
_coffer() {
  local cur=\${COMP_WORDS[COMP_CWORD]} out
  COMPREPLY=()
  out=$(coffer __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
  case $out in
    ${FILE_DIRECTIVE}) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    ${COMMAND_DIRECTIVE}) mapfile -t COMPREPLY < <(compgen -c -- "$cur") ;;
    ?*) mapfile -t COMPREPLY <<<"$out" ;;
  esac
}
complete -F _coffer coffer
`;

const ZSH = `#compdef coffer
# zsh completion for coffer: source <(coffer completion zsh) after compinit,
# or save it as _coffer in a directory of $fpath
_coffer() {
  local -a out
  out=("\${(@f)$(coffer __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  case "\${out[1]-}" in
    ${FILE_DIRECTIVE}) _files ;;
    ${COMMAND_DIRECTIVE}) _command_names -e ;;
    "") return 1 ;;
    *) compadd -Q -- "\${out[@]}" ;;
  esac
}
if [[ "\${zsh_eval_context[-1]-}" == loadautofunc ]]; then
  _coffer "$@"
else
  compdef _coffer coffer
fi
`;

const FISH = `# fish completion for coffer: coffer completion fish | source
# (or save it as ~/.config/fish/completions/coffer.fish)
function __coffer_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -q cur[1]; or set cur ""
    set -l out (coffer __complete $words[2..-1] "$cur" 2>/dev/null)
    switch "$out[1]"
        case ${FILE_DIRECTIVE}
            __fish_complete_path "$cur"
        case ${COMMAND_DIRECTIVE}
            complete -C "$cur"
        case '*'
            printf '%s\\n' $out
    end
end
complete -c coffer -f -a '(__coffer_complete)'
`;

/** The scripts, by shell. */
export const COMPLETION_SCRIPTS: Record<string, string> = { bash: BASH, zsh: ZSH, fish: FISH };

export const completion: Command = {
  name: "completion",
  usage: "bash|zsh|fish",
  details: [
    "Prints the shell's completion script. It completes commands, flags, secret names of the",
    "local store (names only, read without your identity: no passphrase, no value, no audit record)",
    "and environment names of the .coffer.yml `coffer run` would use (only one it would obey).",
    "The script asks `coffer` itself each time, so it follows the installed version.",
  ].join("\n"),
  examples: [
    "source <(coffer completion bash)        # in ~/.bashrc",
    "source <(coffer completion zsh)         # in ~/.zshrc, after compinit",
    "coffer completion fish > ~/.config/fish/completions/coffer.fish",
  ],
  completes: ["bash", "zsh", "fish"],
  flags: {},
  async run(ctx) {
    const shell = ctx.args[0];
    if (ctx.args.length !== 1 || shell === undefined || COMPLETION_SCRIPTS[shell] === undefined) {
      throw new CofferError("E_USAGE", "usage: coffer completion bash|zsh|fish");
    }
    ctx.out(COMPLETION_SCRIPTS[shell]);
  },
};
