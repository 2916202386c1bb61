# pyright: strict
"""A user's script over the whole client, for the type checkers (never run).

``test_static_types.py`` checks it with mypy ``--strict`` and pyright: every
``reveal_type`` must show the type its ``# revealed:`` comment names (a comment may give
one spelling per checker: ``# revealed: mypy-spelling || pyright-spelling``), every line
marked ``# error`` must be reported, and nothing else may be. The test also holds that
every public function and method of the client is called here, so a new one cannot
arrive untyped.
"""

from __future__ import annotations

import threading
from typing import Any, reveal_type

from envpools_cli.client import (
    TERMINAL_STATUSES,
    AgentSpec,
    APIError,
    ArtifactManifest,
    AuthenticationError,
    Connection,
    EnvironmentPoolsClient,
    EnvPoolsError,
    EventEnvelope,
    EventStream,
    HTTPSession,
    NotFoundError,
    PlanGatingError,
    PoolConfigV1,
    PoolResponse,
    PoolTask,
    PoolTaskInstance,
    PoolTemplate,
    ReconnectPolicy,
    RetryPolicy,
    RolloutHandle,
    RolloutRequestV1,
    SSEDecoder,
    StreamGapError,
    SynthAPIError,
    TransportError,
    UsageSnapshot,
    cancel_rollout,
    check_agents,
    check_plan_access,
    clear_capabilities_cache,
    create_pool,
    create_pool_task,
    create_rollout,
    create_rollouts_batch,
    create_rollouts_concurrently,
    default_session,
    delete_credential,
    delete_pool,
    delete_pool_task,
    download_artifacts_zip,
    fetch_artifact,
    get_account,
    get_capabilities,
    get_openapi_schema,
    get_pool,
    get_pool_metrics,
    get_queue_status,
    get_rollout,
    get_rollout_summary,
    get_rollout_support_bundle,
    get_rollout_usage,
    get_schema_json,
    list_credentials,
    list_pool_tasks,
    list_pools,
    list_rollout_artifacts,
    list_rollouts,
    new_idempotency_key,
    normalize_backend_base,
    open_artifact,
    open_artifacts_zip,
    replay_rollout,
    resolve_api_key,
    resolve_api_version,
    resolve_backend_base,
    rotate_credential,
    set_default_session,
    store_credential,
    stream_rollout_events,
    stream_rollout_events_resilient,
    update_pool,
    update_pool_task,
    use_session,
    validate_rollout,
    validate_rollout_request,
)

URL = "http://127.0.0.1:8000"
REQUEST: dict[str, Any] = {
    "task_ref": {"dataset": "envpools-examples", "task_id": "fix-failing-test"},
    "agent": AgentSpec.codex(model_id="gpt-5.1-codex-mini").model_dump(exclude_none=True),
    "task_app_url": "",
    "timeouts": {"agent_sec": 300},
    "pool_id": "coding",
}


