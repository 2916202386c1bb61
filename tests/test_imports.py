"""Import budgets: what a module pulls in is part of its design (DESIGN.md, budgets)."""

from __future__ import annotations

import json
import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_client_imports_no_cli_or_server_modules() -> None:
    modules = loaded_after("import envpools_cli.client")
    forbidden = {
        "typer",
        "rich",
        "keyring",
        "fastapi",
        "starlette",
        "uvicorn",
        "click",
        "pygments",
        "yaml",
        "secretstorage",
    }
    assert top_level(modules) & forbidden == set()
    assert not [m for m in modules if m.startswith("envpools_cli.server")]
    # The models (pydantic) come with the first model asked for, not with the client.
    assert "httpx" in modules and "pydantic" not in modules
    assert "envpools_cli.models" in loaded_after("from envpools_cli.client import AgentSpec")


def test_models_import_no_httpx() -> None:
    modules = loaded_after("import envpools_cli.models")
    assert "httpx" not in top_level(modules)
