"""Text no UTF-8 encoder takes (a lone surrogate, valid JSON as ``"\\ud800"``) is refused at
the door, in every field of every request model, and nothing stored can make a read fail.

Before: a create with ``"metadata": {"note": "\\ud800"}`` answered 500 yet created and
queued the rollout; from then on the rollout list, its get and its support bundle answered
500 (the answer is encoded as strict UTF-8), and the CLI said "transient: try again later".
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from envpools_cli.models import CredentialCreate, CredentialRotate, ReplayRequest
from envpools_cli.server.services.schemas import (
    LocalPoolCreate,
    LocalPoolTask,
    LocalPoolTaskUpdate,
    LocalPoolUpdate,
    LocalRolloutRequest,
)
from envpools_cli.server.state.store import Store
from tests.cli.conftest import envpools_subprocess
from tests.integration.conftest import Backend

LONE = "\ud800"
ROLLOUT = {
    "task_ref": {"dataset": "examples", "task_id": "fix-failing-test"},
    "agent": {"harness": "oracle"},
    "environment": {"backend": "harbor"},
    "task_app_id": "",
    "timeouts": {},
    "metadata": {},
}


def _client(backend: Backend) -> httpx.Client:
    headers = {"Authorization": f"Bearer {backend.key}", "Content-Type": "application/json"}
    return httpx.Client(base_url=backend.url, headers=headers, timeout=30)


def _send(
    client: httpx.Client, method: str, path: str, body: Any, **headers: str
) -> httpx.Response:
    # json.dumps escapes the surrogate as \ud800: valid JSON that decodes back to it.
    return client.request(method, path, content=json.dumps(body).encode(), headers=headers)


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}: "), error["message"]
    assert "surrogate" in error["message"]


def _nothing_poisoned(client: httpx.Client) -> None:
    for path in ("/v1/rollouts", "/v1/pools", "/api/v1/credentials"):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
    assert client.get("/v1/rollouts").json()["rollouts"] == []


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("metadata.note", {"metadata": {"note": LONE}}),
        ("pool_id", {"pool_id": LONE, "environment": None}),
        ("task_ref.task_id", {"task_ref": {"dataset": "examples", "task_id": f"t{LONE}"}}),
        ("pool_tags.0", {"pool_tags": [LONE], "environment": None}),
        ("agent.harness", {"agent": {"harness": LONE}}),
        ("agent.model_id", {"agent": {"harness": "oracle", "model_id": f"m-{LONE}"}}),
    ],
)
def test_a_lone_surrogate_in_a_create_is_refused_and_poisons_nothing(
    backend: Backend, field: str, change: dict[str, Any]
) -> None:
    body = {key: value for key, value in {**ROLLOUT, **change}.items() if value is not None}
    with _client(backend) as client:
        for _ in range(2):  # the retry with the same key answers the same, creates nothing
            _refused(
                _send(client, "POST", "/v1/rollouts", body, **{"Idempotency-Key": "k1"}), field
            )
        _nothing_poisoned(client)


def test_a_lone_surrogate_in_pools_tasks_tags_and_keys_is_refused(backend: Backend) -> None:
    with _client(backend) as client:
        pool = {"pool_id": "p", "pool_type": "sandbox"}
        _refused(_send(client, "POST", "/v1/pools", {**pool, "tags": ["ok", LONE]}), "tags.1")
        _refused(_send(client, "POST", "/v1/pools", {**pool, "pool_id": LONE}), "pool_id")
        assert client.post("/v1/pools", json=pool).status_code == 201
        task = {"task_id": LONE, "backend": "harbor"}
        _refused(_send(client, "POST", "/v1/pools/p/tasks", task), "task_id")
        _refused(_send(client, "PUT", "/v1/pools/p", {"tags": [LONE]}), "tags.0")
        # a key (an unknown field, or one of metadata's) is a field name the answer echoes
        _refused(_send(client, "POST", "/v1/rollouts", {**ROLLOUT, f"x{LONE}": 1}), "x\\ud800")
        _nothing_poisoned(client)
        assert not client.get("/v1/pools/p").json().get("tags")
        assert client.get("/v1/pools/p/tasks").json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/pools/%ED%A0%80"),
        ("PUT", "/v1/pools/%ED%A0%80"),
        ("GET", "/v1/pools/%ED%A0%80/tasks"),
        ("DELETE", "/v1/pools/%ED%A0%80/tasks/%ED%A0%80"),
        ("GET", "/v1/rollouts/%ED%A0%80"),
        ("POST", "/v1/rollouts/%ED%A0%80/cancel"),
        ("GET", "/v1/rollouts/%ED%A0%80/events"),
        ("GET", "/v1/rollouts?pool_id=%ED%A0%80&task_id=%ED%A0%80"),
        ("GET", "/v1/pools/%5Cud800"),
        ("DELETE", "/api/v1/credentials/%ED%A0%80"),
    ],
)
def test_a_surrogate_in_a_path_or_query_is_never_a_server_error(
    backend: Backend, method: str, path: str
) -> None:
    with _client(backend) as client:
        answer = client.request(method, path, json={} if method in ("PUT", "POST") else None)
        assert answer.status_code in (200, 404, 422), answer.text
        assert answer.status_code == 200 or answer.json()["error"]["code"] in (
            "not_found",
            "validation_error",
        )


def test_a_value_stored_before_the_door_still_reads(backend: Backend) -> None:
    """A rollout stored with a lone surrogate (by an older version) lists, gets and bundles."""
    with _client(backend) as client:
        created = client.post("/v1/rollouts", json={**ROLLOUT, "metadata": {"note": "x"}})
        assert created.status_code == 201, created.text
        rollout_id = created.json()["rollout_id"]
        store = Store(backend.data_dir / "envpools.db")
        try:
            store.update_rollout(rollout_id, metadata={"note": LONE})
        finally:
            store.close()
        for path in (
            "/v1/rollouts",
            f"/v1/rollouts/{rollout_id}",
            f"/v1/rollouts/{rollout_id}/support_bundle",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert "\\ud800" in answer.text  # escaped, so the body is UTF-8
        assert client.get(f"/v1/rollouts/{rollout_id}/summary").status_code == 200
        assert client.get(f"/v1/rollouts/{rollout_id}").json()["metadata"] == {"note": LONE}
    env = {"ENVPOOLS_API_URL": backend.url, "ENVPOOLS_API_KEY": backend.key}
    for args in (["get", rollout_id, "-o", "json"], ["list", "-o", "json"], ["list"]):
        result = envpools_subprocess("rollouts", *args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
    shown = json.loads(
        envpools_subprocess("rollouts", "get", rollout_id, "-o", "json", env=env).stdout
    )
    assert shown["metadata"] == {"note": LONE}


# --- the property: every string field of every request model ---------------------------------

Path = tuple[str, ...]


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and each of its ``$ref``/``anyOf``/``allOf``/``oneOf`` parts."""
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    found = [schema]
    for key in ("anyOf", "allOf", "oneOf"):
        for branch in schema.get(key, []):
            found += _resolve(branch, defs)
    return found


