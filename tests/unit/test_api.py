"""Every module function: method, path, query, headers and body on the wire."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.client import (
    AgentSpec,
    EnvironmentPoolsClient,
    InvalidRequestError,
    MissingAPIKeyError,
    PlanGatingError,
    PoolTask,
    PoolTemplate,
    RolloutHandle,
)

from .conftest import Recorder

REQUEST: dict[str, Any] = {
    "task_ref": {"dataset": "harbor", "task_id": "fix-tests"},
    "agent": {"harness": "codex", "model_id": "gpt-5.1-codex-mini"},
    "pool_id": "pool-1",
    "task_app_id": "",
    "timeouts": {"agent_sec": 60},
}

# (function, args, kwargs, method, path, query, body)
CASES: list[
    tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], str, str, dict[str, str], Any]
] = [
    (
        ep.validate_rollout,
        (),
        {"request": REQUEST},
        "POST",
        "/v1/rollouts:validate",
        {},
        {**REQUEST, "agent": {**REQUEST["agent"], "kind": "codex"}},
    ),
    (
        ep.list_rollouts,
        (),
        {
            "cursor": "c1",
            "limit": 5,
            "status": "running",
            "pool_id": "p",
            "dataset": "d",
            "task_id": "t",
            "created_after": "2026-01-01T00:00:00Z",
            "created_before": "2026-02-01T00:00:00Z",
        },
        "GET",
        "/v1/rollouts",
        {
            "cursor": "c1",
            "limit": "5",
            "status": "running",
            "pool_id": "p",
            "dataset": "d",
            "task_id": "t",
            "created_after": "2026-01-01T00:00:00Z",
            "created_before": "2026-02-01T00:00:00Z",
        },
        None,
    ),
    (ep.list_rollouts, (), {}, "GET", "/v1/rollouts", {}, None),
    (ep.get_rollout, ("r1",), {}, "GET", "/v1/rollouts/r1", {}, None),
    (ep.get_rollout_summary, ("r1",), {}, "GET", "/v1/rollouts/r1/summary", {}, None),
    (ep.get_rollout_usage, ("r1",), {}, "GET", "/v1/rollouts/r1/usage", {}, None),
    (ep.get_rollout_support_bundle, ("r1",), {}, "GET", "/v1/rollouts/r1/support_bundle", {}, None),
    (
        ep.replay_rollout,
        ("r1",),
        {"overrides": {"priority": 3}, "metadata": {"why": "flaky"}},
        "POST",
        "/v1/rollouts/r1/replay",
        {},
        {"overrides": {"priority": 3}, "metadata": {"why": "flaky"}},
    ),
    (ep.replay_rollout, ("r1",), {}, "POST", "/v1/rollouts/r1/replay", {}, {}),
    (ep.cancel_rollout, ("r1",), {}, "POST", "/v1/rollouts/r1/cancel", {}, None),
    (
        ep.list_rollout_artifacts,
        ("r1",),
        {"prefix": "agent/", "cursor": "c", "limit": 10},
        "GET",
        "/v1/rollouts/r1/artifacts",
        {"prefix": "agent/", "cursor": "c", "limit": "10"},
        None,
    ),
    (
        ep.fetch_artifact,
        ("r1", "/logs/agent.txt"),
        {},
        "GET",
        "/v1/rollouts/r1/artifacts/logs/agent.txt",
        {},
        None,
    ),
    (
        ep.download_artifacts_zip,
        ("r1",),
        {"prefix": "verifier/", "limit": 3},
        "GET",
        "/v1/rollouts/r1/artifacts.zip",
        {"prefix": "verifier/", "limit": "3"},
        None,
    ),
    (
        ep.list_pools,
        (),
        {"pool_type": "sandbox", "tag": "gpu"},
        "GET",
        "/v1/pools",
        {"type": "sandbox", "tag": "gpu"},
        None,
    ),
    (ep.get_pool, ("p1",), {}, "GET", "/v1/pools/p1", {}, None),
    (
        ep.update_pool,
        ("p1",),
        {"request": {"concurrency": 4}},
        "PUT",
        "/v1/pools/p1",
        {},
        {"concurrency": 4},
    ),
    (ep.delete_pool, ("p1",), {}, "DELETE", "/v1/pools/p1", {}, None),
    (ep.get_pool_metrics, ("p1",), {}, "GET", "/v1/pools/p1/metrics", {}, None),
    (ep.list_pool_tasks, ("p1",), {}, "GET", "/v1/pools/p1/tasks", {}, None),
    (
        ep.create_pool_task,
        ("p1",),
        {"request": PoolTask.from_docker("t1", "img")},
        "POST",
        "/v1/pools/p1/tasks",
        {},
        {"task_id": "t1", "backend": "harbor", "docker_image": "img"},
    ),
    (
        ep.update_pool_task,
        ("p1", "t1"),
        {"request": {"task_id": "t1", "backend": "harbor"}},
        "PUT",
        "/v1/pools/p1/tasks/t1",
        {},
        {"task_id": "t1", "backend": "harbor"},
    ),
    (ep.delete_pool_task, ("p1", "t1"), {}, "DELETE", "/v1/pools/p1/tasks/t1", {}, None),
    (ep.get_queue_status, (), {}, "GET", "/v1/queue/status", {}, None),
    (ep.get_capabilities, (), {}, "GET", "/v1/capabilities", {}, None),
    (ep.get_openapi_schema, (), {}, "GET", "/v1/openapi.json", {}, None),
    (ep.get_schema_json, (), {}, "GET", "/v1/schema.json", {}, None),
    (
        ep.store_credential,
        (),
        {
            "credential_name": "reg",
            "credential_type": "DOCKER_REGISTRY",
            "credential_value": {"username": "u", "token": "t"},
            "metadata": {"team": "x"},
        },
        "POST",
        "/api/v1/credentials",
        {},
        {
            "credential_name": "reg",
            "credential_type": "DOCKER_REGISTRY",
            "credential_value": '{"username": "u", "token": "t"}',
            "metadata": {"team": "x"},
        },
    ),
    (ep.list_credentials, (), {}, "GET", "/api/v1/credentials", {}, None),
    (
        ep.rotate_credential,
        ("c1",),
        {"new_value": "s3cret"},
        "PUT",
        "/api/v1/credentials/c1",
        {},
        {"credential_value": "s3cret"},
    ),
    (ep.delete_credential, ("c1",), {}, "DELETE", "/api/v1/credentials/c1", {}, None),
    (ep.get_account, (), {}, "GET", "/api/v1/me", {}, None),
]


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "method", "path", "query", "body"),
    CASES,
    ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(CASES)],
)
def test_wire_shape(
    recorder: Recorder,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
) -> None:
    func(*args, **kwargs)
    request = recorder.last
    assert request.method == method
    assert request.url.host == "backend.test"
    assert request.url.path == path
    assert dict(request.url.params) == query
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert request.headers["user-agent"].startswith("envpools/")
    assert recorder.body() == body
    if body is not None:
        assert request.headers["content-type"] == "application/json"


def test_create_rollout_wire(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(200, json={"rollout_id": "r9", "status": "queued"})
    request = copy.deepcopy(REQUEST)
    result = ep.create_rollout(request=request, dry_run=True, idempotency_key="idem-1")
    assert result == {"rollout_id": "r9", "status": "queued"}
    sent = recorder.last
    assert (sent.method, sent.url.path) == ("POST", "/v1/rollouts")
    assert sent.headers["idempotency-key"] == "idem-1"
    assert recorder.body() == {
        **REQUEST,
        "agent": {**REQUEST["agent"], "kind": "codex"},
        "dry_run": True,
    }
    assert request == REQUEST, "the caller's dict is never mutated"


def test_create_rollout_generates_an_idempotency_key(recorder: Recorder) -> None:
    ep.create_rollout(request=REQUEST)
    ep.create_rollout(request=REQUEST)
    keys = [r.headers["idempotency-key"] for r in recorder.requests]
    assert all(k.startswith("envpools-") for k in keys)
    assert keys[0] != keys[1], "each logical create gets its own key"


def test_create_rollout_with_model(recorder: Recorder) -> None:
    req = ep.RolloutRequestV1(
        task_ref=ep.TaskRef(dataset="d", task_id="t"),
        agent=AgentSpec.claude_code(),
        environment=ep.EnvironmentSpec(backend="harbor"),
        task_app_url="http://app",
        timeouts=ep.TimeoutSpec(),
    )
    ep.create_rollout(request=req)
    assert recorder.body() == {
        "task_ref": {"dataset": "d", "task_id": "t"},
        "agent": {"harness": "claude-code", "model_id": "claude-sonnet-4.5", "kind": "claude-code"},
        "environment": {"backend": "harbor"},
        "task_app_url": "http://app",
        "timeouts": {},
    }


def test_batch_wire(recorder: Recorder) -> None:
    ep.create_rollouts_batch(
        requests=[REQUEST, REQUEST], metadata={"run": 1}, idempotency_key="b-1"
    )
    assert recorder.last.url.path == "/v1/rollouts/batch"
    assert recorder.last.headers["idempotency-key"] == "b-1"
    body = recorder.body()
    assert body["metadata"] == {"run": 1}
    assert len(body["requests"]) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pool_id": None}, "Provide pool_id, pool_tags, or environment"),
        ({"task_app_id": None}, "Provide either task_app_url or task_app_id"),
        ({"timeouts": None}, "timeouts is required"),
        (
            {"agent": {"harness": "codex", "model_id": "gpt-4o"}},
            "Model 'gpt-4o' is not allowed for harness 'codex'. Allowed models: "
            "['gpt-5.1-codex-mini', 'gpt-5.2-codex', 'gpt-5.3-codex-spark']",
        ),
    ],
)
def test_dict_requests_are_validated_before_sending(
    recorder: Recorder, change: dict[str, Any], message: str
) -> None:
    request = {k: v for k, v in {**REQUEST, **change}.items() if v is not None}
    with pytest.raises(InvalidRequestError) as info:
        ep.create_rollout(request=request)
    assert message in str(info.value)
    sent = [r for r in recorder.requests if r.method != "GET"]
    assert sent == [], "nothing is sent (the backend's capabilities may be asked)"


def test_a_backend_that_takes_any_model_id_decides(recorder: Recorder) -> None:
    """Beyond the presets' lists, the capabilities say whether a model id is taken."""
    capabilities = {"agents": [{"name": "codex", "available": True, "accepts_any_model": True}]}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/capabilities"):
            return httpx.Response(200, json=capabilities)
        return httpx.Response(201, json={"rollout_id": "ro_1", "status": "queued"})

    recorder.handler = answer
    request = {**REQUEST, "agent": {"harness": "codex", "model_id": "openai/gpt-4o"}}
    ep.create_rollout(request=request)
    assert recorder.last.method == "POST"
    assert recorder.body()["agent"]["model_id"] == "openai/gpt-4o"


