"""The command-line tests' fixtures (a real local backend, the in-process CLI), for tmux tests."""

from tests.cli.conftest import backend, cli  # noqa: F401
from tests.cli.test_cli_views import errored, paused, stand_in_codex  # noqa: F401