def module_functions(session: HTTPSession) -> None:
    where: dict[str, Any] = {"backend_base": URL, "api_key": "ep_x", "session": session}
    reveal_type(create_rollout(request=REQUEST, idempotency_key="k", dry_run=True))  # revealed: dict[str, Any]
    reveal_type(validate_rollout(request=RolloutRequestV1.model_validate(REQUEST)))  # revealed: dict[str, Any]
    reveal_type(validate_rollout_request(REQUEST, backend_base=URL))  # revealed: None
    reveal_type(list_rollouts(status="running", limit=10, api_version="v1"))  # revealed: dict[str, Any]
    reveal_type(create_rollouts_batch(requests=[REQUEST], metadata={"k": "v"}))  # revealed: dict[str, Any]
    reveal_type(create_rollouts_concurrently(requests=[REQUEST], max_workers=4))  # revealed: dict[str, Any]
    reveal_type(get_rollout("ro_1", timeout=3.0, **where))  # revealed: dict[str, Any]
    reveal_type(get_rollout_summary("ro_1"))  # revealed: dict[str, Any]
    reveal_type(get_rollout_usage("ro_1"))  # revealed: dict[str, Any]
    reveal_type(get_rollout_support_bundle("ro_1"))  # revealed: dict[str, Any]
    reveal_type(replay_rollout("ro_1", overrides={"agent": {}}))  # revealed: dict[str, Any]
    reveal_type(cancel_rollout("ro_1"))  # revealed: dict[str, Any]
    reveal_type(stream_rollout_events("ro_1", cursor="3", on_gap="report"))  # revealed: EventStream
    reveal_type(stream_rollout_events_resilient("ro_1", max_retries=3))  # revealed: EventStream
    reveal_type(list_rollout_artifacts("ro_1", prefix="agent/"))  # revealed: dict[str, Any]
    reveal_type(fetch_artifact("ro_1", "agent/log.txt"))  # revealed: bytes
    reveal_type(fetch_artifact("ro_1", artifact_path="agent/log.txt"))  # revealed: bytes
    reveal_type(fetch_artifact("ro_1", path="agent/log.txt"))  # revealed: bytes
    with open_artifact("ro_1", "big.bin") as response:
        reveal_type(response.iter_bytes())  # revealed: Iterator[bytes]
    with open_artifacts_zip("ro_1", prefix="agent/") as response:
        reveal_type(response.status_code)  # revealed: int
    reveal_type(download_artifacts_zip("ro_1", limit=10))  # revealed: bytes
    reveal_type(list_pools(pool_type="sandbox", tag="py"))  # revealed: list[dict[str, Any]]
    reveal_type(get_pool("coding"))  # revealed: dict[str, Any]
    reveal_type(create_pool(pool_id="p", template=PoolTemplate.HARBOR_CODING, tasks=[]))  # revealed: dict[str, Any]
    reveal_type(update_pool("p", request={"concurrency": 2}))  # revealed: dict[str, Any]
    reveal_type(delete_pool("p"))  # revealed: None
    reveal_type(get_pool_metrics("p"))  # revealed: dict[str, Any]
    reveal_type(list_pool_tasks("p"))  # revealed: list[dict[str, Any]]
    task = PoolTask.from_docker("t1", "registry/image:latest", env={"A": "b"})
    reveal_type(create_pool_task("p", request=task))  # revealed: dict[str, Any]
    reveal_type(update_pool_task("p", "t1", request={"task_id": "t1"}))  # revealed: dict[str, Any]
    reveal_type(delete_pool_task("p", "t1"))  # revealed: None
    reveal_type(get_queue_status())  # revealed: dict[str, Any]
    reveal_type(get_capabilities())  # revealed: dict[str, Any]
    reveal_type(check_agents("codex", model_id="gpt-5", timeout=10))  # revealed: list[dict[str, Any]]
    reveal_type(get_openapi_schema())  # revealed: dict[str, Any]
    reveal_type(get_schema_json())  # revealed: dict[str, Any]
    reveal_type(store_credential(credential_name="K", credential_type="GITHUB_PAT", credential_value="v"))  # revealed: dict[str, Any]
    reveal_type(list_credentials())  # revealed: list[dict[str, Any]]
    reveal_type(rotate_credential("c1", new_value={"token": "v"}))  # revealed: dict[str, Any]
    reveal_type(delete_credential("c1"))  # revealed: None
    reveal_type(get_account())  # revealed: dict[str, Any]
    reveal_type(check_plan_access(timeout=5.0))  # revealed: dict[str, Any]
    reveal_type(new_idempotency_key())  # revealed: str
    reveal_type(clear_capabilities_cache())  # revealed: None


