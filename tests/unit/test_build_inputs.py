"""What a build is given: the Dockerfile check and the context copy, each on its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envpools_cli.server.sandbox.build_context import copy_context
from envpools_cli.server.sandbox.dockerfile import (
    DockerfileRefused,
    check_dockerfile,
    runs_commands,
)
from envpools_cli.server.sandbox.engine import builder_advisories

LINK_FORM = "FROM base\nRUN --mount=type=bind,source=rootlink,target=/h,rw ls /h\n"
STAGE_FORM = (
    "FROM base AS evil\nRUN ln -s / /rootlink\nFROM base\n"
    "RUN --mount=type=bind,from=evil,source=/rootlink,target=/h,rw ls /h\n"
)

REFUSED = {
    "link form": LINK_FORM,
    "stage form": STAGE_FORM,
    "bind by default": "FROM x\nRUN --mount=source=rootlink,target=/h ls\n",
    "cache": "FROM x\nRUN --mount=type=cache,target=/root/.cache pip install x\n",
    "secret": "FROM x\nRUN --mount=type=secret,id=key cat /run/secrets/key\n",
    "ssh": "FROM x\nRUN --mount=type=ssh git clone x\n",
    "tmpfs from a stage": "FROM x\nRUN --mount=type=tmpfs,from=evil,target=/h ls\n",
    "network": "FROM x\nRUN --network=host curl 127.0.0.1\n",
    "security": "FROM x\nRUN --security=insecure ls\n",
    "a variable": "FROM x\nARG M=type=bind,source=rootlink,target=/h\nRUN --mount=$M ls\n",
    "quoted": 'FROM x\nRUN --mount="type=bind,source=rootlink,target=/h" ls\n',
    "onbuild": "FROM x\nONBUILD RUN --mount=type=bind,source=l,target=/h ls\n",
    "lower case": "from x\nrun --mount=type=bind,source=l,target=/h ls\n",
    "split over lines": "FROM x\nRUN --mo\\\n# a comment\n\nunt=type=bind,source=l,target=/h ls\n",
    "escape directive": "# escape=`\nFROM x\nRUN --mo`\nunt=type=bind,source=l,target=/h ls\n",
    "tab after RUN": "FROM x\nRUN\t--mount=type=bind,source=l,target=/h ls\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_build_mounts_and_flags_are_refused(name: str) -> None:
    with pytest.raises(DockerfileRefused) as refused:
        check_dockerfile(REFUSED[name], allow_mounts=False)
    assert "environment/Dockerfile line" in str(refused.value)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_backend_setting_allows_them(name: str) -> None:
    check_dockerfile(REFUSED[name], allow_mounts=True)


def test_plain_dockerfiles_pass() -> None:
    plain = (
        "# syntax=docker/dockerfile:1\nFROM python:3.12-slim AS build\n"
        "RUN apt-get update && \\\n    apt-get install -y --no-install-recommends git\n"
        "RUN --mount=type=tmpfs,target=/scratch make -C /scratch || true\n"
        "COPY --from=build /usr/bin/git /usr/bin/git\nWORKDIR /app\nCOPY . /app\n"
        'RUN ["python", "-c", "print(\'--mount=type=bind\')"]\n'
    )
    check_dockerfile(plain, allow_mounts=False)
    assert runs_commands(plain)
    assert not runs_commands("FROM x\nWORKDIR /app\nCOPY repo/ /app/\n")
    assert runs_commands("FROM x\nONBUILD RUN make\n")


def test_a_context_copy_keeps_no_link_that_leaves_it(tmp_path: Path) -> None:
    source = tmp_path / "environment"
    (source / "sub" / "deep").mkdir(parents=True)
    (source / "file.txt").write_text("kept\n")
    (source / "sub" / "deep" / "data").write_text("kept too\n")
    links = {
        "rootlink": "/",
        "absolute": "/etc/passwd",
        "climbs": "../..",
        "sub/up": "..",  # inside: sub/.. is the top
        "chain": "sub/up/..",  # each step looks inside, together they climb out
        "inside": "sub/deep/data",
        "dangling": "nothing-here",
    }
    for name, target in links.items():
        os.symlink(target, source / name)
    os.mkfifo(source / "pipe")
    target = tmp_path / "copy"
    left_out = copy_context(source, target)
    assert left_out == ["absolute", "chain", "climbs", "pipe", "rootlink"]
    assert (target / "file.txt").read_text() == "kept\n"
    assert os.readlink(target / "inside") == "sub/deep/data"
    assert os.readlink(target / "sub" / "up") == ".."
    assert os.path.islink(target / "dangling")
    for name in left_out:
        assert not os.path.lexists(target / name)
    for path in target.rglob("*"):
        assert os.path.realpath(path).startswith(str(target.resolve())), path


def test_engine_versions_with_builder_escapes_are_known() -> None:
    assert builder_advisories("podman", "4.3.1")
    assert "CVE-2024-1753" in builder_advisories("podman", "4.9.3")[0]
    assert builder_advisories("podman", "4.9.4") == []
    assert builder_advisories("podman", "5.2.0") == []
    assert builder_advisories("docker", "24.0.7")
    assert builder_advisories("docker", "27.3.1") == []
    assert builder_advisories("podman", "unknown"), "an unreadable version counts as old"
