"""API keys per profile: the OS keyring, with a 0600 file when no keyring works.

Every keyring call runs in a worker thread with a timeout, because Secret Service
backends can block forever (a locked collection, a missing D-Bus). When the keyring is
unavailable, slow or failing, keys go to ``credentials.toml`` (mode 0600) in the config
dir, with a warning. ``ENVPOOLS_API_KEY`` / ``SYNTH_API_KEY``, or a key in that file,
skip the keyring: its module is not even imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from envpools_cli import paths

__all__ = [
    "KeyNotFound",
    "KeyringUnavailable",
    "StoredKey",
    "delete_key",
    "env_key",
    "get_key",
    "key_problem",
    "key_quickly",
    "keyring_get",
    "keyring_set",
    "mask",
    "set_key",
    "stored_file_key",
    "stored_key",
]

SERVICE = "envpools"
READ_TIMEOUT = 3.0
WRITE_TIMEOUT = 10.0
T = TypeVar("T")


class KeyNotFound(Exception):
    """No API key for the profile anywhere."""


class KeyringUnavailable(Exception):
    """The OS keyring cannot be used (none, locked, too slow)."""


@dataclass(frozen=True)
class StoredKey:
    value: str
    source: str
    """``env ENVPOOLS_API_KEY``, ``keyring (<backend>)`` or ``file <path>``."""

    def __repr__(self) -> str:  # never show the key, even in a debugger
        return f"StoredKey(value={mask(self.value)!r}, source={self.source!r})"


def mask(key: str) -> str:
    """Enough to recognise a key, not enough to use it."""
    if len(key) <= 12:
        return "****"
    return f"{key[:6]}…{key[-4:]}"


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key (it must fit an HTTP header as is), or None."""
    for position, char in enumerate(key):
        if char.isspace():
            return f"holds whitespace at position {position}: copy it again without spaces"
        if not char.isascii():
            return f"holds a non-ASCII character at position {position}: API keys are ASCII"
        if not char.isprintable():
            return f"holds a control character at position {position}"
    return None


def env_key() -> StoredKey | None:
    from envpools_cli.precedence import from_env

    found = from_env("api_key")
    return None if found is None or found.value is None else StoredKey(found.value, found.source)


def key_file() -> Path:
    return paths.config_dir() / "credentials.toml"


def _read_file() -> dict[str, str]:
    target = key_file()
    if not target.is_file():
        return {}
    import tomllib  # here: a key from the environment needs no TOML parser (~4 ms)

    try:
        document = tomllib.loads(target.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    keys = document.get("api_keys") or {}
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}


def _write_file(keys: dict[str, str]) -> None:
    import tomli_w

    target = key_file()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(tomli_w.dumps({"api_keys": keys}))
    os.chmod(temporary, 0o600)
    temporary.replace(target)


def _forced_file() -> bool:
    return os.environ.get("ENVPOOLS_KEYRING", "").lower() in ("file", "none", "off", "0")


def _with_timeout(call: Callable[[], T], timeout: float) -> T:
    # A daemon thread, not an executor: a hung backend must not hold the process open
    # at exit (executor threads are joined at interpreter shutdown).
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="keyring", daemon=True).start()
    if not done.wait(timeout):
        raise KeyringUnavailable(f"the keyring did not answer within {timeout:g}s")
    if "error" in outcome:  # any backend failure means: use the file
        error = outcome["error"]
        raise KeyringUnavailable(f"{type(error).__name__}: {error}") from None
    value: T = outcome["value"]
    return value


def _backend() -> Any:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        raise KeyringUnavailable("no usable keyring backend")
    return backend


def _backend_name(backend: Any) -> str:
    return f"{type(backend).__module__.rsplit('.', 1)[-1]}.{type(backend).__name__}"


