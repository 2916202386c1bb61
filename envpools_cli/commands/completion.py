"""envpools completion: shell completion scripts (answered by a fast path in __main__).

The scripts complete commands and flags, and values: rollout ids (recent first), pool and
task ids, agents and models the backend offers, output formats, profiles and eval jobs.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Print a shell completion script: bash, zsh or fish.", no_args_is_help=True)


def _emit(shell: str) -> None:
    from envpools_cli.completion.scripts import script
    from envpools_cli.output.streams import write_out

    write_out(script(shell))


@app.command("bash")
def bash() -> None:
    """Bash: eval "$(envpools completion bash)" in ~/.bashrc."""
    _emit("bash")


@app.command("zsh")
def zsh() -> None:
    """Zsh: envpools completion zsh > "${fpath[1]}/_envpools"."""
    _emit("zsh")


@app.command("fish")
def fish() -> None:
    """Fish: envpools completion fish > ~/.config/fish/completions/envpools.fish."""
    _emit("fish")