def string_fields(model: type[BaseModel]) -> list[Path]:
    """Every place a string goes in the model: fields, list items, free-form keys and values."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    found: set[Path] = set()

    def walk(node: dict[str, Any], path: Path, depth: int) -> None:
        for option in _resolve(node, defs):
            kind = option.get("type")
            kinds = set(kind) if isinstance(kind, list) else {kind}
            if "string" in kinds or "enum" in option or "const" in option:
                found.add(path)
            if depth > 4:
                continue
            if "object" in kinds or "properties" in option:
                for name, child in option.get("properties", {}).items():
                    walk(child, (*path, name), depth + 1)
                extra = option.get("additionalProperties")
                if extra is not False and not option.get("properties"):
                    found.add((*path, "some_key"))
                    found.add((*path, "\0key"))  # the key itself
            if "array" in kinds:
                walk(option.get("items", {}), (*path, "0"), depth + 1)

    walk(schema, (), 0)
    found.add(("unknown_field",))  # request models keep unknown fields
    return sorted(p for p in found if p)


def _put(body: Any, path: Path, text: str) -> tuple[Any, Path]:
    """``body`` with ``text`` at ``path`` (containers made as needed), and the path the
    server names; ``\0key`` puts ``text`` as a key of the object before it."""
    body = copy.deepcopy(body)
    as_key = path[-1] == "\0key"
    parts = path[:-1] if as_key else path
    node: Any = body
    for depth, part in enumerate(parts):
        final = depth == len(parts) - 1
        child: Any = text
        if not final or as_key:
            existing = (node[0] if node else None) if isinstance(node, list) else node.get(part)
            kind = list if not final and parts[depth + 1] == "0" else dict
            child = existing if isinstance(existing, kind) else kind()
        if isinstance(node, list):
            node[:1] = [child]
        else:
            node[part] = child
        node = child
    if as_key:
        node[text] = "value"
        return body, (*parts, text)
    return body, path


REQUESTS: list[tuple[str, str, type[BaseModel], dict[str, Any]]] = [
    ("POST", "/v1/rollouts", LocalRolloutRequest, ROLLOUT),
    ("POST", "/v1/rollouts:validate", LocalRolloutRequest, ROLLOUT),
    ("POST", "/v1/rollouts/ro_none/replay", ReplayRequest, {}),
    ("POST", "/v1/pools", LocalPoolCreate, {"pool_id": "p", "pool_type": "sandbox"}),
    ("PUT", "/v1/pools/p", LocalPoolUpdate, {}),
    ("POST", "/v1/pools/p/tasks", LocalPoolTask, {"task_id": "t", "backend": "harbor"}),
    ("PUT", "/v1/pools/p/tasks/t", LocalPoolTaskUpdate, {"backend": "harbor"}),
    (
        "POST",
        "/api/v1/credentials",
        CredentialCreate,
        {"credential_name": "n", "credential_type": "t", "credential_value": "v"},
    ),
    ("PUT", "/api/v1/credentials/cred_none", CredentialRotate, {"credential_value": "v"}),
]
CASES = [
    (method, url, base, path)
    for method, url, model, base in REQUESTS
    for path in string_fields(model)
]
BATCH = [
    ("POST", "/v1/rollouts/batch", {"requests": [ROLLOUT]}, ("requests", "0", *path))
    for path in string_fields(LocalRolloutRequest)
]


def test_the_property_covers_every_model_and_nested_fields() -> None:
    paths = {(url, path) for _, url, _, path in [*CASES, *BATCH]}
    assert ("/v1/rollouts", ("task_ref", "task_id")) in paths
    assert ("/v1/rollouts", ("agent", "model_id")) in paths
    assert ("/v1/rollouts", ("metadata", "some_key")) in paths
    assert ("/v1/pools", ("tasks", "0", "task_id")) in paths
    assert ("/v1/pools", ("tags", "0")) in paths
    assert ("/v1/pools/p/tasks", ("env_vars", "some_key")) in paths
    assert ("/v1/rollouts/batch", ("requests", "0", "pool_id")) in paths
    assert len(paths) > 100


@st.composite
def unencodable(draw: st.DrawFn) -> str:
    """Any text (no surrogate of its own) with one lone surrogate somewhere in it."""
    before, after = draw(st.text(max_size=8)), draw(st.text(max_size=8))
    return before + chr(draw(st.integers(0xD800, 0xDFFF))) + after


@pytest.fixture
def client(backend: Backend) -> Iterator[httpx.Client]:
    with _client(backend) as opened:
        yield opened
    with _client(backend) as after:
        _nothing_poisoned(after)  # pools, credentials and rollouts all still list


@pytest.mark.timeout(300)
@settings(
    max_examples=600,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is shown as found: shrinking HTTP is slow
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=st.sampled_from([*CASES, *BATCH]), text=unencodable())
def test_every_string_field_refuses_a_lone_surrogate(
    client: httpx.Client, case: tuple[str, str, dict[str, Any], Path], text: str
) -> None:
    method, url, base, path = case
    body, named = _put(base, path, text)
    answer = _send(client, method, url, body)
    assert answer.status_code == 422, (method, url, path, answer.text)
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    shown = [part.encode("utf-8", "backslashreplace").decode() for part in named]
    assert error["details"][0]["loc"] == ["body", *shown], (path, error)
    assert error["message"].startswith(".".join(shown) + ": "), error["message"]
    listed = client.get("/v1/rollouts")
    assert listed.status_code == 200 and listed.json()["rollouts"] == [], listed.text
