"""Finding 9 (LOW): a malformed key was printed on stderr (also in ``-o json``), secret-looking
agent fields were echoed by create/get/list, and credentials an agent wrote into files
reached ``workspace.diff``/``workspace.tar.gz``."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep

from .conftest import Backend, hostile_run, make_task, needs_bwrap

KEY_PIECES = ("ep_local_Zq9xK2", "Vb7LmN4pQ8rT")


@pytest.mark.parametrize(
    "key",
    [
        f"{KEY_PIECES[0]}\n{KEY_PIECES[1]}",
        f"{KEY_PIECES[0]}\r\n{KEY_PIECES[1]}",
        f"{KEY_PIECES[0]}{KEY_PIECES[1]}\n",
        f" {KEY_PIECES[0]}\t{KEY_PIECES[1]} ",
        f"{KEY_PIECES[0]}é{KEY_PIECES[1]}",
    ],
)
@pytest.mark.parametrize("output", [[], ["-o", "json"]])
def test_a_malformed_key_is_never_printed(
    backend: Backend,
    key: str,
    output: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from envpools_cli.app import run

    monkeypatch.setenv("ENVPOOLS_API_KEY", key)
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    for argv in (
        ["--api-url", backend.url, "rollouts", "list", *output],
        ["--api-url", backend.url, "--debug", "pools", "list", *output],
    ):
        code = run(argv)
        captured = capsys.readouterr()
        printed = captured.out + captured.err
        assert code != 0
        for piece in KEY_PIECES:
            assert piece not in printed, f"{argv}: {printed!r}"
        assert "Traceback" not in printed or "--debug" in argv


SECRETS = {"api_key": "sk-agent-field-8c2f1a", "token": "tok-agent-field-77ab3"}


def test_secret_looking_agent_fields_are_never_echoed(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "echo")
    backend.pool("p", ep.PoolTask.from_local("echo", str(task)))
    body = {
        "task_ref": {"dataset": "tests", "task_id": "echo"},
        "agent": {"harness": "nop", **SECRETS, "extra": {"password": "pw-agent-field-1d9e"}},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
    }
    headers = {"Authorization": f"Bearer {backend.key}"}
    with httpx.Client(base_url=backend.url, headers=headers) as http:
        created = http.post("/v1/rollouts", json=body)
        assert created.status_code == 201, created.text
        rollout_id = created.json()["rollout_id"]
        backend.wait(rollout_id)
        answers = [
            created.text,
            http.get(f"/v1/rollouts/{rollout_id}").text,
            http.get("/v1/rollouts").text,
            http.get(f"/v1/rollouts/{rollout_id}/summary").text,
            http.get(f"/v1/rollouts/{rollout_id}/support_bundle").text,
        ]
    for answer in answers:
        for value in (*SECRETS.values(), "pw-agent-field-1d9e"):
            assert value not in answer, answer[:400]
    assert json.loads(answers[1])["agent"]["harness"] == "nop"


CREDENTIAL = "sk-stored-credential-4be19c77d2"


@needs_bwrap
def test_artifacts_are_scrubbed_of_stored_credentials(backend: Backend, tmp_path: Path) -> None:
    ep.store_credential(
        credential_name="JUDGE_KEY",
        credential_type="OPENAI_API_KEY",
        credential_value=CREDENTIAL,
        **backend.conn,
    )
    task = make_task(
        tmp_path,
        "leaky",
        toml='[solution.env]\nJUDGE = "${credential:JUDGE_KEY}"\n',
        solve="""
        printf '%s' "$JUDGE" | sha256sum | cut -c1-64 | sed 's/^/judge_sha=/'
        echo "key in a file: $JUDGE" > /app/notes.txt
        echo "$JUDGE" > /logs/artifacts/key.txt
        echo "printed: $JUDGE"
        """,
    )
    run = hostile_run(backend, task)
    assert run.doc["status"] == "succeeded", run.doc
    assert run.values()["judge_sha"] == hashlib.sha256(CREDENTIAL.encode()).hexdigest(), (
        "the task received the credential it referred to"
    )
    assert CREDENTIAL not in run.everything()
    fetched = {
        name: ep.fetch_artifact(run.rollout_id, name, **backend.conn)
        for name in ("workspace.diff", "workspace.tar.gz", "artifacts/key.txt", "agent/oracle.txt")
    }
    with tarfile.open(fileobj=io.BytesIO(fetched.pop("workspace.tar.gz")), mode="r:gz") as tar:
        member = tar.extractfile("workspace/notes.txt")
        assert member is not None
        fetched["notes.txt"] = member.read()
    zipped = ep.download_artifacts_zip(run.rollout_id, **backend.conn)
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        for name in archive.namelist():
            fetched[f"zip:{name}"] = archive.read(name)
    for name, data in fetched.items():
        assert CREDENTIAL.encode() not in data, f"{name} holds the credential"
    assert b"[REDACTED]" in fetched["notes.txt"]
    assert b"+key in a file: [REDACTED]" in fetched["workspace.diff"]
    assert b"printed: [REDACTED]" in fetched["zip:trajectory.json"], "the step's output"


ECHOED_SECRETS = {
    "bearer": "Bearer zq8WmC1tR5vY2xK7pL0n",
    "model": "sk-proj-Tq3vX8mN1bR6yW4kZ9pL2c",
    "metadata_key": "meta-api-key-77c1e0a94",
    "creds": "creds-value-5d2b81",
    "deep": "sk-ant-api03-Hh7Jk2Lm9Np4Qr6St1Uv",
}


def _echoing_request() -> dict[str, object]:
    return {
        "task_ref": {"dataset": "tests", "task_id": "echo"},
        "agent": {
            "harness": "nop",
            "model": ECHOED_SECRETS["model"],
            "extra": {"headers": {"X-Forward": ECHOED_SECRETS["bearer"]}},
            "creds": {"user": "someone", "value": ECHOED_SECRETS["creds"]},
        },
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
        "metadata": {
            "api_key": ECHOED_SECRETS["metadata_key"],
            "note": f"called with {ECHOED_SECRETS['bearer']} yesterday",
            "nested": [{"config": {"fallback": ECHOED_SECRETS["deep"]}}],
            "team": "search",
        },
    }


def test_echoed_requests_are_redacted_at_any_depth(backend: Backend, tmp_path: Path) -> None:
    task = make_task(tmp_path, "echo")
    backend.pool("p", ep.PoolTask.from_local("echo", str(task)))
    headers = {"Authorization": f"Bearer {backend.key}"}
    with httpx.Client(base_url=backend.url, headers=headers) as http:
        created = http.post("/v1/rollouts", json=_echoing_request())
        assert created.status_code == 201, created.text
        rollout_id = created.json()["rollout_id"]
        backend.wait(rollout_id)
        answers = {
            "create": created.text,
            "get": http.get(f"/v1/rollouts/{rollout_id}").text,
            "list": http.get("/v1/rollouts").text,
            "summary": http.get(f"/v1/rollouts/{rollout_id}/summary").text,
            "bundle": http.get(f"/v1/rollouts/{rollout_id}/support_bundle").text,
            "replay": http.post(f"/v1/rollouts/{rollout_id}/replay", json={}).text,
        }
    for where, answer in answers.items():
        for name, value in ECHOED_SECRETS.items():
            assert value.split()[-1] not in answer, f"{where} echoes {name}: {answer[:300]}"
    doc = json.loads(answers["get"])
    assert doc["metadata"]["team"] == "search", "what is not a secret stays"
    assert doc["metadata"]["api_key"] == "[REDACTED]"
    assert doc["metadata"]["note"] == "called with [REDACTED] yesterday"
    assert doc["agent"]["model"] == "[REDACTED]" and doc["agent"]["creds"] == "[REDACTED]"
    assert doc["metadata"]["nested"][0]["config"]["fallback"] == "[REDACTED]"


def test_every_output_form_shows_them_redacted(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from envpools_cli.app import run

    task = make_task(tmp_path, "echo")
    backend.pool("p", ep.PoolTask.from_local("echo", str(task)))
    created = ep.create_rollout(request=_echoing_request(), **backend.conn)
    monkeypatch.setenv("ENVPOOLS_API_KEY", backend.key)
    for output in ("json", "yaml", "table", "jsonl"):
        printed = ""
        for argv in (
            ["rollouts", "get", created["rollout_id"], "-o", output],
            ["rollouts", "list", "-o", output],
        ):
            assert run(["--api-url", backend.url, *argv]) == 0
            captured = capsys.readouterr()
            printed += captured.out + captured.err
        assert created["rollout_id"] in printed
        for name, value in ECHOED_SECRETS.items():
            assert value.split()[-1] not in printed, f"-o {output} shows {name}"
