"""Values a Tab press offers: from the backend (cached briefly), the config and the job store.

A Tab press must answer in well under a second even when the backend is slow or down,
so backend answers are kept for ``FRESH_SEC`` in the cache dir, a request gets at most
``TIMEOUT_SEC``, and a backend that failed is left alone for ``BACKOFF_SEC`` (the last
answer, however old, is offered meanwhile). Requests use ``http.client`` directly: the
client core (httpx, pydantic) would cost more to import than the whole budget.
"""

from __future__ import annotations

import os
import time
from urllib.parse import quote, urlencode, urlsplit

from envpools_cli import paths
from envpools_cli.completion import cache as files

TYPE_CHECKING = False  # typing, dataclasses and hashlib cost more than a Tab press may take
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Getter = Callable[[str, dict[str, Any]], Any]

__all__ = ["BACKOFF_SEC", "FRESH_SEC", "TIMEOUT_SEC", "Backend", "Item", "local_values"]

FRESH_SEC = 20.0
BACKOFF_SEC = 10.0
TIMEOUT_SEC = 0.5
KEYRING_TIMEOUT_SEC = 0.5
RECENT_ROLLOUTS = 50

Item = tuple[str, str]
"""A value and a few words about it (shown by zsh and fish)."""


class Backend:
    """Cached reads of one backend (URL + profile), as ``(value, description)`` items."""

    def __init__(
        self,
        profile_flag: str | None = None,
        api_url_flag: str | None = None,
        now: float | None = None,
    ) -> None:
        self.profile_flag = profile_flag
        self.api_url_flag = api_url_flag
        self.now = time.time() if now is None else now
        self._conn: list[_Conn | None] = []  # resolved once, when first needed
        self._name: list[str | None] = []  # the cache file's name, likewise

    def rollouts(self, prefix: str) -> list[Item]:
        def fetch(get: Getter) -> Any:
            body = get("rollouts", {"limit": RECENT_ROLLOUTS})
            return [_rollout_item(r, self.now) for r in _listed(body, "rollouts")]

        return self._items("rollouts", fetch, prefix)

    def pools(self, prefix: str) -> list[Item]:
        def fetch(get: Getter) -> Any:
            return [_pool_item(p) for p in _listed(get("pools", {}), "pools")]

        return self._items("pools", fetch, prefix)

    def tasks(self, pool_id: str | None, prefix: str) -> list[Item]:
        if pool_id:
            return self._pool_tasks(pool_id, prefix)
        seen: dict[str, str] = {}
        for pool, _ in self.pools(""):
            for task, about in self._pool_tasks(pool, prefix):
                seen.setdefault(task, about)
        return list(seen.items())

    def _pool_tasks(self, pool_id: str, prefix: str) -> list[Item]:
        def fetch(get: Getter) -> Any:
            body = get(f"pools/{quote(pool_id, safe='')}/tasks", {})
            return [_task_item(t, pool_id) for t in _listed(body, "tasks")]

        return self._items(f"tasks/{pool_id}", fetch, prefix)

    def capabilities(self) -> dict[str, Any]:
        def fetch(get: Getter) -> Any:
            body = get("capabilities", {})
            return body if isinstance(body, dict) else {}

        found = self._cached("capabilities", fetch, lambda data: True)
        return found if isinstance(found, dict) else {}

    # --- the cache ----------------------------------------------------------------------

    def _items(self, resource: str, fetch: Callable[[Getter], Any], prefix: str) -> list[Item]:
        # A fresh list without the typed prefix is refetched after a moment: that id
        # may be the rollout created a few seconds ago.
        def good(data: Any) -> bool:
            return not prefix or any(str(v).startswith(prefix) for v, _ in data)

        found = self._cached(resource, fetch, good)
        return [(str(v), str(d)) for v, d in found] if isinstance(found, list) else []

    def _cached(
        self, resource: str, fetch: Callable[[Getter], Any], good: Callable[[Any], bool]
    ) -> Any:
        if not self._name:
            self._name.append(_cache_name(self.profile_flag, self.api_url_flag))
        if self._name[0] is None:
            return None
        target = files.path_of(f"completion/{self._name[0]}")
        cache = files.read(target)
        entry = cache.get(resource)
        last = entry["data"] if isinstance(entry, dict) else None
        age = self.now - float(entry["at"]) if isinstance(entry, dict) else -1.0
        if 0 <= age < FRESH_SEC and (age < 2 or good(last)):
            return last
        if float(cache.get("down_until", 0)) > self.now:
            return last
        # Only a fetch needs the key (and the config and keystore imports, ~30 ms).
        if not self._conn:
            self._conn.append(_connection(self.profile_flag, self.api_url_flag))
        conn = self._conn[0]
        if conn is None:
            return None
        try:
            data = fetch(_getter(conn))
        except (OSError, ValueError, _HTTPFailure):
            cache["down_until"] = self.now + BACKOFF_SEC
            files.write(target, cache)
            return last
        cache[resource] = {"at": self.now, "data": data}
        cache.pop("down_until", None)
        files.write(target, cache)
        return data


