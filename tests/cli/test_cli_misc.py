"""Credentials, capabilities, queue, auth, config, errors and exit codes of the CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from envpools_cli import keystore
from envpools_cli.config import config_file

from .conftest import CLI, EXAMPLE, Local


class TestCredentials:
    def test_values_come_from_stdin_and_never_show(self, cli: CLI, backend: Local) -> None:
        stored = cli(
            "credentials",
            "store",
            "ANTHROPIC_API_KEY",
            "--type",
            "ANTHROPIC_API_KEY",
            "--metadata",
            "team=ml",
            "--json",
            stdin="sk-ant-xyz-secret\n",
        )
        assert stored.code == 0, stored.err
        body = stored.json()
        assert body["credential_name"] == "ANTHROPIC_API_KEY"
        assert "sk-ant-xyz-secret" not in stored.out + stored.err
        listed = cli("credentials", "list")
        assert "ANTHROPIC_API_KEY" in listed.out and "sk-ant" not in listed.out
        cred_id = body["credential_id"]
        rotated = cli("credentials", "rotate", cred_id, "-q", stdin="sk-ant-new")
        assert rotated.code == 0 and rotated.out.strip() == cred_id
        assert "sk-ant-new" not in rotated.out + rotated.err
        assert cli("credentials", "delete", cred_id).code == 2
        assert cli("credentials", "delete", cred_id, "--yes").code == 0
        assert cli("credentials", "list", "--json").json() == []

    def test_credentials_by_name(self, cli: CLI, backend: Local) -> None:
        """The name `credentials list` shows works wherever an id does."""
        made = cli("credentials", "store", "OPENAI_API_KEY", "--type", "OPENAI_API_KEY", "-q",
                   stdin="sk-one-0123456789")  # fmt: skip
        cred_id = made.out.strip()
        rotated = cli("credentials", "rotate", "OPENAI_API_KEY", "-q", stdin="sk-two-0123456789")
        assert rotated.code == 0, rotated.err
        assert rotated.out.strip() == cred_id
        missing = cli("credentials", "rotate", "OPENAI_KEY", stdin="v")
        assert missing.code == 6 and "credentials: OPENAI_API_KEY" in missing.err
        assert cli("credentials", "store", "OTHER", "--type", "T", stdin="a-value-0123").code == 0
        deleted = cli("credentials", "delete", "OPENAI_API_KEY", "--yes")
        assert deleted.code == 0 and cred_id in deleted.err
        names = {c["credential_name"] for c in cli("credentials", "list", "--json").json()}
        assert names == {"OTHER"}

    def test_empty_value_and_no_value_flag(self, cli: CLI, backend: Local, tmp_path: Path) -> None:
        assert cli("credentials", "store", "X", "--type", "T", stdin="").code == 2
        argv_value = cli("credentials", "store", "X", "--type", "T", "--value", "s3cret")
        assert argv_value.code == 2, "there is no way to pass a secret on argv"
        secret = tmp_path / "token"
        secret.write_text("from-a-file\n")
        assert (
            cli("credentials", "store", "X", "--type", "T", "--value-file", str(secret), "-q").code
            == 0
        )


class TestCapabilitiesAndQueue:
    def test_capabilities(self, cli: CLI, backend: Local) -> None:
        table = cli("capabilities", "get")
        assert table.code == 0 and "Agents:" in table.lines()
        assert ["oracle:", "available"] in [line.split()[:2] for line in table.lines()]
        caps = cli("capabilities", "get", "--json").json()
        assert {a["name"] for a in caps["agents"]} >= {"oracle", "nop", "codex"}
        assert caps["cli"]["exit_codes"]["5"].startswith("rollout ended without success")
        openapi = cli("capabilities", "openapi")
        assert openapi.code == 0 and "/v1/rollouts" in openapi.json()["paths"]
        schema = cli("capabilities", "schema", "-o", "yaml")
        assert "RolloutRequestV1" in schema.out

    def test_queue_status(self, cli: CLI, backend: Local) -> None:
        cli("pools", "create", "paused", "--local", str(EXAMPLE), "--concurrency", "0")
        cli(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "paused",
            "-q",
        )
        table = cli("queue", "status")
        assert table.lines() == [
            "POOL\tQUEUED\tRUNNING\tNEXT WAITS FOR",
            "paused\t1\t0\tpool 'paused' runs 0 of its concurrency 0; raise it with "
            "envpools pools update paused --concurrency N",
        ]
        assert "1 queued" in table.err
        assert "default-sized rollouts at once" in table.err
        assert cli("queue", "status", "--json").json()["total_queued"] == 1


class TestAuthAndConfig:
    def test_login_status_logout(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ENVPOOLS_API_KEY")
        monkeypatch.delenv("ENVPOOLS_API_URL")
        missing = cli("pools", "list")
        assert missing.code == 4
        assert "envpools auth login" in missing.err
        login = cli(
            "--profile", "dev", "auth", "login", "--api-url", backend.url, stdin=backend.key + "\n"
        )
        assert login.code == 0, login.err
        assert backend.key not in login.out + login.err
        assert keystore.stored_key("dev").value == backend.key
        status = cli("--profile", "dev", "auth", "status", "--json")
        assert status.code == 0, status.err
        info = status.json()
        assert info["plan"] == "pro" and info["authenticated"] is True
        assert info["api_key"] == keystore.mask(backend.key) and backend.key not in status.out
        assert info["api_url_source"] == "profile dev"
        assert cli("--profile", "dev", "pools", "list", "-q").code == 0
        assert cli("config", "profiles", "--json").json()[0]["current"] is True
        assert cli("--profile", "dev", "auth", "logout").code == 0
        assert cli("--profile", "dev", "pools", "list").code == 4

    def test_rejected_key_is_not_stored(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ENVPOOLS_API_KEY")
        result = cli("auth", "login", "--api-url", backend.url, stdin="ep_local_wrong")
        assert result.code == 4
        with pytest.raises(keystore.KeyNotFound):
            keystore.stored_key("default")

    def test_precedence_flag_env_profile(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert cli("config", "set", "api_url", "http://profile.invalid:1").code == 0
        assert cli("config", "get", "api_url").out.strip() == backend.url, "env beats profile"
        monkeypatch.delenv("ENVPOOLS_API_URL")
        assert cli("config", "get", "api_url").out.strip() == "http://profile.invalid:1"
        monkeypatch.setenv("SYNTH_BACKEND_URL", "http://synth.invalid:2")
        assert cli("config", "get", "api_url").out.strip() == "http://synth.invalid:2"
        flagged = cli("--api-url", "http://flag.invalid:3", "config", "get", "api_url")
        assert flagged.out.strip() == "http://flag.invalid:3"
        assert cli("config", "set", "output", "json").code == 0
        monkeypatch.setenv("ENVPOOLS_API_URL", backend.url)
        assert cli("pools", "list").out.strip() == "[]", "the profile's default output"
        assert cli("config", "set", "output", "xml").code == 2
        assert cli("config", "set", "bogus", "1").code == 2
        assert cli("config", "use", "nope").code == 2
        paths = cli("config", "path", "--json").json()
        assert paths["config_file"] == str(config_file())

    def test_broken_config_file_is_reported(self, cli: CLI, backend: Local) -> None:
        config_file().parent.mkdir(parents=True, exist_ok=True)
        config_file().write_text("this is = = not toml")
        result = cli("pools", "list")
        assert result.code == 1
        assert "not valid TOML" in result.err and "Traceback" not in result.err


class TestErrors:
    def test_not_found_exit_6_and_json_error_on_stderr(self, cli: CLI, backend: Local) -> None:
        human = cli("rollouts", "get", "ro_missing")
        assert human.code == 6 and human.out == ""
        assert human.err.startswith("error: rollout 'ro_missing' not found (request_id: req_")
        machine = cli("rollouts", "get", "ro_missing", "-o", "json")
        assert machine.code == 6 and machine.out == ""
        error = json.loads(machine.err)["error"]
        assert error["code"] == "not_found" and error["http_status"] == 404
        assert error["request_id"].startswith("req_") and error["exit_code"] == 6

    def test_rejected_key_exit_4(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ENVPOOLS_API_KEY", "ep_local_revoked")
        result = cli("pools", "list")
        assert result.code == 4 and "not valid" in result.err

    def test_plan_gating_exit_4(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _, free_key = backend.thread.create_key("free", name="free-org")
        monkeypatch.setenv("ENVPOOLS_API_KEY", free_key)
        result = cli("pools", "list", "--json")
        assert result.code == 4
        error = json.loads(result.err)["error"]
        assert error["code"] == "plan_required"
        assert "Your current plan is 'free'" in error["message"]
        assert "upgrade at https://" in error["hint"]

    def test_unreachable_backend_exit_7(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setenv("ENVPOOLS_API_URL", f"http://127.0.0.1:{port}")
        result = cli("pools", "list")
        assert result.code == 7
        assert "envpools local up" in result.err and "Traceback" not in result.err

    def test_bad_api_url_is_a_usage_error(self, cli: CLI, backend: Local) -> None:
        result = cli("--api-url", "localhost:8000", "pools", "list")
        assert result.code == 2 and "not an absolute" in result.err

    def test_a_bug_is_one_line_without_traceback(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from envpools_cli import client

        def broken(**kwargs: object) -> None:
            raise RuntimeError(f"boom with key {kwargs.get('api_key')}")

        monkeypatch.setattr(client, "list_pools", broken)
        result = cli("pools", "list")
        assert result.code == 1
        assert "internal error: RuntimeError" in result.err
        assert "Traceback" not in result.err
        assert "--debug" in result.err
        assert backend.key not in result.err and "[REDACTED]" in result.err
        debug = cli("--debug", "pools", "list")
        assert "Traceback" in debug.err and "RuntimeError: boom" in debug.err
        assert backend.key not in debug.err

    def test_usage_errors_exit_2(self, cli: CLI, backend: Local) -> None:
        assert cli("pools", "frobnicate").code == 2
        assert cli("rollouts", "get").code == 2
        assert cli("--color", "sometimes", "pools", "list").code == 2
        json_usage = cli("rollouts", "get", "--json")
        assert json_usage.code == 2
        assert json.loads(json_usage.err)["error"]["code"] == "usage_error"

    def test_debug_logs_http_without_the_key(self, cli: CLI, backend: Local) -> None:
        result = cli("--debug", "pools", "list")
        assert result.code == 0
        assert "GET" in result.err and "/v1/pools" in result.err
        assert backend.key not in result.err

    @pytest.mark.parametrize(
        ("value", "logs"), [("yes", True), ("1", True), ("false", False), ("off", False)]
    )
    def test_envpools_debug_reads_as_the_debug_flag(
        self, cli: CLI, backend: Local, monkeypatch: pytest.MonkeyPatch, value: str, logs: bool
    ) -> None:
        """ENVPOOLS_DEBUG=false means off, as --debug's own parsing says (not "set: on")."""
        monkeypatch.setenv("ENVPOOLS_DEBUG", value)
        result = cli("pools", "list")
        assert result.code == 0, result.err
        assert ("/v1/pools" in result.err) is logs, result.err


def test_completion_scripts_are_current() -> None:
    from envpools_cli.completion.scripts import SHELLS, script

    root = Path(__file__).resolve().parents[2] / "completions"
    names = {"bash": "envpools.bash", "zsh": "_envpools", "fish": "envpools.fish"}
    for shell in SHELLS:
        checked_in = (root / names[shell]).read_text()
        assert checked_in == script(shell), (
            f"completions/{names[shell]} is stale: run scripts/update-completions"
        )


def test_completion_command(cli: CLI) -> None:
    result = cli("completion", "fish")
    assert result.code == 0 and "envpools" in result.out
    assert cli("completion", "tcsh").code == 2
