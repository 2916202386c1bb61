"""The client's public functions and methods are ordinary ``def``s, current with resources.py.

``scripts/update-client`` writes them from the resource methods; these tests hold that
what is checked in is what it writes, and that ``inspect`` and ``help()`` see plain
functions with full signatures, on the class and on an instance.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import pydoc
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import envpools_cli.client as surface
from envpools_cli.client import EnvironmentPoolsClient, RolloutHandle, api
from envpools_cli.client.namespaces import PoolsNamespace, RolloutsNamespace

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "update-client"


def _generator() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("update_client", str(GENERATOR))
    spec = importlib.util.spec_from_loader("update_client", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["update_client"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


GEN = _generator()


def test_the_generated_functions_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def _expected_parameters(delegate: Any, skip: int, connection: bool) -> list[tuple[Any, ...]]:
    method = inspect.signature(delegate.function)
    params = [
        (p.name, p.kind, p.annotation, delegate.preset.get(p.name, p.default))
        for p in list(method.parameters.values())[skip:]
    ]
    if connection:
        params += [
            (name, inspect.Parameter.KEYWORD_ONLY, kind, None)
            for name, kind in GEN.CONNECTION
            if not (delegate.resource._fixed and name == "api_version")
        ]
    return params


def _parameters(function: Any) -> list[tuple[Any, ...]]:
    return [
        (p.name, p.kind, p.annotation, p.default)
        for p in inspect.signature(function).parameters.values()
    ]


def test_module_functions_are_plain_functions_with_the_resource_signatures() -> None:
    assert {d.name for d in GEN.MODULE_FUNCTIONS} | set(GEN.REEXPORTED) == set(api.__all__)
    for delegate in GEN.MODULE_FUNCTIONS:
        function = getattr(surface, delegate.name)
        assert inspect.isfunction(function), delegate.name
        assert function.__module__ == "envpools_cli.client.api"
        assert _parameters(function) == _expected_parameters(delegate, 1, connection=True)
        assert inspect.getdoc(function) == inspect.getdoc(delegate.function), delegate.name
        page = pydoc.render_doc(function, renderer=pydoc.plaintext)
        assert f"{delegate.name}(" in page and "backend_base: 'str | None' = None" in page


def test_methods_are_methods_on_the_class_and_on_an_instance() -> None:
    client = EnvironmentPoolsClient(skip_plan_check=True, backend_base="http://m.test")
    handle = RolloutHandle("r1")
    owners: dict[type[Any], tuple[Any, list[Any], int]] = {
        RolloutHandle: (handle, GEN.HANDLE, 2),
        RolloutsNamespace: (client.rollouts, GEN.METHODS["namespaces.py", "RolloutsNamespace"], 1),
        PoolsNamespace: (client.pools, GEN.METHODS["namespaces.py", "PoolsNamespace"], 1),
    }
    for cls, (instance, delegates, skip) in owners.items():
        page = pydoc.render_doc(cls, renderer=pydoc.plaintext)
        methods_part = page.partition("Data descriptors defined here")[0]
        for delegate in delegates:
            on_class = getattr(cls, delegate.name)
            bound = getattr(instance, delegate.name)
            assert inspect.isfunction(on_class), f"{cls.__name__}.{delegate.name}"
            assert inspect.ismethod(bound) and bound.__self__ is instance
            expected = _expected_parameters(delegate, skip, connection=False)
            assert _parameters(bound) == expected, f"{cls.__name__}.{delegate.name}"
            assert _parameters(on_class)[0][0] == "self"
            if delegate.then is None:
                assert inspect.getdoc(on_class) == inspect.getdoc(delegate.function)
            # help(): listed as a method with its signature, never as a data attribute.
            assert f"{delegate.name}(self" in methods_part, f"{cls.__name__}.{delegate.name}"
            assert f"{delegate.name} = " not in page


def test_the_handle_streams_with_reconnection_as_its_signature_says() -> None:
    shown = inspect.signature(RolloutHandle.events).parameters["auto_reconnect"]
    assert (shown.default, shown.annotation) == (True, "bool")
    assert (
        inspect.signature(surface.stream_rollout_events).parameters["auto_reconnect"].default
        is False
    )
    text = pydoc.render_doc(RolloutHandle, renderer=pydoc.plaintext)
    assert "auto_reconnect: 'bool' = True" in text
    assert callable(RolloutHandle.events) and inspect.isfunction(RolloutHandle.download)


def test_the_sdk_spellings_of_an_artifact_reach_the_same_request() -> None:
    import httpx

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, content=b"bytes")

    session = surface.HTTPSession(transport=httpx.MockTransport(answer))
    handle = RolloutHandle("r1", backend_base="http://a.test", api_key="k", session=session)
    assert handle.download("logs/a.txt") == b"bytes"
    assert handle.download(path="logs/a.txt") == b"bytes"
    where: dict[str, Any] = {"backend_base": "http://a.test", "api_key": "k", "session": session}
    assert surface.fetch_artifact("r1", artifact_path="logs/a.txt", **where) == b"bytes"
    assert surface.fetch_artifact("r1", path="logs/a.txt", **where) == b"bytes"
    assert seen == ["/v1/rollouts/r1/artifacts/logs/a.txt"] * 4
    client = EnvironmentPoolsClient(skip_plan_check=True, **where)
    assert client.rollouts.artifacts.fetch("r1", "logs/a.txt") == b"bytes"