def the_client() -> None:
    with EnvironmentPoolsClient(api_key="ep_x", backend_base=URL, skip_plan_check=True) as client:
        reveal_type(client)  # revealed: EnvironmentPoolsClient
        reveal_type(client.account_info)  # revealed: dict[str, Any]
        reveal_type(client.connection)  # revealed: Connection
        handle = client.rollouts.create(REQUEST)  # the SDK's positional request
        reveal_type(handle)  # revealed: RolloutHandle
        reveal_type(client.rollouts.create(request=REQUEST, dry_run=False))  # revealed: RolloutHandle
        reveal_type(client.rollouts.get("ro_1"))  # revealed: RolloutHandle
        reveal_type(client.rollouts.list(limit=5))  # revealed: dict[str, Any]
        reveal_type(client.rollouts.events("ro_1", since="1"))  # revealed: EventStream
        reveal_type(client.rollouts.cancel("ro_1"))  # revealed: dict[str, Any]
        reveal_type(client.rollouts.usage("ro_1"))  # revealed: dict[str, Any]
        reveal_type(client.rollouts.artifacts("ro_1", prefix="agent/"))  # revealed: dict[str, Any]
        reveal_type(client.rollouts.artifacts.list("ro_1"))  # revealed: dict[str, Any]
        reveal_type(client.rollouts.artifacts.fetch("ro_1", path="a.txt"))  # revealed: bytes
        reveal_type(client.rollouts.artifacts.zip("ro_1"))  # revealed: bytes
        with client.rollouts.artifacts.open("ro_1", "a.txt") as response:
            reveal_type(response.read())  # revealed: bytes
        with client.rollouts.artifacts.open_zip("ro_1") as response:
            reveal_type(response.headers["content-type"])  # revealed: str
        reveal_type(client.rollout("ro_1"))  # revealed: RolloutHandle
        reveal_type(RolloutHandle.on("ro_1", client.connection))  # revealed: RolloutHandle

        reveal_type(client.pools.list(tag="py"))  # revealed: list[PoolResponse]
        reveal_type(client.pools.list_raw())  # revealed: list[dict[str, Any]]
        reveal_type(client.pools.get("coding"))  # revealed: PoolResponse
        reveal_type(client.pools.get_raw("coding"))  # revealed: dict[str, Any]
        pool = client.pools.create(request={"pool_id": "p", "pool_type": "openenv"})
        reveal_type(pool)  # revealed: PoolResponse
        reveal_type(pool["pool_id"])  # revealed: Any
        reveal_type(client.pools.create_raw(pool_id="p", template="HARBOR_CODING"))  # revealed: dict[str, Any]
        reveal_type(client.pools.update("p", request={"concurrency": 1}))  # revealed: PoolResponse
        reveal_type(client.pools.update_raw("p", request={}))  # revealed: dict[str, Any]
        reveal_type(client.pools.delete("p"))  # revealed: None
        reveal_type(client.pools.metrics("p"))  # revealed: dict[str, Any]
        instance: PoolTaskInstance = PoolTask.from_openenv("t1", "https://task.example.com")
        reveal_type(instance)  # revealed: PoolTaskInstance
        reveal_type(client.pools.tasks.list("p"))  # revealed: list[dict[str, Any]]
        local = PoolTask.from_local("t2", "./tasks/t2", env={"A": "b"})
        reveal_type(client.pools.tasks.create("p", request=local))  # revealed: dict[str, Any]
        reveal_type(client.pools.tasks.create("p", request=instance))  # revealed: dict[str, Any]
        reveal_type(client.pools.tasks.update("p", "t1", request=PoolTask.from_browser("t1", URL)))  # revealed: dict[str, Any]
        reveal_type(client.pools.tasks.delete("p", "t1"))  # revealed: None

        reveal_type(client.credentials.store(credential_name="K", credential_type="T", credential_value="v"))  # revealed: dict[str, Any]
        reveal_type(client.credentials.list())  # revealed: list[dict[str, Any]]
        reveal_type(client.credentials.rotate("c1", new_value="w"))  # revealed: dict[str, Any]
        reveal_type(client.credentials.delete("c1"))  # revealed: None
        reveal_type(client.capabilities.get())  # revealed: dict[str, Any]
        reveal_type(client.capabilities.openapi_schema())  # revealed: dict[str, Any]
        reveal_type(client.capabilities.schema_json())  # revealed: dict[str, Any]
        reveal_type(client.queue.status())  # revealed: dict[str, Any]
    client.close()


def the_handle() -> None:
    handle = RolloutHandle("ro_1", backend_base=URL, api_key="ep_x")
    reveal_type(handle.rollout_id)  # revealed: str
    reveal_type(handle.backend_base)  # revealed: str | None
    reveal_type(handle.api_key)  # revealed: str | None
    reveal_type(handle.api_version)  # revealed: str | None
    reveal_type(handle.session)  # revealed: HTTPSession | None
    handle.api_version = "legacy"  # the SDK's handle keeps its settings as attributes
    reveal_type(handle.get())  # revealed: dict[str, Any]
    reveal_type(handle.summary(timeout=5))  # revealed: dict[str, Any]
    reveal_type(handle.usage())  # revealed: dict[str, Any]
    reveal_type(handle.support_bundle())  # revealed: dict[str, Any]
    reveal_type(handle.cancel())  # revealed: dict[str, Any]
    reveal_type(handle.replay(metadata={"why": "again"}))  # revealed: dict[str, Any]
    reveal_type(handle.artifacts(limit=100))  # revealed: dict[str, Any]
    reveal_type(handle.download_zip(prefix="agent/"))  # revealed: bytes
    reveal_type(handle.download("agent/log.txt"))  # revealed: bytes
    reveal_type(handle.download(path="agent/log.txt"))  # revealed: bytes
    reveal_type(handle.wait(timeout=900, on_status=print))  # revealed: dict[str, Any]
    with handle.events(reconnect=ReconnectPolicy.watching(deadline=60.0)) as stream:
        for event in stream:
            reveal_type(event)  # revealed: dict[str, Any]
            envelope = EventEnvelope.model_validate(event)
            reveal_type(envelope.seq)  # revealed: int | None
    for sse in SSEDecoder().feed(b"data: {}\n\n"):
        reveal_type(sse.data)  # revealed: str


