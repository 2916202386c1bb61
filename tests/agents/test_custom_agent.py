"""Bring your own agent: a manifest (agent.toml) added with ``envpools agents add``.

The agent is a small Python program written here: it calls an OpenAI-compatible chat
completions endpoint (the scripted provider, through the rollout's egress gateway, with
the gateway's placeholder as its key), runs the shell commands it is given and prints
``envpools-jsonl`` events. It runs in a job beside the real codex CLI, against the same
provider, and both fix the example task. Broken manifests are refused at ``agents add``
with the reason, and nothing of them is registered.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import sys
import textwrap
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.app import run
from envpools_cli.atif import Trajectory
from envpools_cli.server.agents.installs import installed_agents
from envpools_cli.server.serve import BackendThread
from tests.agents.conftest import require_agent
from tests.agents.provider_stub import FIX_COMMAND, TURN_USAGE, ProviderStub, Usage
from tests.cli.test_completion import tab
from tests.integration.conftest import EXAMPLE, start_backend

AGENT_PY = textwrap.dedent(
    '''\
    """A tiny coding agent: chat completions with one bash tool, envpools-jsonl out."""
    import json, os, subprocess, sys, urllib.request

    model, workdir, instruction = sys.argv[1], sys.argv[2], sys.argv[3]
    base, key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
    bash = {"type": "function", "function": {"name": "bash", "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}}}}
    messages = [{"role": "user", "content": instruction}]

    def emit(**event):
        print(json.dumps(event), flush=True)

    print("tiny-agent starting", flush=True)
    for _ in range(6):
        body = json.dumps({"model": model, "messages": messages, "tools": [bash]}).encode()
        request = urllib.request.Request(base + "/chat/completions", data=body, headers={
            "Authorization": "Bearer " + key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        usage = answer.get("usage") or {}
        emit(type="usage", model=answer.get("model"), input_tokens=usage["prompt_tokens"],
             output_tokens=usage["completion_tokens"],
             cache_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
        message = answer["choices"][0]["message"]
        messages.append(message)
        if not message.get("tool_calls"):
            emit(type="message", text=message.get("content") or "")
            emit(type="result", text=message.get("content") or "")
            break
        for call in message["tool_calls"]:
            command = json.loads(call["function"]["arguments"])["command"]
            emit(type="tool_call", tool="bash", call_id=call["id"], input={"command": command})
            done = subprocess.run(command, shell=True, cwd=workdir, capture_output=True,
                                  text=True)
            output = done.stdout + done.stderr
            emit(type="tool_result", call_id=call["id"], output=output,
                 exit_code=done.returncode, is_error=done.returncode != 0)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    '''
)

MANIFEST = textwrap.dedent(
    """\
    manifest_version = 1

    [agent]
    name = "tiny-agent"
    description = "A tiny agent written in the test"
    version = "0.1.0"
    providers = ["openai"]
    models = ["gpt-5-mini"]
    default_model = "gpt-5-mini"

    [install]
    files = ["agent.py"]

    [run]
    command = ["python3", "{agent_dir}/agent.py", "{model}", "{workdir}", "{instruction}"]
    version_command = ["python3", "-c", "print('tiny-agent 0.1.0')"]

    [run.env]
    OPENAI_BASE_URL = "{providers.openai.base_url}"
    OPENAI_API_KEY = "{providers.openai.api_key}"

    [output]
    parser = "envpools-jsonl"
    """
)


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = run(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def write_agent(folder: Path, manifest: str = MANIFEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.py").write_text(AGENT_PY)
    (folder / "agent.toml").write_text(manifest)
    return folder


@pytest.fixture
def own_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An agents dir of this test's own (custom agents are added to it)."""
    folder = tmp_path / "agents"
    folder.mkdir()
    monkeypatch.setenv("ENVPOOLS_AGENTS_DIR", str(folder))
    return folder


# --- refused at add --------------------------------------------------------------------------


def _broken(old: str, new: str) -> str:
    assert old in MANIFEST
    return MANIFEST.replace(old, new)