def test_presets_of_a_harness_that_takes_any_model_are_no_limit(recorder: Recorder) -> None:
    """gemini-cli (not an SDK preset) lists models but takes any id: the backend decides."""
    gemini = {
        "name": "gemini-cli",
        "available": True,
        "models": ["gemini-2.5-pro"],
        "accepts_any_model": True,
    }
    fixed = {"name": "mine", "available": True, "models": ["m1"], "accepts_any_model": False}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/capabilities"):
            return httpx.Response(200, json={"agents": [gemini, fixed]})
        return httpx.Response(201, json={"rollout_id": "ro_1", "status": "queued"})

    recorder.handler = answer
    request = {**REQUEST, "agent": {"harness": "gemini-cli", "model_id": "gemini-2.0-flash"}}
    ep.create_rollout(request=request)
    assert recorder.body()["agent"]["model_id"] == "gemini-2.0-flash"
    with pytest.raises(InvalidRequestError, match="is not a model id"):
        ep.create_rollout(request={**REQUEST, "agent": {"harness": "gemini-cli", "model_id": "/x"}})
    with pytest.raises(InvalidRequestError, match="Allowed models: \\['m1'\\]"):
        ep.create_rollout(request={**REQUEST, "agent": {"harness": "mine", "model_id": "m2"}})


