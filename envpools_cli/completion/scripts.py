"""The scripts ``envpools completion <shell>`` prints: each asks ``envpools`` on every Tab.

They hand over the words of the line as arguments (not one joined string), so quoting
survives, and follow the first line of the answer: ``values`` (the rest are candidates,
in order), ``files`` or ``dirs`` (the shell's own path completion).
"""

from __future__ import annotations

__all__ = ["SHELLS", "script"]

SHELLS = ("bash", "zsh", "fish")

_BASH = r"""# envpools completion for bash. Load it with, in ~/.bashrc:
#   eval "$(envpools completion bash)"
_envpools_completion() {
    local answer directive
    local -a lines
    answer=$(_ENVPOOLS_COMPLETE=bash "${COMP_WORDS[0]}" \
        "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null)
    mapfile -t lines <<< "$answer"
    directive=${lines[0]}
    COMPREPLY=()
    case $directive in
        values) [[ ${#lines[@]} -gt 1 && -n ${lines[1]} ]] && COMPREPLY=("${lines[@]:1}") ;;
        files) compopt -o default 2>/dev/null ;;
        dirs) compopt -o dirnames 2>/dev/null ;;
    esac
    return 0
}
complete -o nosort -F _envpools_completion envpools 2>/dev/null ||
    complete -F _envpools_completion envpools
"""

_ZSH = r"""#compdef envpools
# envpools completion for zsh. Install it with:
#   envpools completion zsh > "${fpath[1]}/_envpools"
# or load it with `eval "$(envpools completion zsh)"` after compinit.
_envpools() {
    local -a lines candidates
    local answer
    answer=$(_ENVPOOLS_COMPLETE=zsh "${(Q)words[1]}" \
        "$((CURRENT - 1))" "${(@Q)words[1,CURRENT]}" 2>/dev/null)
    lines=("${(@f)answer}")
    case ${lines[1]} in
        files) _files; return ;;
        dirs) _files -/; return ;;
        values) ;;
        *) return 1 ;;
    esac
    candidates=("${(@)lines[2,-1]}")
    (( ${#candidates} )) || return 1
    _describe -V -t envpools-values 'value' candidates
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _envpools "$@"
else
    compdef _envpools envpools
fi
"""

_FISH = r"""# envpools completion for fish. Install it with:
#   envpools completion fish > ~/.config/fish/completions/envpools.fish
function __envpools_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l answer (env _ENVPOOLS_COMPLETE=fish $tokens[1] \
        (count $tokens) $tokens $current 2>/dev/null)
    set -l directive $answer[1]
    set -e answer[1]
    switch "$directive"
        case values
            printf '%s\n' $answer
        case files
            __fish_complete_path $current
        case dirs
            __fish_complete_directories $current
    end
end
complete -c envpools -f -k -a '(__envpools_complete)'
"""

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def script(shell: str) -> str:
    """The completion script for ``shell`` (one of ``SHELLS``)."""
    return _SCRIPTS[shell]
