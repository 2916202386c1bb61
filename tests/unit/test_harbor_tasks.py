"""Harbor task loading and the workspace a Dockerfile would lay out, without Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from envpools_cli.server.tasks import TaskError, load_task, parse_dockerfile


def test_parse_dockerfile_final_stage() -> None:
    layout = parse_dockerfile("""
        # build stage
        FROM golang:1.22 AS build
        WORKDIR /src
        COPY . .
        RUN go build ./...

        FROM python:3.12-slim
        ENV PIP_NO_CACHE_DIR=1 LANG=C.UTF-8
        ENV OLD_STYLE some value
        WORKDIR /workspace
        WORKDIR app
        COPY --chown=1000:1000 requirements.txt ./
        COPY ["src/", "lib/"]
        ADD https://example.com/x.tgz /tmp/
        COPY --from=build /src/bin /usr/local/bin/
        RUN pip install -r requirements.txt \\
            && echo done
    """)
    assert layout.base_image == "python:3.12-slim"
    assert layout.workdir == "/workspace/app"
    assert layout.env == {"PIP_NO_CACHE_DIR": "1", "LANG": "C.UTF-8", "OLD_STYLE": "some value"}
    assert [(c.sources, c.dest) for c in layout.copies] == [
        (["requirements.txt"], "/workspace/app/"),
        (["src/"], "/workspace/app/lib/"),
    ]
    assert layout.runs == ["pip install -r requirements.txt && echo done"]
    assert len(layout.skipped) == 2, "ADD <url> and COPY --from need Docker"


def make(root: Path, dockerfile: str | None, files: dict[str, str]) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test.sh").write_text("true\n")
    (root / "instruction.md").write_text("Do it.\n")
    env = root / "environment"
    env.mkdir()
    if dockerfile is not None:
        (env / "Dockerfile").write_text(dockerfile)
    for name, content in files.items():
        (env / name).parent.mkdir(parents=True, exist_ok=True)
        (env / name).write_text(content)
    return root


def test_workspace_follows_the_copies(tmp_path: Path) -> None:
    task = load_task(
        make(
            tmp_path / "t",
            "FROM python:3.12\nWORKDIR /app\n"
            "COPY repo/ /app/\nCOPY cfg/settings.toml /app/conf/\n"
            "COPY one.txt /app/renamed.txt\nCOPY tool.sh /usr/local/bin/tool\n"
            "RUN apt-get install -y jq\n",
            {
                "repo/main.py": "x",
                "repo/pkg/a.py": "a",
                "cfg/settings.toml": "s",
                "one.txt": "1",
                "tool.sh": "t",
                "unused.txt": "u",
            },
        )
    )
    workspace = tmp_path / "ws"
    notes = task.seed_workspace(workspace)
    found = sorted(p.relative_to(workspace).as_posix() for p in workspace.rglob("*") if p.is_file())
    assert found == ["conf/settings.toml", "main.py", "pkg/a.py", "renamed.txt"]
    assert any("outside WORKDIR" in n for n in notes)
    assert any("RUN lines were not executed" in n and "apt-get install -y jq" in n for n in notes)


def test_workdir_elsewhere_and_copy_dot(tmp_path: Path) -> None:
    task = load_task(make(tmp_path / "t", "FROM x\nWORKDIR /testbed\nCOPY . .\n", {"a.py": "a"}))
    assert task.workdir == "/testbed"
    workspace = tmp_path / "ws"
    task.seed_workspace(workspace)
    assert (workspace / "a.py").read_text() == "a"
    assert (workspace / "Dockerfile").exists(), "COPY . . copies the whole context"


def test_no_dockerfile_means_all_of_environment(tmp_path: Path) -> None:
    task = load_task(make(tmp_path / "t", None, {"src/x.py": "x"}))
    workspace = tmp_path / "ws"
    notes = task.seed_workspace(workspace)
    assert (workspace / "src" / "x.py").exists()
    assert task.workdir == "/app"
    assert "no environment/Dockerfile" in notes[0]


def test_missing_source_is_reported_not_fatal(tmp_path: Path) -> None:
    task = load_task(make(tmp_path / "t", "FROM x\nWORKDIR /app\nCOPY nothere /app/\n", {}))
    notes = task.seed_workspace(tmp_path / "ws")
    assert "'nothere' not found" in notes[0]


def test_copy_cannot_reach_outside_the_context(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s")
    task = load_task(
        make(tmp_path / "t", "FROM x\nWORKDIR /app\nCOPY ../../secret.txt /app/\n", {})
    )
    task.seed_workspace(tmp_path / "ws")
    assert not (tmp_path / "ws" / "secret.txt").exists()


def test_task_toml_settings(tmp_path: Path) -> None:
    root = make(tmp_path / "t", None, {})
    (root / "task.toml").write_text(
        'version = "1.0"\n[agent]\ntimeout_sec = 120.0\n[verifier]\ntimeout_sec = 30\n'
        'env = { MODE = "strict" }\n[environment]\nallow_internet = true\nmemory_mb = 512\n'
    )
    task = load_task(root)
    assert task.agent_timeout_sec == 120.0 and task.verifier_timeout_sec == 30.0
    assert task.verifier_env == {"MODE": "strict"}
    assert task.verifier_network is True and task.environment["memory_mb"] == 512
    assert not task.has_solution


@pytest.mark.parametrize("broken", ["no-dir", "no-instruction", "no-tests", "bad-toml"])
def test_broken_tasks_say_why(tmp_path: Path, broken: str) -> None:
    root = make(tmp_path / "t", None, {})
    if broken == "no-dir":
        root = tmp_path / "missing"
    elif broken == "no-instruction":
        (root / "instruction.md").unlink()
    elif broken == "no-tests":
        (root / "tests" / "test.sh").unlink()
    else:
        (root / "task.toml").write_text("this = = broken")
    with pytest.raises(TaskError) as info:
        load_task(root)
    assert info.value.code == "bad_task_source"