def models_and_settings() -> None:
    reveal_type(AgentSpec.claude_code())  # revealed: AgentSpec
    reveal_type(AgentSpec.opencode(model_id="claude-sonnet-4.5"))  # revealed: AgentSpec
    reveal_type(AgentSpec.preset("codex", model_id="gpt-5.2-codex"))  # revealed: AgentSpec
    reveal_type(PoolResponse.from_dict({"pool_id": "p"}))  # revealed: PoolResponse
    reveal_type(PoolConfigV1.model_validate({"pool_id": "p"}))  # revealed: PoolConfigV1
    reveal_type(ArtifactManifest.model_validate({"rollout_id": "r", "artifacts": []}))  # revealed: ArtifactManifest
    reveal_type(UsageSnapshot.model_validate({}))  # revealed: UsageSnapshot
    reveal_type(normalize_backend_base("http://h:1/api/v1"))  # revealed: str
    reveal_type(resolve_backend_base())  # revealed: str
    reveal_type(resolve_api_key("ep_x"))  # revealed: str
    reveal_type(resolve_api_version())  # revealed: str
    session = HTTPSession(retry=RetryPolicy(max_retries=2))
    reveal_type(set_default_session(session))  # revealed: HTTPSession | None
    reveal_type(default_session())  # revealed: HTTPSession
    with use_session(session) as inner:
        reveal_type(inner)  # revealed: HTTPSession
    reveal_type(Connection(URL, "ep_x").url("rollouts"))  # revealed: str
    reveal_type("succeeded" in TERMINAL_STATUSES)  # revealed: bool
    thread = threading.Thread(target=module_functions, args=(session,))
    del thread


def errors() -> None:
    try:
        profiled = EnvironmentPoolsClient.from_profile("prod", skip_plan_check=True)
        reveal_type(profiled)  # revealed: EnvironmentPoolsClient
    except EnvPoolsError:
        pass
    try:
        EnvironmentPoolsClient(api_key="ep_x")
    except PlanGatingError as exc:
        reveal_type(exc.upgrade_url)  # revealed: str
    except (AuthenticationError, NotFoundError) as exc:
        reveal_type(exc.status_code)  # revealed: int | None
    except SynthAPIError as exc:
        reveal_type(exc.request_id)  # revealed: str | None
    except (StreamGapError, TransportError) as exc:
        reveal_type(exc)  # revealed: StreamGapError | TransportError
    except EnvPoolsError:
        pass
    assert issubclass(SynthAPIError, APIError)


def mistakes(handle: RolloutHandle, client: EnvironmentPoolsClient) -> None:
    """What a type checker must refuse: each ``# error`` line."""
    get_rollout(12345)  # error: wrong type
    get_rollout("ro_1", timout=3)  # error: misspelled keyword
    get_rollout("ro_1", nonsense=True)  # error: unknown keyword
    get_rollout("ro_1", 30.0)  # error: too many positionals (timeout is keyword-only)
    list_rollouts("running")  # error: too many positionals
    create_rollout(REQUEST)  # error: the module function takes request= only, as the SDK's
    fetch_artifact("ro_1")  # error: no artifact named
    fetch_artifact("ro_1", "a.txt", path="a.txt")  # error: both spellings
    store_credential(credential_name="K", credential_type="T", credential_value="v", api_version="v1")  # error: fixed path, no api_version
    handle.events(auto_reconect=True)  # error: misspelled keyword
    handle.download()  # error: no artifact named
    handle.wait(timeout="soon")  # error: wrong type
    handle.get("ro_1")  # error: the handle knows its rollout
    client.rollouts.list("running")  # error: too many positionals
    client.pools.create(request={"pool_id": "p"}, concurrency=2)  # error: unknown keyword
    client.pools.tasks.create("p", {"task_id": "t"})  # error: request is keyword-only
    client.credentials.rotate("c1", new_value=3)  # error: wrong type
    client.capabilities.get(timeout=None)  # error: wrong type
    bad: str = client.pools.get("p")  # error: a PoolResponse is not a str
    stream: EventStream = handle.get()  # error: a dict is not a stream
    del bad, stream