def test_claude_is_claude_code(recorder: Recorder) -> None:
    recorder.handler = lambda request: httpx.Response(201, json={"rollout_id": "ro_1"})
    ep.create_rollout(request={**REQUEST, "agent": {"harness": "claude"}})
    assert recorder.body()["agent"]["harness"] == "claude-code"


def test_batch_validation_names_the_index(recorder: Recorder) -> None:
    bad = {k: v for k, v in REQUEST.items() if k != "timeouts"}
    with pytest.raises(InvalidRequestError, match=r"requests\[1\]: .*timeouts is required"):
        ep.create_rollouts_batch(requests=[REQUEST, bad])
    assert recorder.requests == []


def test_backend_harness_accepted_when_capabilities_list_it(recorder: Recorder) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/capabilities":
            return httpx.Response(
                200,
                json={
                    "agents": [
                        {"name": "oracle", "available": True},
                        "nop",
                        {"name": "codex", "available": False},
                    ]
                },
            )
        return httpx.Response(200, json={"rollout_id": "r1"})

    recorder.handler = handler
    ep.create_rollout(request={**REQUEST, "agent": {"harness": "oracle"}})
    ep.create_rollout(request={**REQUEST, "agent": {"kind": "nop"}})
    paths = [r.url.path for r in recorder.requests]
    assert paths == ["/v1/capabilities", "/v1/rollouts", "/v1/rollouts"], "capabilities cached"
    assert recorder.body()["agent"] == {"kind": "nop", "harness": "nop"}
    with pytest.raises(InvalidRequestError, match="Unknown harness 'aider'"):
        ep.create_rollout(request={**REQUEST, "agent": {"harness": "aider"}})