def keyring_get(service: str, account: str, *, timeout: float = READ_TIMEOUT) -> str | None:
    """A secret from the OS keyring, bounded in time; raises ``KeyringUnavailable``."""
    if _forced_file():
        raise KeyringUnavailable("ENVPOOLS_KEYRING=file")

    def lookup() -> str | None:
        value = _backend().get_password(service, account)
        return str(value) if value is not None else None

    return _with_timeout(lookup, timeout)


def keyring_set(service: str, account: str, value: str) -> str:
    """Store a secret in the OS keyring; return the backend's name, or raise."""
    if _forced_file():
        raise KeyringUnavailable("ENVPOOLS_KEYRING=file")

    def store() -> str:
        backend = _backend()
        backend.set_password(service, account, value)
        return _backend_name(backend)

    return _with_timeout(store, WRITE_TIMEOUT)


def get_key(profile: str, *, warn: Callable[[str], None] | None = None) -> StoredKey:
    """The key for ``profile``: env, then keyring, then the file."""
    return env_key() or stored_key(profile, warn=warn)


def stored_file_key(profile: str) -> StoredKey | None:
    """The key the 0600 file holds for ``profile``, if any (the keyring is not asked)."""
    value = _read_file().get(profile)
    return StoredKey(value, f"file {key_file()}") if value else None


def key_quickly(profile: str, *, keyring_timeout: float) -> str | None:
    """The key without waiting long (a Tab press): env, the file, then a bounded keyring try."""
    found = env_key()
    if found:
        return found.value
    on_file = _read_file().get(profile)
    if on_file:
        return on_file
    try:
        return keyring_get(SERVICE, profile, timeout=keyring_timeout)
    except KeyringUnavailable:
        return None


def stored_key(profile: str, *, warn: Callable[[str], None] | None = None) -> StoredKey:
    """The key stored for ``profile`` (file, then keyring), ignoring the environment.

    A key is in the file only when the keyring could not take it (``set_key`` removes
    the file's copy once the keyring holds one): then the keyring is not even imported
    (~75 ms, and a D-Bus round trip, on every command).
    """
    on_file = stored_file_key(profile)
    if on_file is not None:
        return on_file
    if not _forced_file():
        try:

            def lookup() -> tuple[str | None, str]:
                backend = _backend()
                return backend.get_password(SERVICE, profile), _backend_name(backend)

            value, name = _with_timeout(lookup, READ_TIMEOUT)
            if value:
                return StoredKey(value, f"keyring ({name})")
        except KeyringUnavailable as exc:
            if warn:
                warn(f"keyring unavailable ({exc}); no key in {key_file()} either")
    raise KeyNotFound(profile)


def set_key(
    profile: str,
    value: str,
    *,
    warn: Callable[[str], None] | None = None,
    insecure_storage: bool = False,
) -> str:
    """Store the key; return where it went."""
    if not insecure_storage and not _forced_file():
        try:

            def store() -> str:
                backend = _backend()
                backend.set_password(SERVICE, profile, value)
                return _backend_name(backend)

            name = _with_timeout(store, WRITE_TIMEOUT)
            keys = _read_file()
            if keys.pop(profile, None) is not None:
                _write_file(keys)
            return f"keyring ({name})"
        except KeyringUnavailable as exc:
            if warn:
                warn(
                    f"keyring unavailable ({exc}); storing the key in {key_file()} "
                    "(readable only by you)"
                )
    keys = _read_file()
    keys[profile] = value
    _write_file(keys)
    return f"file {key_file()}"


def delete_key(profile: str) -> list[str]:
    """Remove the key everywhere; return where it was."""
    removed = []
    if not _forced_file():
        try:

            def remove() -> bool:
                import keyring.errors

                backend = _backend()
                try:
                    backend.delete_password(SERVICE, profile)
                except keyring.errors.PasswordDeleteError:
                    return False
                return True

            if _with_timeout(remove, WRITE_TIMEOUT):
                removed.append("keyring")
        except KeyringUnavailable:
            pass
    keys = _read_file()
    if keys.pop(profile, None) is not None:
        _write_file(keys)
        removed.append("file")
    return removed
