# envpools completion for bash. Load it with, in ~/.bashrc:
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
