"""Every endpoint of the local backend over HTTP: auth, isolation, gating, idempotency, limits."""

from __future__ import annotations

import httpx
import pytest

from envpools_cli import client as ep

from .conftest import EXAMPLE, Backend, local_task

REQUEST = {
    "task_ref": {"dataset": "tests", "task_id": "fix-failing-test"},
    "agent": {"harness": "oracle"},
    "pool_id": "coding",
    "task_app_id": "",
    "timeouts": {},
}


def raw(backend: Backend, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {backend.key}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.request(method, backend.url + path, headers=headers, **kwargs)  # type: ignore[arg-type]


class TestAuth:
    def test_missing_key_is_401_with_the_envelope(self, backend: Backend) -> None:
        response = httpx.get(backend.url + "/v1/pools")
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "unauthorized"
        assert error["request_id"] == response.headers["x-request-id"]
        assert error["retryable"] is False

    def test_unknown_key_raises_authentication_error(self, backend: Backend) -> None:
        with pytest.raises(ep.AuthenticationError) as info:
            ep.list_pools(**backend.as_org("ep_local_nope"))
        assert info.value.request_id

    def test_x_api_key_header_is_accepted(self, backend: Backend) -> None:
        response = httpx.get(backend.url + "/v1/pools", headers={"X-API-Key": backend.key})
        assert response.status_code == 200
        assert response.json() == []

    def test_me(self, backend: Backend) -> None:
        me = ep.get_account(**backend.conn)
        assert me["org_id"] == backend.org_id
        assert me["plan"] == "pro"

    def test_free_plan_is_gated(self, backend: Backend) -> None:
        free = backend.new_key("free")
        with pytest.raises(ep.PlanGatingError) as info:
            ep.list_pools(**backend.as_org(free))
        assert info.value.current_plan == "free"
        assert "Your current plan is 'free'" in str(info.value)
        assert ep.get_account(**backend.as_org(free))["plan"] == "free", "/me is not gated"
        with pytest.raises(ep.PlanGatingError):
            ep.EnvironmentPoolsClient(**backend.as_org(free))

    def test_trial_plan_is_gated_on_every_pools_route(self, backend: Backend) -> None:
        trial = backend.new_key("trial")
        for path in ("/v1/pools", "/v1/rollouts", "/v1/queue/status", "/api/v1/pools"):
            response = httpx.get(backend.url + path, headers={"Authorization": f"Bearer {trial}"})
            assert response.status_code == 403, path
            body = response.json()["error"]
            assert body["code"] == "plan_required"
            assert body["current_plan"] == "trial"
            assert body["upgrade_url"].startswith("https://")

    def test_feature_flag_opens_a_free_org(self, backend: Backend) -> None:
        from envpools_cli.server.state.store import Store

        store = Store(backend.thread.settings.db_path)
        org = store.create_org("flagged", "free", {"environment_pools": True})
        key = store.create_key(org.org_id)
        store.close()
        assert ep.list_pools(**backend.as_org(key)) == []


class TestIsolation:
    def test_orgs_never_see_each_other(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        rollout = ep.create_rollout(request=REQUEST, **backend.conn)
        backend.wait(rollout["rollout_id"])
        ep.store_credential(
            credential_name="gh",
            credential_type="GITHUB_PAT",
            credential_value="ghp_secret",
            **backend.conn,
        )
        other = backend.as_org(backend.new_key("team"))
        assert ep.list_pools(**other) == []
        assert ep.list_rollouts(**other)["rollouts"] == []
        assert ep.list_credentials(**other) == []
        rid = rollout["rollout_id"]
        for call in (
            lambda: ep.get_pool("coding", **other),
            lambda: ep.list_pool_tasks("coding", **other),
            lambda: ep.get_rollout(rid, **other),
            lambda: ep.get_rollout_usage(rid, **other),
            lambda: ep.list_rollout_artifacts(rid, **other),
            lambda: ep.fetch_artifact(rid, "verifier/reward.txt", **other),
            lambda: ep.download_artifacts_zip(rid, **other),
            lambda: ep.cancel_rollout(rid, **other),
            lambda: list(ep.stream_rollout_events(rid, **other)),
        ):
            with pytest.raises(ep.NotFoundError):
                call()
        creds = ep.list_credentials(**backend.conn)
        with pytest.raises(ep.NotFoundError):
            ep.delete_credential(creds[0]["credential_id"], **other)
        # The other org may reuse the same pool id without touching ours.
        ep.create_pool(pool_id="coding", pool_type="sandbox", **other)
        assert len(ep.get_pool("coding", **backend.conn)["tasks"]) == 1


class TestPoolsAndTasks:
    def test_crud(self, backend: Backend) -> None:
        created = ep.create_pool(
            pool_id="web",
            template="HARBOR_CODING",
            tasks=[local_task("fix", EXAMPLE)],
            **backend.conn,
        )
        assert created["pool_type"] == "sandbox" and created["backend"] == "harbor"
        assert created["template"] == "HARBOR_CODING"
        assert [t["task_id"] for t in created["tasks"]] == ["fix"]
        listed = ep.list_pools(**backend.conn)
        assert isinstance(listed, list) and [p["pool_id"] for p in listed] == ["web"]
        assert ep.list_pools(pool_type="browser", **backend.conn) == []
        updated = ep.update_pool("web", request={"concurrency": 3, "tags": ["gpu"]}, **backend.conn)
        assert updated["concurrency"] == 3 and updated["tags"] == ["gpu"]
        assert [p["pool_id"] for p in ep.list_pools(tag="gpu", **backend.conn)] == ["web"]
        client = ep.EnvironmentPoolsClient(**backend.conn)
        assert client.pools.get("web").concurrency == 3
        metrics = ep.get_pool_metrics("web", **backend.conn)
        assert metrics["queue_depth"] == 0 and metrics["total_count"] == 0

        tasks = ep.list_pool_tasks("web", **backend.conn)
        assert isinstance(tasks, list) and tasks[0]["data_source"]["type"] == "local"
        ep.create_pool_task(
            "web", request=ep.PoolTask.from_docker("img", "python:3.12"), **backend.conn
        )
        ep.update_pool_task(
            "web",
            "img",
            request={"task_id": "img", "backend": "harbor", "docker_image": "python:3.13"},
            **backend.conn,
        )
        assert {
            t["task_id"]: t.get("docker_image") for t in ep.list_pool_tasks("web", **backend.conn)
        }["img"] == "python:3.13"
        ep.delete_pool_task("web", "img", **backend.conn)
        assert [t["task_id"] for t in ep.list_pool_tasks("web", **backend.conn)] == ["fix"]
        ep.delete_pool("web", **backend.conn)
        with pytest.raises(ep.NotFoundError):
            ep.get_pool("web", **backend.conn)

    def test_duplicate_pool_is_a_conflict(self, backend: Backend) -> None:
        backend.pool("dup")
        with pytest.raises(ep.ConflictError):
            backend.pool("dup")

    def test_invalid_pool_and_task_bodies(self, backend: Backend, tmp_path: object) -> None:
        with pytest.raises(ep.ValidationError):
            ep.create_pool(request={"pool_type": "sandbox"}, **backend.conn)
        backend.pool("p")
        with pytest.raises(ep.ValidationError) as info:
            ep.create_pool_task(
                "p", request=ep.PoolTask.from_local("t", "/nonexistent/task"), **backend.conn
            )
        assert "is not a Harbor task folder" in info.value.message
        with pytest.raises(ep.ValidationError):
            ep.create_pool_task("p", request={"task_id": "x", "backend": "podman"}, **backend.conn)

    def test_pool_with_active_rollouts_cannot_be_deleted(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), concurrency=0)
        rollout = ep.create_rollout(request=REQUEST, **backend.conn)
        with pytest.raises(ep.ConflictError, match="cancel them first"):
            ep.delete_pool("coding", **backend.conn)
        ep.cancel_rollout(rollout["rollout_id"], **backend.conn)
        ep.delete_pool("coding", **backend.conn)


class TestRolloutRequests:
    def test_validation_errors_use_the_envelope(self, backend: Backend) -> None:
        response = raw(
            backend,
            "POST",
            "/v1/rollouts",
            json={"task_ref": {"dataset": "d", "task_id": "t"}, "agent": {"harness": "oracle"}},
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert "Provide pool_id, pool_tags, or environment" in error["message"]
        assert isinstance(error["details"], list)
        assert "detail" not in response.json()

    def test_unknown_pool_and_task(self, backend: Backend) -> None:
        with pytest.raises(ep.NotFoundError):
            ep.create_rollout(request=REQUEST, **backend.conn)
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        with pytest.raises(ep.NotFoundError, match="is not in pool 'coding'"):
            ep.create_rollout(
                request={**REQUEST, "task_ref": {"dataset": "d", "task_id": "x"}}, **backend.conn
            )

    def test_server_checks_models_for_requests_the_client_does_not(self, backend: Backend) -> None:
        """Any model id for an agent CLI (a gateway's names are its own), but not nonsense."""
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        agents = {a["name"]: a for a in ep.get_capabilities(**backend.conn)["agents"]}
        assert agents["codex"]["accepts_any_model"] is True
        assert agents["opencode"]["model_format"].startswith("provider/model")
        response = raw(
            backend,
            "POST",
            "/v1/rollouts",
            json={**REQUEST, "agent": {"harness": "codex", "model_id": "openai/gpt-4o"}},
        )
        assert response.status_code == 201
        assert response.json()["agent"]["model_id"] == "openai/gpt-4o"
        response = raw(
            backend,
            "POST",
            "/v1/rollouts",
            json={**REQUEST, "agent": {"harness": "codex", "model_id": " "}},
        )
        assert response.status_code == 422
        assert "is not a model id" in response.json()["error"]["message"]
        assert ep.validate_rollout(
            request={**REQUEST, "agent": {"harness": "opencode", "model_id": "vllm//m"}},
            **backend.conn,
        )["error"]["message"].startswith("'vllm//m' is not a model id")
        response = raw(
            backend, "POST", "/v1/rollouts", json={**REQUEST, "agent": {"harness": "aider"}}
        )
        assert "unknown harness 'aider'" in response.json()["error"]["message"]

    def test_pool_policies(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), allowed_agents=["nop"])
        with pytest.raises(ep.PermissionDeniedError, match="does not allow agent 'oracle'"):
            ep.create_rollout(request=REQUEST, **backend.conn)

    def test_dry_run_creates_nothing(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
        result = ep.create_rollout(request=REQUEST, dry_run=True, **backend.conn)
        assert result["status"] == "dry_run" and result["selected_pool_id"] == "coding"
        assert ep.list_rollouts(**backend.conn)["rollouts"] == []

    def test_validate_endpoint(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), tags=["py"])
        ok = ep.validate_rollout(
            request={**REQUEST, "pool_id": None, "pool_tags": ["py"]}, **backend.conn
        )
        assert ok["valid"] is True and ok["selected_pool_id"] == "coding"
        assert ok["routing_debug"]["strategy"] == "pool_tags"
        bad = ep.validate_rollout(request={**REQUEST, "pool_id": "nope"}, **backend.conn)
        assert bad["valid"] is False and bad["error"]["code"] == "not_found"

    def test_idempotency(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), concurrency=0)
        first = ep.create_rollout(request=REQUEST, idempotency_key="same", **backend.conn)
        again = ep.create_rollout(request=REQUEST, idempotency_key="same", **backend.conn)
        assert again["rollout_id"] == first["rollout_id"]
        assert len(ep.list_rollouts(**backend.conn)["rollouts"]) == 1
        with pytest.raises(ep.ConflictError) as info:
            ep.create_rollout(
                request={**REQUEST, "priority": 5}, idempotency_key="same", **backend.conn
            )
        assert info.value.code == "idempotency_conflict"
        # Idempotency keys are per organisation.
        other = backend.as_org(backend.new_key())
        ep.create_pool(
            request={
                "pool_id": "coding",
                "pool_type": "sandbox",
                "concurrency": 0,
                "tasks": [local_task("fix-failing-test", EXAMPLE).model_dump()],
            },
            **other,
        )
        assert (
            ep.create_rollout(request=REQUEST, idempotency_key="same", **other)["rollout_id"]
            != first["rollout_id"]
        )

    def test_queue_limit_answers_429_with_retry_after(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), concurrency=0, max_queue=1)
        ep.create_rollout(request=REQUEST, **backend.conn)
        response = raw(backend, "POST", "/v1/rollouts", json=REQUEST)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "queue_full"
        session = ep.HTTPSession(sleep=lambda s: None)
        with pytest.raises(ep.RateLimitError) as info:
            ep.create_rollout(request=REQUEST, **{**backend.conn, "session": session})
        assert info.value.code == "queue_full" and info.value.retry_after == 5.0
        assert ep.get_queue_status(**backend.conn)["total_queued"] == 1

    def test_list_filters_and_pages(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), concurrency=0)
        ids = [ep.create_rollout(request=REQUEST, **backend.conn)["rollout_id"] for _ in range(5)]
        page = ep.list_rollouts(limit=2, **backend.conn)
        assert [r["rollout_id"] for r in page["rollouts"]] == ids[::-1][:2]
        seen = [r["rollout_id"] for r in page["rollouts"]]
        while page["next_cursor"]:
            page = ep.list_rollouts(limit=2, cursor=page["next_cursor"], **backend.conn)
            seen += [r["rollout_id"] for r in page["rollouts"]]
        assert seen == ids[::-1]
        assert (
            len(
                ep.list_rollouts(
                    status="queued", pool_id="coding", task_id="fix-failing-test", **backend.conn
                )["rollouts"]
            )
            == 5
        )
        assert ep.list_rollouts(status="running", **backend.conn)["rollouts"] == []
        assert (
            ep.list_rollouts(created_after="2999-01-01T00:00:00Z", **backend.conn)["rollouts"] == []
        )

    def test_batch(self, backend: Backend) -> None:
        backend.pool("coding", local_task("fix-failing-test", EXAMPLE), concurrency=0)
        bad = {**REQUEST, "task_ref": {"dataset": "d", "task_id": "missing"}}
        result = ep.create_rollouts_batch(
            requests=[REQUEST, REQUEST], metadata={"run": "nightly"}, **backend.conn
        )
        assert len(result["rollouts"]) == 2 and result["errors"] == []
        assert result["rollouts"][0]["metadata"] == {"run": "nightly"}
        malformed = {**REQUEST, "timeouts": None}
        response = raw(
            backend, "POST", "/v1/rollouts/batch", json={"requests": [REQUEST, bad, malformed]}
        )
        body = response.json()
        assert len(body["rollouts"]) == 1
        assert [e["index"] for e in body["errors"]] == [1, 2]
        assert body["errors"][0]["error"]["code"] == "not_found"  # no such task in the pool
        assert body["errors"][1]["error"]["code"] == "validation_error"


