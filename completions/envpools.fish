# envpools completion for fish. Install it with:
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
