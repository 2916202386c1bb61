"""RolloutHandle: the ``/rollouts/{id}`` methods bound to one rollout and its connection."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from envpools_cli.models import TERMINAL_STATUSES

from .bind import on_rollout
from .errors import APIError, TransportError
from .http import Connection, HTTPSession
from .resources import Artifacts, Rollouts
from .sse import ReconnectPolicy

__all__ = ["RolloutHandle"]


def _connection_field(name: str) -> Any:
    """``handle.backend_base`` and the like, readable and settable as in the SDK."""

    def set_field(handle: RolloutHandle, value: Any) -> None:
        handle.connection = dataclasses.replace(handle.connection, **{name: value})

    return property(lambda handle: getattr(handle.connection, name), set_field)


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

    backend_base = _connection_field("backend_base")
    api_key = _connection_field("api_key")
    api_version = _connection_field("api_version")
    session = _connection_field("session")

    get = on_rollout(Rollouts, Rollouts.get)
    summary = on_rollout(Rollouts, Rollouts.summary)
    usage = on_rollout(Rollouts, Rollouts.usage)
    support_bundle = on_rollout(Rollouts, Rollouts.support_bundle)
    cancel = on_rollout(Rollouts, Rollouts.cancel)
    replay = on_rollout(Rollouts, Rollouts.replay)
    # The product page: events reconnect by default (the SDK's handle did not).
    events = on_rollout(Rollouts, Rollouts.events, auto_reconnect=True)
    artifacts = on_rollout(Artifacts, Artifacts.list)
    download_zip = on_rollout(Artifacts, Artifacts.zip)
    download = on_rollout(Artifacts, Artifacts.fetch)

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
