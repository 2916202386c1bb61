"""Serving the local backend with uvicorn: in the foreground, or in a thread for tests."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from envpools_cli import __version__
from envpools_cli.server.app import LocalBackend
from envpools_cli.server.settings import ServerSettings
from envpools_cli.server.state.store import Org, Store

__all__ = [
    "DEFAULT_PORT",
    "BackendThread",
    "bind_socket",
    "ensure_default_org",
    "serve",
]

DEFAULT_PORT = 8000
DEFAULT_ORG_NAME = "local"
log = logging.getLogger("envpools.server")


def bind_socket(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, scan: int = 100
) -> socket.socket:
    """A listening socket on ``port``, or the next free one (port 0: any free port)."""
    last_error: OSError | None = None
    candidates = [0] if port == 0 else range(port, port + max(1, scan))
    for candidate in candidates:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on the connections it accepts only
        # when the listening socket says TCP, and without it every response on a kept-alive
        # connection waits ~40 ms (Nagle against the client's delayed ACK).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            last_error = exc
            continue
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock
    raise OSError(errno.EADDRINUSE, f"no free port in {port}..{port + scan - 1}") from last_error


def ensure_default_org(store: Store, plan: str = "pro") -> Org:
    """The organisation that ``envpools local up`` keys belong to."""
    row = store.db.execute(
        "SELECT org_id FROM orgs WHERE name = ? ORDER BY created_at LIMIT 1", (DEFAULT_ORG_NAME,)
    ).fetchone()
    if row is not None:
        org = store.get_org(row["org_id"])
        assert org is not None
        return org
    return store.create_org(DEFAULT_ORG_NAME, plan)


def _config(backend: LocalBackend, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        backend.app,
        log_level=log_level,
        access_log=log_level == "debug",
        timeout_graceful_shutdown=3,
        lifespan="on",
        server_header=False,
    )


def serve(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_file: Path | None = None,
    log_level: str = "info",
) -> None:
    """Run in the foreground until SIGINT/SIGTERM; record the address in ``state_file``."""
    sock = bind_socket(host, port)
    actual = sock.getsockname()[1]
    backend = LocalBackend(settings)
    server = uvicorn.Server(_config(backend, log_level))
    url = f"http://{host}:{actual}"
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "url": url,
                    "host": host,
                    "port": actual,
                    "data_dir": str(settings.data_dir),
                    "version": __version__,
                    "started_at": time.time(),
                }
            )
        )
    log.info(
        "envpools local backend %s listening on %s (data in %s, sandbox: %s)",
        __version__,
        url,
        settings.data_dir,
        backend.ctx.driver.name,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if state_file is not None:
            with contextlib.suppress(FileNotFoundError):
                current = json.loads(state_file.read_text())
                if current.get("pid") == os.getpid():
                    state_file.unlink()


class BackendThread:
    """A real backend on a real socket, in a thread: for tests and embedding."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.settings = settings
        self.host = host
        self.sock = bind_socket(host, port, scan=1)
        self.port: int = self.sock.getsockname()[1]
        self.backend = LocalBackend(settings)
        self.server = uvicorn.Server(_config(self.backend, log_level))
        self.thread = threading.Thread(target=self._run, name="envpools-backend", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 20.0) -> BackendThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local backend did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def create_key(self, plan: str = "pro", name: str | None = None) -> tuple[Org, str]:
        store = Store(self.settings.db_path)
        try:
            org = store.create_org(name or f"org-{plan}", plan)
            return org, store.create_key(org.org_id)
        finally:
            store.close()

    def __enter__(self) -> BackendThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