class _HTTPFailure(Exception):
    """Any answer but 200: completion shows nothing new, it never explains."""


class _Conn:
    __slots__ = ("base", "cache_name", "key", "version")

    def __init__(self, base: str, key: str, version: str, cache_name: str) -> None:
        self.base = base
        self.key = key  # no __repr__: the key must not reach a traceback
        self.version = version
        self.cache_name = cache_name


def _place(profile_flag: str | None, api_url_flag: str | None) -> tuple[str, str, str] | None:
    """(backend base, profile, API version) as the CLI resolves them; None if unusable."""
    from envpools_cli.config import ConfigError, resolve

    try:
        resolved = resolve(profile_flag, api_url_flag)
    except ConfigError:
        return None
    base = _base_url(resolved.api_url)
    if base is None:
        return None
    return base, resolved.profile, (resolved.api_version or "v1").strip().lower()


def _name_for(place: tuple[str, str, str]) -> str:
    return f"values-{_fnv1a(chr(10).join(place)):016x}"


def _connection(profile_flag: str | None, api_url_flag: str | None) -> _Conn | None:
    """Where to ask and with which key; None when nothing usable is configured."""
    from envpools_cli import keystore

    place = _place(profile_flag, api_url_flag)
    if place is None:
        return None
    base, profile, version = place
    key = keystore.key_quickly(profile, keyring_timeout=KEYRING_TIMEOUT_SEC)
    if not key:
        return None
    return _Conn(base, key, version, _name_for(place))


# Settings that decide the backend, profile and version (config.resolve): not keys.
_SETTING_PREFIXES = ("ENVPOOLS_", "SYNTH_", "ENV_POOLS_")
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
_REMEMBERED_PLACES = 16


def _cache_name(profile_flag: str | None, api_url_flag: str | None) -> str | None:
    """The values cache of the backend these flags, the environment and the config select.

    ``config.resolve`` costs a Tab press ~30 ms of imports (tomllib, dataclasses,
    typing), so the answer is remembered by what it depends on: the flags, the setting
    variables (not the keys: they do not move the backend) and the config file's size
    and mtime. Stored as hashes: no URL or value of the environment is written down.
    """
    config_file = os.path.join(paths.config_dir(), "config.toml")
    try:
        stat = os.stat(config_file)
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        stamp = "-"
    settings = sorted(
        (name, value)
        for name, value in os.environ.items()
        if (name.startswith(_SETTING_PREFIXES) or name in ("ENVIRONMENT", "APP_ENVIRONMENT"))
        and not any(word in name for word in _SECRET_WORDS)
    )
    inputs = f"{profile_flag!r}\n{api_url_flag!r}\n{config_file}\n{stamp}\n{settings!r}"
    asked = f"{_fnv1a(inputs):016x}"
    where = files.path_of("completion/places")
    remembered = files.read(where)
    if asked in remembered:
        known = remembered[asked]
        return known if isinstance(known, str) else None
    place = _place(profile_flag, api_url_flag)
    name = None if place is None else _name_for(place)
    kept = dict(list(remembered.items())[-(_REMEMBERED_PLACES - 1) :])
    kept[asked] = name
    files.write(where, kept)
    return name


