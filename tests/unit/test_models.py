from __future__ import annotations

import pydantic
import pytest

from envpools_cli.client import (
    AgentSpec,
    EventEnvelope,
    PoolConfigV1,
    PoolResponse,
    PoolTask,
    RolloutRequestV1,
    TaskRef,
    TimeoutSpec,
)

BASE = {
    "task_ref": {"dataset": "d", "task_id": "t"},
    "agent": {"harness": "codex"},
}


class TestAgentPresets:
    def test_presets_fill_default_models(self) -> None:
        assert AgentSpec.claude_code().model_id == "claude-sonnet-4.5"
        assert AgentSpec.opencode().model_id == "claude-sonnet-4.5"
        assert AgentSpec.codex().model_id == "gpt-5.2-codex"
        assert AgentSpec.codex().harness == "codex"

    @pytest.mark.parametrize(
        "model", ["gpt-5.2-codex", "gpt-5.1-codex-mini", "gpt-5.3-codex-spark"]
    )
    def test_codex_allows_its_models(self, model: str) -> None:
        assert AgentSpec.codex(model_id=model).model_id == model

    def test_disallowed_model_text(self) -> None:
        with pytest.raises(ValueError) as info:
            AgentSpec.codex(model_id="gpt-4o")
        assert str(info.value) == (
            "Model 'gpt-4o' is not allowed for harness 'codex'. Allowed models: "
            "['gpt-5.1-codex-mini', 'gpt-5.2-codex', 'gpt-5.3-codex-spark']"
        )

    def test_claude_code_rejects_codex_model(self) -> None:
        with pytest.raises(ValueError, match=r"Allowed models: \['claude-sonnet-4.5'\]"):
            AgentSpec.claude_code(model_id="gpt-5.2-codex")

    def test_unknown_preset_text(self) -> None:
        with pytest.raises(ValueError) as info:
            AgentSpec.preset("aider")
        assert str(info.value) == (
            "Unknown preset 'aider'. Available presets: ['claude-code', 'codex', 'opencode']"
        )

    def test_preset_keeps_harness_version(self) -> None:
        spec = AgentSpec.preset("opencode", harness_version="1.18.33")
        assert spec.model_dump() == {
            "harness": "opencode",
            "model_id": "claude-sonnet-4.5",
            "harness_version": "1.18.33",
        }

    def test_kind_is_a_synonym_of_harness(self) -> None:
        assert AgentSpec.model_validate({"kind": "oracle"}).harness == "oracle"


class TestRolloutRequest:
    def test_rule_order_first_routing(self) -> None:
        with pytest.raises(pydantic.ValidationError) as info:
            RolloutRequestV1.model_validate(BASE)
        assert "Provide pool_id, pool_tags, or environment" in str(info.value)

    def test_empty_routing_values_count_as_missing(self) -> None:
        with pytest.raises(pydantic.ValidationError, match="Provide pool_id, pool_tags"):
            RolloutRequestV1.model_validate({**BASE, "pool_id": "", "pool_tags": []})

    def test_rule_order_second_task_app(self) -> None:
        with pytest.raises(pydantic.ValidationError) as info:
            RolloutRequestV1.model_validate({**BASE, "pool_id": "p"})
        assert "Provide either task_app_url or task_app_id" in str(info.value)

    def test_rule_order_third_timeouts(self) -> None:
        with pytest.raises(pydantic.ValidationError) as info:
            RolloutRequestV1.model_validate({**BASE, "pool_id": "p", "task_app_id": ""})
        assert "timeouts is required" in str(info.value)

    def test_empty_timeouts_pass(self) -> None:
        req = RolloutRequestV1.model_validate(
            {**BASE, "pool_tags": ["x"], "task_app_id": "", "timeouts": {}}
        )
        assert req.timeouts == TimeoutSpec()

    def test_container_aliases(self) -> None:
        req = RolloutRequestV1.model_validate(
            {**BASE, "pool_id": "p", "container_url": "http://app", "timeouts": {}}
        )
        assert req.task_app_url == "http://app"
        req = RolloutRequestV1.model_validate(
            {**BASE, "pool_id": "p", "container_id": "app-1", "timeouts": {}}
        )
        assert req.task_app_id == "app-1"

    def test_dump_excludes_none_and_keeps_unknown_fields(self) -> None:
        req = RolloutRequestV1(
            task_ref=TaskRef(dataset="d", task_id="t"),
            agent=AgentSpec.codex(),
            pool_id="p",
            task_app_id="a",
            timeouts=TimeoutSpec(agent_sec=60),
            harbor={"x": 1},  # type: ignore[call-arg]
        )
        assert req.model_dump() == {
            "task_ref": {"dataset": "d", "task_id": "t"},
            "agent": {"harness": "codex", "model_id": "gpt-5.2-codex"},
            "timeouts": {"agent_sec": 60},
            "pool_id": "p",
            "task_app_id": "a",
            "harbor": {"x": 1},
        }


class TestPoolTaskFactories:
    def test_from_docker(self) -> None:
        task = PoolTask.from_docker(
            "t1", "img:1", env={"A": "1"}, resources={"cpus": 2}, registry_credential="cred"
        )
        assert task.model_dump() == {
            "task_id": "t1",
            "backend": "harbor",
            "docker_image": "img:1",
            "env_vars": {"A": "1"},
            "resources": {"cpus": 2},
            "registry_credential": "cred",
        }

    def test_from_openenv(self) -> None:
        task = PoolTask.from_openenv("t2", "http://env:8000")
        assert task.backend == "openenv"
        assert task.openenv_deployment == {"task_app_url": "http://env:8000"}

    def test_from_browser_profile_and_explicit_browser(self) -> None:
        task = PoolTask.from_browser("t3", "http://b", profile="p1")
        assert task.browser == {"task_app_url": "http://b", "profile": "p1"}
        given = {"task_app_url": "http://other"}
        task = PoolTask.from_browser("t3", "http://ignored", browser=given, profile="p2")
        assert task.browser == {"task_app_url": "http://other", "profile": "p2"}
        assert given == {"task_app_url": "http://other"}, "caller's dict must not change"

    def test_from_local_makes_the_path_absolute(self, tmp_path: object) -> None:
        task = PoolTask.from_local("fix-tests", "relative/dir")
        assert task.backend == "harbor"
        assert task.data_source is not None
        assert task.data_source.type == "local"
        assert task.data_source.path is not None and task.data_source.path.startswith("/")


def test_pool_config_requires_id_and_type() -> None:
    with pytest.raises(pydantic.ValidationError):
        PoolConfigV1.model_validate({"pool_id": "p"})
    assert PoolConfigV1(pool_id="p", pool_type="sandbox", tags=["a"]).model_dump() == {
        "pool_id": "p",
        "pool_type": "sandbox",
        "tags": ["a"],
    }


def test_pool_response_from_dict_takes_id() -> None:
    assert PoolResponse.from_dict({"id": "p9", "capacity": 3}).pool_id == "p9"
    assert PoolResponse.from_dict({"pool_id": "p1", "container_url": "u"}).task_app_url == "u"


def test_event_envelope_defaults() -> None:
    assert EventEnvelope().event == "message"
    assert EventEnvelope(id="1", seq=1, data={"a": 1}).model_dump() == {
        "id": "1",
        "event": "message",
        "seq": 1,
        "data": {"a": 1},
    }
