"""Small pieces of the CLI: sanitising, the exit-code table, the keystore fallback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli import keystore
from envpools_cli.app import classify
from envpools_cli.cli_errors import NotSucceeded, UsageProblem, WaitTimedOut
from envpools_cli.output.sanitize import clean

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "click"),
        ("\x1b]0;set title\x1b\\text", "text"),
        ("bell\x07 and \x1bc reset", "bell and  reset"),
        ("tab\tkept", "tab\tkept"),
        ("line\nbreak\r", "line break "),
        ("\x9b31mc1 csi", "c1 csi"),
        ("[bold]markup[/bold] stays text", "[bold]markup[/bold] stays text"),
    ],
)
def test_clean_strips_escapes_and_controls(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def _api_error(status: int, body: dict[str, object] | None = None) -> ep.APIError:
    from envpools_cli.client.errors import error_from_response

    response = httpx.Response(
        status,
        json=body or {"error": {"code": "x", "message": "m"}},
        request=httpx.Request("GET", "http://h/v1/x"),
    )
    return error_from_response(response)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (_api_error(400), 1),
        (_api_error(401), 4),
        (_api_error(403), 4),
        (_api_error(403, {"error": {"code": "plan_required", "message": "m"}}), 4),
        (_api_error(404), 6),
        (_api_error(409), 1),
        (_api_error(422), 1),
        (_api_error(429), 7),
        (_api_error(500), 7),
        (_api_error(503), 7),
        (ep.TransportError("refused"), 7),
        (ep.MissingAPIKeyError(), 4),
        (ep.InvalidRequestError("bad"), 2),
        (ep.StreamGapError(after_seq=1, next_seq=5, last_event_id="1"), 1),
        (UsageProblem("u"), 2),
        (WaitTimedOut("t"), 3),
        (NotSucceeded("n"), 5),
    ],
)
def test_one_exit_code_table(error: Exception, code: int) -> None:
    assert classify(error)[0] == code


def test_unexpected_errors_are_not_classified() -> None:
    with pytest.raises(RuntimeError):
        classify(RuntimeError("bug"))


def test_file_fallback_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    where = keystore.set_key("p1", "ep_secret_value_123")
    assert where.startswith("file ")
    mode = stat.S_IMODE(os.stat(keystore.key_file()).st_mode)
    assert mode == 0o600
    assert keystore.stored_key("p1").value == "ep_secret_value_123"
    assert "ep_secret_value_123" not in repr(keystore.stored_key("p1"))
    assert keystore.delete_key("p1") == ["file"]
    with pytest.raises(keystore.KeyNotFound):
        keystore.stored_key("p1")


def test_env_key_wins_and_skips_the_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_API_KEY", "from-synth")
    assert keystore.get_key("any").source == "env SYNTH_API_KEY"
    monkeypatch.setenv("ENVPOOLS_API_KEY", "from-envpools")
    assert keystore.get_key("any").value == "from-envpools"


def test_a_hanging_keyring_times_out_and_falls_back(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "tests.helpers.slow_keyring.HangingKeyring",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ENVPOOLS_KEYRING", None)
    started = time.monotonic()
    login = subprocess.run(
        [
            sys.executable,
            "-m",
            "envpools_cli",
            "--profile",
            "slow",
            "config",
            "set",
            "api_url",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert login.returncode == 0
    probe = (
        "from envpools_cli import keystore; import sys; "
        "where = keystore.set_key('slow', 'ep_hanging_keyring_key', "
        "warn=lambda m: print('WARN', m, file=sys.stderr)); print(where)"
    )
    stored = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith("file "), "fell back to the 0600 file"
    assert "did not answer within" in stored.stderr
    status = subprocess.run(
        [sys.executable, "-m", "envpools_cli", "--profile", "slow", "auth", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert '"api_key_source": "file ' in status.stdout
    assert "ep_hanging_keyring_key" not in status.stdout + status.stderr
    assert time.monotonic() - started < 30, "the 30 s hang never blocked us"


def test_binary_data_to_a_closed_pipe_is_pipe_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``download --zip-file - | head -c 1``: the reader leaving ends the CLI quietly
    (PipeClosed, exit 0 at the boundary) as for text, not as an internal error."""
    import io
    import os

    from envpools_cli.output.streams import PipeClosed, write_bytes_out

    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = io.TextIOWrapper(io.FileIO(write_end, "w"))
    monkeypatch.setattr("sys.stdout", stdout)
    with pytest.raises(PipeClosed):
        write_bytes_out(iter([b"PK\x03\x04", b"x" * 65536]))
    stdout.close()