class TestMisc:
    def test_capabilities(self, backend: Backend) -> None:
        caps = ep.get_capabilities(**backend.conn)
        agents = {a["name"]: a for a in caps["agents"]}
        assert agents["oracle"]["available"] and agents["nop"]["available"]
        for name in ("claude-code", "codex", "opencode"):
            assert name in agents
            if not agents[name]["available"]:
                assert "not installed" in agents[name]["reason"]
        assert caps["models"]["codex"] == [
            "gpt-5.1-codex-mini",
            "gpt-5.2-codex",
            "gpt-5.3-codex-spark",
        ]
        assert caps["backends"]["harbor"]["supported"] is True
        assert caps["backends"]["openenv"]["supported"] is False
        assert "fix-failing-test" in caps["datasets"]["envpools-examples"]

    def test_openapi_and_schema(self, backend: Backend) -> None:
        document = ep.get_openapi_schema(**backend.conn)
        assert document["openapi"].startswith("3.")
        paths = document["paths"]
        for path in (
            "/v1/rollouts",
            "/v1/rollouts:validate",
            "/v1/rollouts/{rollout_id}/events",
            "/v1/pools/{pool_id}/tasks",
            "/api/v1/credentials",
            "/api/v1/me",
        ):
            assert path in paths, path
        schemas = ep.get_schema_json(**backend.conn)["schemas"]
        assert "RolloutRequestV1" in schemas and "EventEnvelope" in schemas

    def test_legacy_prefixes(self, backend: Backend) -> None:
        backend.pool("coding")
        assert ep.get_pool("coding", api_version="legacy", **backend.conn)["pool_id"] == "coding"
        response = raw(backend, "GET", "/api/v1/environment-pools/pools")
        assert [p["pool_id"] for p in response.json()] == ["coding"]

    def test_unknown_route_uses_the_envelope(self, backend: Backend) -> None:
        response = raw(backend, "GET", "/v1/nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert response.headers["x-request-id"].startswith("req_")

    def test_credentials_never_return_values(self, backend: Backend) -> None:
        stored = ep.store_credential(
            credential_name="anthropic",
            credential_type="ANTHROPIC_API_KEY",
            credential_value="sk-ant-very-secret",
            metadata={"owner": "me"},
            **backend.conn,
        )
        assert "credential_value" not in stored
        assert stored["value_set"] is True
        listed = ep.list_credentials(**backend.conn)
        assert [c["credential_name"] for c in listed] == ["anthropic"]
        rotated = ep.rotate_credential(
            stored["credential_id"], new_value={"token": "t2"}, **backend.conn
        )
        assert rotated["credential_id"] == stored["credential_id"]
        response = raw(backend, "GET", "/api/v1/credentials")
        assert "sk-ant-very-secret" not in response.text and "t2" not in response.text
        with pytest.raises(ep.ConflictError):
            ep.store_credential(
                credential_name="anthropic",
                credential_type="X",
                credential_value="v",
                **backend.conn,
            )
        ep.delete_credential(stored["credential_id"], **backend.conn)
        assert ep.list_credentials(**backend.conn) == []

    def test_healthz(self, backend: Backend) -> None:
        assert httpx.get(backend.url + "/healthz").json()["status"] == "ok"