def _fnv1a(text: str) -> int:
    """A stable 64-bit name for a cache file (hashlib's OpenSSL costs ~10 ms to import)."""
    value = 0xCBF29CE484222325
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _base_url(url: str) -> str | None:
    from envpools_cli.shared import split_backend_url  # here: a cached answer needs no URL

    try:
        scheme, netloc, path = split_backend_url(url)
    except ValueError:
        return None
    return f"{scheme}://{netloc}{path}"


def _getter(conn: _Conn) -> Getter:
    import http.client

    from envpools_cli.shared import api_prefix

    parts = urlsplit(conn.base)
    prefix = api_prefix(conn.version)
    started = time.monotonic()

    def get(suffix: str, query: dict[str, Any]) -> Any:
        left = TIMEOUT_SEC - (time.monotonic() - started)
        if left <= 0.05:
            raise _HTTPFailure("out of time")
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = factory(parts.netloc, timeout=left)
        target = f"{parts.path}{prefix}/{suffix}" + (f"?{urlencode(query)}" if query else "")
        try:
            connection.request(
                "GET",
                target,
                headers={
                    "Authorization": f"Bearer {conn.key}",
                    "Accept": "application/json",
                    "User-Agent": "envpools-completion",
                },
            )
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise _HTTPFailure(str(response.status))
        import json

        return json.loads(body)

    return get


# --- how each resource reads --------------------------------------------------------------


def _listed(body: Any, field_name: str) -> list[dict[str, Any]]:
    """Bare arrays (pools, tasks) and ``{"<field>": [...]}`` pages (rollouts) alike."""
    items = body.get(field_name) if isinstance(body, dict) else body
    return [item for item in items or [] if isinstance(item, dict)]


def _rollout_item(rollout: dict[str, Any], now: float) -> Item:
    task = rollout.get("task_ref") or {}
    agent = rollout.get("agent") or {}
    words = [
        str(rollout.get("status") or ""),
        str(task.get("task_id") or "") if isinstance(task, dict) else "",
        str(agent.get("harness") or "") if isinstance(agent, dict) else "",
        _age(rollout.get("created_at"), now),
    ]
    rollout_id = str(rollout.get("rollout_id") or rollout.get("id") or "")
    return rollout_id, " ".join(w for w in words if w)


def _pool_item(pool: dict[str, Any]) -> Item:
    tags = pool.get("tags") or []
    words = [str(pool.get("pool_type") or pool.get("type") or "")]
    if isinstance(tags, list) and tags:
        words.append(",".join(str(t) for t in tags))
    return str(pool.get("pool_id") or pool.get("id") or ""), " ".join(w for w in words if w)


def _task_item(task: dict[str, Any], pool_id: str) -> Item:
    return str(task.get("task_id") or ""), f"{task.get('backend') or 'task'} in {pool_id}"


def _age(stamp: Any, now: float) -> str:
    if not isinstance(stamp, str) or not stamp:
        return ""
    from datetime import datetime

    try:
        seconds = now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{max(int(seconds), 0)}s ago"


# --- values known on this machine ---------------------------------------------------------


def local_values(kind: str) -> list[Item] | None:
    """Profiles and eval jobs; None for a kind that is not local."""
    if kind == "profile":
        from envpools_cli.config import ConfigError, load_config

        try:
            config = load_config()
        except ConfigError:
            return []
        return [
            (name, "current" if name == config.current_profile else str(p.get("api_url", "")))
            for name, p in sorted(config.profiles.items())
        ]
    if kind == "job":
        from envpools_cli.jobs.store import JobStore

        return [(job_id, "eval job") for job_id in JobStore().ids()]
    return None