def test_ids_are_percent_encoded_and_artifact_paths_keep_slashes(recorder: Recorder) -> None:
    ep.get_rollout("a/b?c")
    assert recorder.last.url.raw_path == b"/v1/rollouts/a%2Fb%3Fc"
    ep.fetch_artifact("r1", "agent/my file#1.txt")
    assert recorder.last.url.raw_path == b"/v1/rollouts/r1/artifacts/agent/my%20file%231.txt"


def test_legacy_api_version(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    ep.get_rollout("r1", api_version="legacy")
    assert recorder.last.url.path == "/api/v1/rollouts/r1"
    monkeypatch.setenv("ENV_POOLS_API_VERSION", "legacy")
    ep.list_pools()
    assert recorder.last.url.path == "/api/v1/pools"
    ep.list_credentials()
    assert recorder.last.url.path == "/api/v1/credentials", "credentials ignore the version"


def test_explicit_backend_and_key_win(recorder: Recorder) -> None:
    ep.get_rollout("r1", backend_base="http://other.test/api/", api_key="sk-explicit")
    assert recorder.last.url.host == "other.test"
    assert recorder.last.url.path == "/v1/rollouts/r1"
    assert recorder.last.headers["authorization"] == "Bearer sk-explicit"


def test_missing_key_raises_before_any_request(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTH_API_KEY")
    with pytest.raises(MissingAPIKeyError):
        ep.list_pools()
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("func", "payload", "expected"),
    [
        (ep.list_pools, {"pools": []}, []),
        (ep.list_pools, [{"pool_id": "p"}], [{"pool_id": "p"}]),
        (ep.get_pool, ["not", "an", "object"], {}),
        (ep.list_credentials, {"x": 1}, []),
    ],
)
def test_shape_coercion_like_the_sdk(
    recorder: Recorder, func: Callable[..., Any], payload: Any, expected: Any
) -> None:
    recorder.handler = lambda r: httpx.Response(200, json=payload)
    result = func("p") if func is ep.get_pool else func()
    assert result == expected


def test_binary_downloads_return_bytes(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(200, content=b"\x00PK\x03\x04")
    assert ep.download_artifacts_zip("r1") == b"\x00PK\x03\x04"
    assert ep.fetch_artifact("r1", "a.bin") == b"\x00PK\x03\x04"
    with ep.open_artifacts_zip("r1") as response:
        assert b"".join(response.iter_bytes()) == b"\x00PK\x03\x04"


def test_delete_accepts_204(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(204)
    assert ep.delete_pool("p1") is None


class TestCreatePool:
    def test_template_fills_type_backend_and_task_config(self, recorder: Recorder) -> None:
        ep.create_pool(
            pool_id="p1",
            template=PoolTemplate.HARBOR_CODING,
            tasks=[PoolTask.from_docker("t1", "img")],
        )
        assert recorder.body() == {
            "pool_id": "p1",
            "template": "HARBOR_CODING",
            "tasks": [
                {
                    "task_id": "t1",
                    "backend": "harbor",
                    "docker_image": "img",
                    "config": {"template": "HARBOR_CODING"},
                }
            ],
            "pool_type": "sandbox",
            "backend": "harbor",
        }

    def test_explicit_type_and_backend_win(self, recorder: Recorder) -> None:
        ep.create_pool(pool_id="p1", template="HARBOR_BROWSER", pool_type="x", backend="y")
        assert recorder.body() == {
            "pool_id": "p1",
            "template": "HARBOR_BROWSER",
            "pool_type": "x",
            "backend": "y",
        }

    def test_request_dict_with_template(self, recorder: Recorder) -> None:
        request = {"pool_id": "p2", "pool_type": "custom", "tasks": [{"task_id": "t"}]}
        ep.create_pool(request=request, template="OPENENV")
        assert recorder.body() == {
            "pool_id": "p2",
            "pool_type": "custom",
            "template": "OPENENV",
            "backend": "openenv",
            "tasks": [{"task_id": "t", "config": {"template": "OPENENV"}, "backend": "openenv"}],
        }
        assert request == {"pool_id": "p2", "pool_type": "custom", "tasks": [{"task_id": "t"}]}

    def test_pool_id_required(self, recorder: Recorder) -> None:
        with pytest.raises(ValueError, match="pool_id is required when request is not provided"):
            ep.create_pool()


class TestClientAndNamespaces:
    def test_plan_check_blocks_free_plans(self, recorder: Recorder) -> None:
        recorder.handler = lambda r: httpx.Response(200, json={"org_id": "o", "plan": "trial"})
        with pytest.raises(PlanGatingError, match="Your current plan is 'trial'"):
            EnvironmentPoolsClient()
        assert recorder.last.url.path == "/api/v1/me"

    @pytest.mark.parametrize(
        "account",
        [
            {"plan": "pro"},
            {"plan": "DEMO"},
            {"tier": "team"},
            {"plan": "free", "feature_flags": ["environment_pools"]},
            {"plan": "free", "feature_flags": {"environment_pools": True}},
            {"plan": "free", "feature_flags": {"environment_pools": {"enabled": True}}},
            {"plan": "free", "feature_flags": [{"feature": "environment_pools", "enabled": True}]},
        ],
    )
    def test_plan_check_allows(self, recorder: Recorder, account: dict[str, Any]) -> None:
        recorder.handler = lambda r: httpx.Response(200, json=account)
        assert EnvironmentPoolsClient().account_info == account

    def test_plan_check_tolerates_a_failing_me(self, recorder: Recorder) -> None:
        recorder.handler = lambda r: httpx.Response(404, json={"detail": "Not Found"})
        assert EnvironmentPoolsClient().account_info == {}

    def test_skip_plan_check_sends_nothing(self, recorder: Recorder) -> None:
        EnvironmentPoolsClient(skip_plan_check=True)
        assert recorder.requests == []

    def test_namespaces_route_to_their_paths(self, recorder: Recorder) -> None:
        recorder.handler = lambda r: httpx.Response(
            200,
            json=[{"id": "p1"}]
            if r.url.path.endswith(("/pools", "/tasks", "credentials"))
            else {"rollout_id": "r5", "pool_id": "p1"},
        )
        client = EnvironmentPoolsClient(
            skip_plan_check=True, api_key="sk-ns", backend_base="http://ns.test"
        )
        handle = client.rollouts.create(REQUEST)
        assert isinstance(handle, RolloutHandle) and handle.rollout_id == "r5"
        assert client.rollouts.get("r5").rollout_id == "r5"
        assert [p.pool_id for p in client.pools.list()] == ["p1"]
        assert client.pools.get("p1").pool_id == "p1"
        client.pools.tasks.list("p1")
        client.credentials.list()
        client.capabilities.openapi_schema()
        paths = [r.url.path for r in recorder.requests]
        assert paths == [
            "/v1/rollouts",
            "/v1/rollouts/r5",
            "/v1/pools",
            "/v1/pools/p1",
            "/v1/pools/p1/tasks",
            "/api/v1/credentials",
            "/v1/openapi.json",
        ]
        assert {r.headers["authorization"] for r in recorder.requests} == {"Bearer sk-ns"}
        assert {r.url.host for r in recorder.requests} == {"ns.test"}

    def test_handle_methods(self, recorder: Recorder) -> None:
        handle = RolloutHandle("r7")
        handle.get()
        handle.summary()
        handle.usage()
        handle.support_bundle()
        handle.artifacts(prefix="agent/")
        handle.download("agent/log.txt")
        handle.download_zip()
        handle.replay(overrides={"priority": 1})
        handle.cancel()
        paths = [(r.method, r.url.path) for r in recorder.requests]
        assert paths == [
            ("GET", "/v1/rollouts/r7"),
            ("GET", "/v1/rollouts/r7/summary"),
            ("GET", "/v1/rollouts/r7/usage"),
            ("GET", "/v1/rollouts/r7/support_bundle"),
            ("GET", "/v1/rollouts/r7/artifacts"),
            ("GET", "/v1/rollouts/r7/artifacts/agent/log.txt"),
            ("GET", "/v1/rollouts/r7/artifacts.zip"),
            ("POST", "/v1/rollouts/r7/replay"),
            ("POST", "/v1/rollouts/r7/cancel"),
        ]

    def test_resources_mirror_the_url_paths(self, recorder: Recorder) -> None:
        recorder.handler = lambda r: httpx.Response(200, json={"ok": True})
        client = EnvironmentPoolsClient(skip_plan_check=True, backend_base="http://ns.test")
        client.rollouts.artifacts("r1", prefix="agent/")  # the SDK's spelling: a call
        client.rollouts.artifacts.list("r1")
        assert client.rollouts.artifacts.fetch("r1", "a/b.txt") == b'{"ok":true}'
        client.queue.status()
        paths = [r.url.path for r in recorder.requests]
        assert paths == [
            "/v1/rollouts/r1/artifacts",
            "/v1/rollouts/r1/artifacts",
            "/v1/rollouts/r1/artifacts/a/b.txt",
            "/v1/queue/status",
        ]
        assert recorder.requests[0].url.params["prefix"] == "agent/"

    def test_one_connection_reaches_every_resource(self, recorder: Recorder) -> None:
        client = EnvironmentPoolsClient(
            skip_plan_check=True, api_key="sk-one", backend_base="http://one.test"
        )
        handle = client.rollout("r2")
        assert handle.connection is client.connection
        assert client.pools.tasks.connection is client.connection
        assert client.credentials.connection is client.connection
        # The SDK's handle exposes its settings as attributes; setting one re-points it.
        assert (handle.backend_base, handle.api_key) == ("http://one.test", "sk-one")
        handle.api_version = "legacy"
        handle.get()
        assert recorder.last.url.path == "/api/v1/rollouts/r2"
        assert client.connection.api_version is None

    def test_handle_events_reconnect_by_default_module_function_does_not(self) -> None:
        import inspect

        handle_events = inspect.signature(RolloutHandle("r").events)
        assert handle_events.parameters["auto_reconnect"].default is True
        module_events = inspect.signature(ep.stream_rollout_events)
        assert module_events.parameters["auto_reconnect"].default is False
        resilient = inspect.signature(ep.stream_rollout_events_resilient)
        assert resilient.parameters["auto_reconnect"].default is True


def test_module_functions_take_the_connection_as_keywords() -> None:
    import inspect

    versioned = inspect.signature(ep.get_rollout).parameters
    assert list(versioned) == [
        "rollout_id",
        "timeout",
        "backend_base",
        "api_key",
        "api_version",
        "session",
    ]
    assert versioned["timeout"].default == 30.0
    # Credentials and the account live at fixed paths: no api_version, as in the SDK.
    assert "api_version" not in inspect.signature(ep.store_credential).parameters
    with pytest.raises(TypeError, match=r"store_credential\(\) got an unexpected keyword"):
        ep.store_credential(
            credential_name="n",
            credential_type="GITHUB_PAT",
            credential_value="v",
            api_version="v1",
        )
    with pytest.raises(TypeError, match=r"get_rollout\(\) missing 1 required positional argument"):
        ep.get_rollout()


def test_every_documented_name_is_importable() -> None:
    names = [
        "create_rollout",
        "get_rollout",
        "cancel_rollout",
        "stream_rollout_events",
        "get_rollout_usage",
        "get_rollout_support_bundle",
        "list_rollout_artifacts",
        "fetch_artifact",
        "download_artifacts_zip",
        "create_pool",
        "list_pools",
        "get_pool",
        "update_pool",
        "delete_pool",
        "create_pool_task",
        "list_pool_tasks",
        "update_pool_task",
        "delete_pool_task",
        "store_credential",
        "list_credentials",
        "rotate_credential",
        "delete_credential",
        "get_capabilities",
        "get_openapi_schema",
        "get_schema_json",
        "list_rollouts",
        "get_rollout_summary",
        "replay_rollout",
        "validate_rollout",
        "create_rollouts_batch",
        "get_pool_metrics",
        "get_queue_status",
        "stream_rollout_events_resilient",
        "EnvironmentPoolsClient",
        "RolloutHandle",
        "AgentSpec",
        "PoolTask",
        "PoolTaskInstance",
        "RolloutRequestV1",
        "PoolConfigV1",
        "PoolTemplate",
        "EventEnvelope",
        "ArtifactManifest",
        "ArtifactManifestEntry",
        "UsageSnapshot",
        "PoolResponse",
        "TaskRef",
        "EnvironmentSpec",
        "TimeoutSpec",
        "PlanGatingError",
        "EnvPoolsError",
        "APIError",
        "AuthenticationError",
        "NotFoundError",
        "ConflictError",
        "ValidationError",
        "RateLimitError",
        "ServerError",
        "TransportError",
        "StreamGapError",
    ]
    import envpools_cli.client as surface

    missing = [name for name in names if not hasattr(surface, name)]
    assert missing == []
    assert set(names) <= set(surface.__all__)


def test_json_bodies_are_plain_json(recorder: Recorder) -> None:
    ep.update_pool("p1", request={"tags": ["a"], "spend_limit_usd": 1.5})
    assert json.loads(recorder.last.content) == {"tags": ["a"], "spend_limit_usd": 1.5}


def test_concurrent_creates_derive_one_key_per_request(recorder: Recorder) -> None:
    import threading

    lock = threading.Lock()
    active = {"now": 0, "peak": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        import time

        with lock:
            active["now"] += 1
            active["peak"] = max(active["peak"], active["now"])
        time.sleep(0.02)
        with lock:
            active["now"] -= 1
        if json.loads(request.content)["priority"] == 3:
            return httpx.Response(
                422, json={"error": {"code": "validation_error", "message": "nope"}}
            )
        return httpx.Response(201, json={"rollout_id": request.headers["idempotency-key"]})

    recorder.handler = handler
    requests = [{**REQUEST, "priority": i} for i in range(10)]
    result = ep.create_rollouts_concurrently(requests=requests, idempotency_key="k", max_workers=4)
    assert [r["rollout_id"] for r in result["rollouts"]] == [f"k-{i}" for i in range(10) if i != 3]
    assert result["errors"] == [
        {"index": 3, "error": {"code": "validation_error", "message": "nope"}}
    ]
    assert 1 < active["peak"] <= 4, "concurrent, and bounded"
