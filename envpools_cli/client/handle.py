"""RolloutHandle: the ``/rollouts/{id}`` methods on one rollout and its connection."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, overload

from envpools_cli.shared import TERMINAL_STATUSES

from .errors import APIError, TransportError
from .http import Connection, HTTPSession
from .resources import Artifacts, Rollouts
from .sse import EventStream, GapPolicy, ReconnectPolicy

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
        self.connection = Connection(backend_base, api_key, api_version, session)

    @classmethod
    def on(cls, rollout_id: str, connection: Connection) -> RolloutHandle:
        handle = cls(rollout_id)
        handle.connection = connection
        return handle

    def __repr__(self) -> str:
        return f"RolloutHandle({self.rollout_id!r})"

    # The SDK's handle keeps its settings as attributes: reading or setting one here reads
    # or re-points the connection.
    @property
    def backend_base(self) -> str | None:
        return self.connection.backend_base

    @backend_base.setter
    def backend_base(self, value: str | None) -> None:
        self.connection = dataclasses.replace(self.connection, backend_base=value)

    @property
    def api_key(self) -> str | None:
        return self.connection.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self.connection = dataclasses.replace(self.connection, api_key=value)

    @property
    def api_version(self) -> str | None:
        return self.connection.api_version

    @api_version.setter
    def api_version(self, value: str | None) -> None:
        self.connection = dataclasses.replace(self.connection, api_version=value)

    @property
    def session(self) -> HTTPSession | None:
        return self.connection.session

    @session.setter
    def session(self, value: HTTPSession | None) -> None:
        self.connection = dataclasses.replace(self.connection, session=value)

    # <generated: RolloutHandle>
    # From resources.py by scripts/update-client: edit that, then run it.

    def get(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """A rollout's current state."""
        return Rollouts(self.connection).get(self.rollout_id, timeout=timeout)

    def summary(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Latest status, reward and last event of a rollout."""
        return Rollouts(self.connection).summary(self.rollout_id, timeout=timeout)

    def usage(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Usage and cost (UsageSnapshot) of a rollout."""
        return Rollouts(self.connection).usage(self.rollout_id, timeout=timeout)

    def support_bundle(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Request, routing, events, artifacts and usage of a rollout, secrets redacted."""
        return Rollouts(self.connection).support_bundle(self.rollout_id, timeout=timeout)

    def cancel(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Cancel a rollout; cancelling a finished one returns it unchanged."""
        return Rollouts(self.connection).cancel(self.rollout_id, timeout=timeout)

    def replay(
        self,
        *,
        overrides: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = 120.0,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Run a rollout's request again (with ``overrides``); returns the new rollout."""
        return Rollouts(self.connection).replay(
            self.rollout_id,
            overrides=overrides,
            metadata=metadata,
            timeout=timeout,
            idempotency_key=idempotency_key,
        )

    def events(
        self,
        *,
        since: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
        auto_reconnect: bool = True,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        on_gap: GapPolicy = "raise",
        on_reconnect: Callable[[int, float, Exception], None] | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> EventStream:
        """Stream a rollout's events (SSE) as EventEnvelope-shaped dicts.

        ``cursor`` resumes after that event id; ``timeout`` is the read timeout (default
        45 s, three heartbeats). With ``auto_reconnect`` the stream resumes after drops and
        early closes under ``reconnect`` (default: a ``ReconnectPolicy`` made of
        ``max_retries``, ``backoff_base`` and ``backoff_max``); without it any interruption
        raises TransportError rather than ending the iteration as if the rollout were over.
        """
        return Rollouts(self.connection).events(
            self.rollout_id,
            since=since,
            cursor=cursor,
            limit=limit,
            timeout=timeout,
            auto_reconnect=auto_reconnect,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            on_gap=on_gap,
            on_reconnect=on_reconnect,
            reconnect=reconnect,
        )

    def artifacts(
        self,
        *,
        prefix: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """The artifact manifest of a rollout (paged with ``next_cursor``)."""
        return Artifacts(self.connection).list(
            self.rollout_id, prefix=prefix, cursor=cursor, limit=limit, timeout=timeout
        )

    def download_zip(
        self, *, prefix: str | None = None, limit: int | None = None, timeout: float = 120.0
    ) -> bytes:
        """All artifacts of a rollout (under ``prefix``) as zip bytes."""
        return Artifacts(self.connection).zip(
            self.rollout_id, prefix=prefix, limit=limit, timeout=timeout
        )

    @overload
    def download(self, artifact_path: str, *, timeout: float = 60.0) -> bytes: ...

    @overload
    def download(self, *, path: str, timeout: float = 60.0) -> bytes: ...

    def download(
        self, artifact_path: str | None = None, *, path: str | None = None, timeout: float = 60.0
    ) -> bytes:
        """The bytes of one artifact (``artifact_path``, or ``path=`` as SDK 0.9.6 spells it)."""
        found: bytes = Artifacts(self.connection).fetch(
            self.rollout_id, artifact_path, path=path, timeout=timeout
        )  # type: ignore[call-overload]
        return found

    # </generated>

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
        with self.events(
            cursor=self._cursor(),
            reconnect=ReconnectPolicy.watching(deadline=max(0.0, timeout)),
            on_gap="ignore",
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
