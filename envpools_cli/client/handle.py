"""RolloutHandle: one rollout's functions bound to its id and connection settings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from envpools_cli.models import TERMINAL_STATUSES

from . import api
from .errors import APIError, TransportError
from .http import HTTPSession
from .sse import EventStream, ReconnectPolicy

__all__ = ["RolloutHandle"]


class RolloutHandle:
    """Convenience wrapper around one rollout."""

    def __init__(
        self,
        rollout_id: str,
        *,
        backend_base: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        session: HTTPSession | None = None,
    ) -> None:
        self.rollout_id = rollout_id
        self.backend_base = backend_base
        self.api_key = api_key
        self.api_version = api_version
        self.session = session

    def __repr__(self) -> str:
        return f"RolloutHandle({self.rollout_id!r})"

    def _conn(self) -> dict[str, Any]:
        return {
            "backend_base": self.backend_base,
            "api_key": self.api_key,
            "api_version": self.api_version,
            "session": self.session,
        }

    def get(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_rollout(self.rollout_id, timeout=timeout, **self._conn())

    def summary(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_rollout_summary(self.rollout_id, timeout=timeout, **self._conn())

    def usage(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_rollout_usage(self.rollout_id, timeout=timeout, **self._conn())

    def support_bundle(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_rollout_support_bundle(self.rollout_id, timeout=timeout, **self._conn())

    def cancel(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.cancel_rollout(self.rollout_id, timeout=timeout, **self._conn())

    def replay(
        self,
        *,
        overrides: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        return api.replay_rollout(
            self.rollout_id, overrides=overrides, metadata=metadata, timeout=timeout, **self._conn()
        )

    def events(
        self,
        *,
        since: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
        auto_reconnect: bool = True,
    ) -> EventStream:
        """The rollout's events; resumes after dropped connections unless told not to."""
        return api.stream_rollout_events(
            self.rollout_id,
            since=since,
            cursor=cursor,
            limit=limit,
            timeout=timeout,
            auto_reconnect=auto_reconnect,
            **self._conn(),
        )

    def artifacts(
        self,
        *,
        prefix: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        return api.list_rollout_artifacts(
            self.rollout_id,
            prefix=prefix,
            cursor=cursor,
            limit=limit,
            timeout=timeout,
            **self._conn(),
        )

    def download_zip(
        self, *, prefix: str | None = None, limit: int | None = None, timeout: float = 120.0
    ) -> bytes:
        return api.download_artifacts_zip(
            self.rollout_id, prefix=prefix, limit=limit, timeout=timeout, **self._conn()
        )

    def download(self, path: str, *, timeout: float = 60.0) -> bytes:
        return api.fetch_artifact(self.rollout_id, path, timeout=timeout, **self._conn())

    def wait(
        self,
        *,
        timeout: float = 600.0,
        poll_interval: float = 2.0,
        terminal: Iterable[str] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Return the rollout as soon as its status is in ``terminal``, or when ``timeout`` passes.

        Follows the event stream from the last event under the client's reconnect policy
        (``ReconnectPolicy.watching``): a dropped connection or a backend restart does not
        end the wait, a backend that cannot be reached at all fails within seconds.
        ``on_status`` hears every status the rollout passes through. Like the official
        SDK, a timeout returns the last state rather than raising: check its ``status``.
        ``poll_interval`` is accepted for the SDK's signature; the stream needs no polling.
        """
        del poll_interval
        stop = {s.lower() for s in terminal} if terminal else set(TERMINAL_STATUSES)
        seen: list[str] = []

        def report(status: Any) -> None:
            if on_status is not None and status and (not seen or seen[-1] != status):
                seen.append(str(status))
                on_status(str(status))

        last = self.get()
        report(last.get("status"))
        if str(last.get("status", "")).lower() in stop:
            return last
        with api.stream_rollout_events(
            self.rollout_id,
            cursor=self._cursor(),
            auto_reconnect=True,
            reconnect=ReconnectPolicy.watching(deadline=max(0.0, timeout)),
            on_gap="ignore",
            **self._conn(),
        ) as stream:
            for event in stream:
                data = event.get("data")
                if event.get("event") == "lifecycle" and isinstance(data, dict):
                    report(data.get("status"))
                    if str(data.get("status", "")).lower() in stop:
                        break
        return self.get()

    def _cursor(self) -> str | None:
        """The id of the rollout's latest event: the wait needs nothing before it."""
        try:
            last_event = self.summary().get("last_event")
        except (TransportError, APIError):
            return None
        if isinstance(last_event, dict) and last_event.get("id") is not None:
            return str(last_event["id"])
        return None
