"""The OpenAPI document describes the API: schemathesis, every check enabled, finds nothing.

schemathesis (run as its command line, against the real backend on a socket) reads
``/v1/openapi.json``, then sends schema-valid and schema-violating requests to every
operation, follows the links between them (create a pool, then read, change and delete
it), and checks every answer: no 5xx, status codes and content types documented, bodies
and SSE events matching their schemas, valid data accepted, invalid data refused, ``Allow``
right on 405, requests without a key refused. The seed is fixed so that CI is repeatable.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from envpools_cli import client as ep
from tests.integration.conftest import Backend

SEED = "13"
MAX_EXAMPLES = "10"


def _openapi(backend: Backend) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{backend.url}/v1/openapi.json").json()
    return document


@pytest.mark.timeout(330)  # its own subprocess timeout is 300 s; ~60 s on a quiet machine
def test_schemathesis_finds_nothing_with_every_check(backend: Backend, tmp_path: Path) -> None:
    # Agents' credentials are stored: a dry run of codex or claude-code is then accepted.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        ep.store_credential(
            credential_name=name, credential_type=name, credential_value="sk-test", **backend.conn
        )
    # Valid data may still be refused for the state it meets: 402 when a pool's spend limit
    # is reached (the stateful phase creates pools with a limit of 0), besides schemathesis'
    # own 401/403/404/409/429.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "3xx", "401", "402", "403", "404", "409", "429", "5xx"]\n'
    )
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{backend.url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {backend.key}",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--no-color",
    ]
    # In tmp_path: schemathesis keeps a folder of its own in the working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    totals = re.search(r"(\d+) generated, (\d+) passed", report)
    assert totals is not None, report[-3000:]
    generated, passed = map(int, totals.groups())
    assert generated == passed >= 1000, report[-3000:]
    assert re.search(r"Operations:\s+(\d+) selected / \1 total", report), report[:2000]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", report), f"{phase} did not pass:\n{report[-3000:]}"


def test_every_operation_documents_its_body_answers_and_errors(backend: Backend) -> None:
    document = _openapi(backend)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas, "FastAPI's 422 body is not what we answer"
    operations = [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) == 32
    for method, path, operation in operations:
        where = f"{method} {path}"
        responses = operation["responses"]
        ok = [code for code in responses if code.startswith("2")]
        assert len(ok) >= 1, where
        for code in ok:
            for media in responses[code].get("content", {}).values():
                assert media["schema"] not in ({}, {"type": "object"}), f"{where}: {code} is Any"
            assert ("content" in responses[code]) == (code != "204"), where
        for code, answer in responses.items():
            if code.startswith(("4", "5")):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, where
        if operation.get("security"):
            assert "401" in responses, where
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in responses, where
        if "{" in path:
            assert "404" in responses, where
        if method in ("POST", "PUT") and path not in (
            "/v1/rollouts/{rollout_id}/cancel",
            "/v1/rollouts:validate",
        ):
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            assert "$ref" in body or "anyOf" in body, f"{where}: its body is not a model"
    create = document["paths"]["/v1/rollouts"]["post"]["responses"]
    assert set(create) >= {"200", "201", "402", "404", "409", "429"}


def test_a_405_names_exactly_the_methods_of_its_resource(backend: Backend) -> None:
    document = _openapi(backend)
    headers = {"Authorization": f"Bearer {backend.key}"}
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = httpx.request("PATCH", f"{backend.url}{concrete}", headers=headers)
        assert answer.status_code == 405, (path, answer.status_code)
        allowed = {m.strip() for m in answer.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in item}, path
        assert answer.json()["error"]["code"] == "method_not_allowed"
    # A literal path wins over a parameter: /rollouts/batch is not a rollout id.
    answer = httpx.options(f"{backend.url}/v1/rollouts/batch", headers=headers)
    assert answer.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("created_after=", "invalid timestamp"),
        ("created_after=yesterday", "invalid timestamp"),
        ("cursor=abc", "cursor"),
        ("status=runing", "status"),
        ("limit=0", "limit"),
    ],
)
def test_list_filters_are_checked(backend: Backend, query: str, problem: str) -> None:
    answer = httpx.get(
        f"{backend.url}/v1/rollouts?{query}", headers={"Authorization": f"Bearer {backend.key}"}
    )
    assert answer.status_code == 422
    assert problem in answer.json()["error"]["message"]


def test_timestamps_at_the_edges_of_rfc_3339_are_read(backend: Backend) -> None:
    headers = {"Authorization": f"Bearer {backend.key}"}
    for stamp in (
        "2024-01-01t00:00:00z",  # lower case is RFC 3339 too
        "2016-12-31T23:59:60Z",  # a leap second
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    ):
        answer = httpx.get(
            f"{backend.url}/v1/rollouts", params={"created_after": stamp}, headers=headers
        )
        assert answer.status_code == 200, (stamp, answer.text)


def test_json_types_are_not_coerced(backend: Backend) -> None:
    """``"5"`` is not 5 and ``0`` is not false: what the schema refuses, the server refuses."""
    headers = {"Authorization": f"Bearer {backend.key}"}
    request = {
        "task_ref": {"dataset": "d", "task_id": "t"},
        "agent": {"harness": "nop"},
        "environment": {"backend": "harbor"},
        "task_app_id": "",
        "timeouts": {"agent_sec": 60.0},  # a whole number written as a float is an integer
    }
    ok = httpx.post(f"{backend.url}/v1/rollouts", json=request, headers=headers)
    assert ok.status_code == 201, ok.text
    for change in ({"dry_run": 0}, {"priority": "5"}, {"timeouts": {"agent_sec": "60"}}):
        refused = httpx.post(
            f"{backend.url}/v1/rollouts", json={**request, **change}, headers=headers
        )
        assert refused.status_code == 422, (change, refused.text)
    not_json = httpx.post(
        f"{backend.url}/v1/rollouts",
        content=b"\xff\xfe{",
        headers={**headers, "content-type": "application/json"},
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["message"] == "the body is not valid JSON"
