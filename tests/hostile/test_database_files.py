"""Finding 4 (MEDIUM): the database's -wal/-shm files were 0644 and held credential values."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli import client as ep
from tests.cli.test_cli_processes import secret_service  # a real Secret Service

from .conftest import Backend, hostile_run, make_task

__all__ = ["secret_service"]

VALUE = "sk-hostile-credential-value-7f3e9a1c"


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # the usual default, under which SQLite made 0644 files
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_files_are_private_and_hold_no_secret_in_clear(
    open_umask: None, backend_factory: object
) -> None:
    backend: Backend = backend_factory()  # type: ignore[operator]
    ep.store_credential(
        credential_name="OPENAI_API_KEY",
        credential_type="OPENAI_API_KEY",
        credential_value=VALUE,
        **backend.conn,
    )
    listed = ep.list_credentials(**backend.conn)
    assert VALUE not in str(listed)

    data_dir = backend.data_dir
    assert _mode(data_dir) == 0o700
    db = data_dir / "envpools.db"
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert path.exists(), path
        assert _mode(path) == 0o600, f"{path.name} is {oct(_mode(path))}"
    for path in data_dir.iterdir():
        if path.is_file():
            content = path.read_bytes()
            assert VALUE.encode() not in content, f"{path.name} holds the credential in clear"
            assert backend.key.encode() not in content, f"{path.name} holds the API key"
            if path.name not in ("envpools.db", "envpools.db-wal", "envpools.db-shm"):
                assert _mode(path) & 0o077 == 0, f"{path.name} is readable by others"


def test_the_credential_key_is_kept_outside_the_database(
    backend_factory: object, tmp_path: Path
) -> None:
    backend: Backend = backend_factory()  # type: ignore[operator]
    stored = ep.store_credential(
        credential_name="ANTHROPIC_API_KEY",
        credential_type="ANTHROPIC_API_KEY",
        credential_value=VALUE,
        **backend.conn,
    )
    key_file = backend.data_dir / "credentials.key"
    assert key_file.exists() and _mode(key_file) == 0o600, "no keyring here: a 0600 file"
    store = backend.thread.backend.ctx.store
    assert store.credential_values(backend.org_id)["ANTHROPIC_API_KEY"][1] == VALUE

    key_file.unlink()  # the key is lost: say so, never make up a new one silently
    store.vault._fernet = None
    with pytest.raises(ep.APIError) as lost:
        ep.rotate_credential(stored["credential_id"], new_value="x" * 20, **backend.conn)
    assert lost.value.status_code == 503 and "credentials.key" in lost.value.message
    if shutil.which("bwrap"):  # a task that needs no credential still runs, with a warning
        run = hostile_run(backend, make_task(tmp_path, "no-credentials-needed"))
        assert run.doc["status"] == "succeeded"
        assert any("cannot be read" in str(e["data"].get("message")) for e in run.events)
    ep.delete_credential(stored["credential_id"], **backend.conn)
    ep.store_credential(
        credential_name="ANTHROPIC_API_KEY",
        credential_type="ANTHROPIC_API_KEY",
        credential_value=VALUE + "-new",
        **backend.conn,
    )
    assert store.credential_values(backend.org_id)["ANTHROPIC_API_KEY"][1] == VALUE + "-new"


def test_the_credential_key_goes_to_a_real_keyring_when_one_answers(
    secret_service: str, backend_factory: object
) -> None:
    import keyring
    import keyring.core
    from keyring.backends import fail

    keyring.core.init_backend()  # this process chose "no keyring" before D-Bus was up
    try:
        backend: Backend = backend_factory()  # type: ignore[operator]
        ep.store_credential(
            credential_name="OPENAI_API_KEY",
            credential_type="OPENAI_API_KEY",
            credential_value=VALUE,
            **backend.conn,
        )
        assert not (backend.data_dir / "credentials.key").exists()
        store = backend.thread.backend.ctx.store
        assert store.vault.where() == "keyring"
        from envpools_cli.server.state.vault import SERVICE

        assert keyring.get_password(SERVICE, str(backend.data_dir.resolve()))
        for path in backend.data_dir.iterdir():
            if path.is_file():
                assert VALUE.encode() not in path.read_bytes()
        assert store.credential_values(backend.org_id)["OPENAI_API_KEY"][1] == VALUE
    finally:
        keyring.set_keyring(fail.Keyring())  # the bus goes away with the fixture