BROKEN = {
    "missing-command": (
        _broken(
            'command = ["python3", "{agent_dir}/agent.py", "{model}", "{workdir}", '
            '"{instruction}"]\n',
            "",
        ),
        "run.command is missing",
    ),
    "command-not-installed": (
        _broken('command = ["python3"', 'command = ["tiny-agent-cli"'),
        "program 'tiny-agent-cli' is not installed",
    ),
    "unknown-parser": (
        _broken('parser = "envpools-jsonl"', 'parser = "langchain-json"'),
        "unknown parser 'langchain-json'",
    ),
    "provider-not-routed": (
        _broken("{providers.openai.base_url}", "{providers.anthropic.base_url}"),
        "uses provider 'anthropic', which agent.providers does not declare: the gateway "
        "would not route it",
    ),
    "provider-never-given": (
        _broken('OPENAI_BASE_URL = "{providers.openai.base_url}"\n', ""),
        "provider 'openai' is declared but the agent is never told where the gateway routes it",
    ),
    "real-key-by-reference": (
        _broken("{providers.openai.api_key}", "{credentials.OPENAI_API_KEY}"),
        "reads the OPENAI_API_KEY credential directly",
    ),
    "secret-on-the-command-line": (
        _broken('"{instruction}"]', '"{instruction}", "{providers.openai.api_key}"]'),
        "secrets go in [run.env]",
    ),
    "no-version": (_broken("manifest_version = 1\n", ""), "manifest_version is missing"),
    "future-version": (
        _broken("manifest_version = 1", "manifest_version = 2"),
        "manifest_version 2 is not supported",
    ),
    "built-in-name": (_broken('name = "tiny-agent"', 'name = "codex"'), "is a built-in agent's"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_manifest_is_refused_at_add_with_the_reason(
    case: str,
    own_agents: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, reason = BROKEN[case]
    folder = write_agent(tmp_path / "broken", manifest)
    added = cli(capsys, monkeypatch, "agents", "add", str(folder))
    assert added.code == 2, added.err
    assert reason in added.err, added.err
    assert "Traceback" not in added.err
    listed = cli(capsys, monkeypatch, "agents", "list", "--no-check", "-o", "json")
    assert listed.code == 0, listed.err
    assert not [r for r in json.loads(listed.out) if r["kind"] == "custom"]
    assert [p.name for p in (own_agents / "custom").iterdir()] == [], "nothing left behind"


def test_the_reason_is_json_in_json_mode(
    own_agents: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write_agent(tmp_path / "broken", BROKEN["unknown-parser"][0])
    added = cli(capsys, monkeypatch, "agents", "add", str(folder), "-o", "json")
    error = json.loads(added.err)["error"]
    assert added.code == 2 and error["code"] == "invalid_agent"
    assert "unknown parser 'langchain-json'" in error["message"]


# --- a job with the custom agent beside codex -----------------------------------------------


@pytest.fixture
def agents_with_codex(installed_cli_dir: Path, own_agents: Path) -> Path:
    """This test's agents dir, with the shared codex install in it (read-only, linked)."""
    require_agent("codex")
    codex = installed_agents(installed_cli_dir)["codex"]
    (own_agents / "codex").symlink_to(installed_cli_dir / "codex", target_is_directory=True)
    record = {
        "codex": {
            "package": codex.package,
            "version": codex.version,
            "path": str(codex.root.relative_to(installed_cli_dir)),
            "installed_at": codex.installed_at,
        }
    }
    (own_agents / "installed.json").write_text(json.dumps(record))
    return own_agents


@dataclass
class Local:
    thread: BackendThread
    conn: dict[str, Any]
    stub: ProviderStub
    key: str


@pytest.fixture
def local(
    agents_with_codex: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Local]:
    marker = uuid.uuid4().hex
    key = f"sk-test-{marker}"
    stub = ProviderStub(command=FIX_COMMAND, expected_key=key).start()
    thread = start_backend(tmp_path / "data", agents_dir=agents_with_codex)
    _, api_key = thread.create_key()
    conn = {"backend_base": thread.url, "api_key": api_key}
    for name, value in (("OPENAI_API_KEY", key), ("OPENAI_BASE_URL", stub.url + "/v1")):
        ep.store_credential(
            credential_name=name, credential_type=name, credential_value=value, **conn
        )
    monkeypatch.setenv("ENVPOOLS_API_URL", thread.url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", api_key)
    yield Local(thread, conn, stub, key)
    thread.stop()
    stub.stop()


def test_a_custom_agent_runs_in_a_job_beside_a_built_in(
    local: Local,
    agents_with_codex: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added = cli(
        capsys, monkeypatch, "agents", "add", str(write_agent(tmp_path / "tiny")), "-o", "json"
    )
    assert added.code == 0, added.err
    assert json.loads(added.out)[0]["kind"] == "custom"

    # It is offered wherever an agent is chosen: capabilities, the list, completion.
    caps = {a["name"]: a for a in ep.get_capabilities(**local.conn)["agents"]}
    tiny = caps["tiny-agent"]
    assert tiny["available"] is True, tiny
    assert tiny["custom"] is True and tiny["providers"] == ["openai"]
    assert tiny["models"] == ["gpt-5-mini"] and tiny["version"] == "tiny-agent 0.1.0"
    listed = cli(capsys, monkeypatch, "agents", "list", "-o", "json")
    rows = {r["agent"]: r for r in json.loads(listed.out)}
    assert rows["tiny-agent"]["kind"] == "custom" and rows["tiny-agent"]["available"] is True
    assert rows["tiny-agent"]["installed"] == "0.1.0"
    assert rows["codex"]["kind"] == "built-in" and rows["codex"]["available"] is True
    document = ep.get_openapi_schema(**local.conn)
    spec = document["components"]["schemas"]["LocalAgentSpec"]
    assert "tiny-agent" in spec["properties"]["harness"]["enum"]
    env = {"ENVPOOLS_API_URL": local.thread.url, "ENVPOOLS_API_KEY": local.conn["api_key"]}
    assert "tiny-agent" in tab("rollouts", "create", "--agent", "", env=env)

    suite = tmp_path / "suite"
    shutil.copytree(EXAMPLE, suite / "fix-failing-test")
    ran = cli(
        capsys,
        monkeypatch,
        "jobs",
        "run",
        "--tasks",
        str(suite),
        "--agent",
        "codex",
        "--agent",
        "tiny-agent",
        "--agent-timeout",
        "240",
        "-o",
        "json",
    )
    assert ran.code == 0, ran.err
    job = json.loads(ran.out)
    groups = {g["agent"]: g for g in job["result"]["groups"]}
    assert set(groups) == {"codex", "tiny-agent"}, groups

    rollouts = ep.list_rollouts(pool_id=job["job"]["pool_id"], limit=10, **local.conn)["rollouts"]
    by_agent = {r["agent"]["harness"]: r for r in rollouts}
    for harness in ("codex", "tiny-agent"):
        done = by_agent[harness]
        assert done["status"] == "succeeded", done
        assert done["reward_primary"] == 1.0, harness

    tiny_run = by_agent["tiny-agent"]
    assert tiny_run["agent"]["model_id"] == "gpt-5-mini", "the manifest's default model"
    events = list(ep.stream_rollout_events(tiny_run["rollout_id"], **local.conn))
    data = [e["data"] for e in events if e["event"] == "agent"]
    kinds = [d.get("kind") for d in data]
    assert {"usage", "tool_call", "tool_result", "message", "result"} <= set(kinds), kinds
    call = next(d for d in data if d.get("kind") == "tool_call")
    assert "sed -i" in call["input"]["command"]
    assert any(d.get("text") == local.stub.final_text for d in data if d.get("kind") == "result")
    assert {"stream": "output", "text": "tiny-agent starting"}.items() <= next(
        d for d in data if d.get("stream") == "output"
    ).items()

    # The usage is what the provider handed this agent (its chat completions calls).
    chat = [a for a in local.stub.answers if a.api == "chat"]
    given = Usage(
        prompt=sum(a.usage.prompt for a in chat),
        cached=sum(a.usage.cached for a in chat),
        output=sum(a.usage.output for a in chat),
    )
    assert [a.turn for a in chat] == ["tool_call", "final"]
    usage = ep.get_rollout_usage(tiny_run["rollout_id"], **local.conn)
    assert (usage["llm_input_tokens"], usage["llm_cache_tokens"], usage["llm_output_tokens"]) == (
        given.prompt,
        given.cached,
        given.output,
    )
    assert usage["model_id"] == "gpt-5-mini" and usage["provider_costs"]["openai"] > 0

    # Its events are its trajectory: the call and its result, then the final message,
    # each model call's step with the tokens the provider handed out for it.
    archive = ep.download_artifacts_zip(tiny_run["rollout_id"], **local.conn)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        trajectory = Trajectory.model_validate_json(opened.read("trajectory.json"))
    assert trajectory.agent.name == "tiny-agent"
    assert [s.source for s in trajectory.steps] == ["user", "agent", "agent"]
    assert "Fix the failing test" in str(trajectory.steps[0].message)
    call_step, final_step = trajectory.steps[1:]
    assert call_step.tool_calls and call_step.observation, call_step
    (tool_call,) = call_step.tool_calls
    assert tool_call.function_name == "bash" and "sed -i" in tool_call.arguments["command"]
    (result,) = call_step.observation.results
    assert result.source_call_id == tool_call.tool_call_id
    assert "OK" in str(result.content) and result.extra == {"exit_code": 0}
    assert final_step.message == local.stub.final_text and not final_step.tool_calls
    for step, turn in ((call_step, "tool_call"), (final_step, "final")):
        assert step.metrics is not None and step.metrics.extra is not None, step
        assert step.metrics.extra["source"] == "gateway", "linked to the recorded call"
        assert (
            step.metrics.prompt_tokens,
            step.metrics.cached_tokens,
            step.metrics.completion_tokens,
        ) == (TURN_USAGE[turn].prompt, TURN_USAGE[turn].cached, TURN_USAGE[turn].output)
    final = trajectory.final_metrics
    assert final is not None and final.total_prompt_tokens == given.prompt
    assert final.extra and "outside_steps" not in final.extra
    (bash,) = trajectory.agent.tool_definitions or []
    assert bash["function"]["name"] == "bash", "the tools the agent offered, as sent"

    # The provider saw only the stored key; the agent only ever held the placeholder.
    assert local.stub.keys_seen == {local.key}
    visible = json.dumps(events) + json.dumps(usage) + ran.out + ran.err
    assert local.key not in visible


def _wheel(folder: Path) -> Path:
    """A wheel (made by hand: no build backend needed) whose entry point names its manifest."""
    name, version = "tiny_packaged_agent", "0.2.0"
    info = f"{name}-{version}.dist-info"
    manifest = (
        MANIFEST.replace('name = "tiny-agent"', 'name = "tiny-packaged"')
        .replace('version = "0.1.0"', f'version = "{version}"')
        .replace('[install]\nfiles = ["agent.py"]\n', "")
        .replace('"python3", "{agent_dir}/agent.py"', f'"{{python}}", "-m", "{name}.agent"')
        .replace(
            """["python3", "-c", "print('tiny-agent 0.1.0')"]""",
            f"""["{{python}}", "-c", "import {name}; print('{version}')"]""",
        )
    )
    files = {
        f"{name}/__init__.py": "",
        f"{name}/agent.py": AGENT_PY,
        f"{name}/agent.toml": manifest,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[envpools.agents]\ntiny-packaged = {name}\n",
    }
    record = []
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def test_a_packaged_agent_is_added_from_its_entry_point(
    own_agents: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wheel = _wheel(tmp_path)
    added = cli(capsys, monkeypatch, "agents", "add", str(wheel), "-o", "json")
    assert added.code == 0, added.err
    row = json.loads(added.out)[0]
    assert row["agent"] == "tiny-packaged" and row["package"] == str(wheel)
    python = own_agents / "custom" / "tiny-packaged" / "venv" / "bin" / "python"
    assert python.exists()
    # It runs in the sandbox: {python} is the agent's venv, made with the sandbox's Python.
    listed = cli(capsys, monkeypatch, "agents", "list", "-o", "json")
    rows = {r["agent"]: r for r in json.loads(listed.out)}
    assert rows["tiny-packaged"]["available"] is True, rows["tiny-packaged"]
    assert rows["tiny-packaged"]["runs_version"] == "0.2.0"

    # A package without the entry point is refused, and says what it lacks.
    plain = tmp_path / "plain"
    plain.mkdir()
    bare = _wheel(plain)
    with zipfile.ZipFile(bare) as archive:
        members = {m: archive.read(m) for m in archive.namelist() if "entry_points" not in m}
    with zipfile.ZipFile(bare, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    refused = cli(capsys, monkeypatch, "agents", "add", str(bare), "--force")
    assert refused.code == 2 and "has no 'envpools.agents' entry point" in refused.err

    removed = cli(capsys, monkeypatch, "agents", "remove", "tiny-packaged")
    assert removed.code == 0, removed.err
    assert not (own_agents / "custom" / "tiny-packaged").exists()
