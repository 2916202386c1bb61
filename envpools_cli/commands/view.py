"""envpools view: the live web viewer, on loopback, in front of the configured backend."""

from __future__ import annotations

from typing import Annotated

import typer

from envpools_cli.cli_errors import CLIError
from envpools_cli.runtime import runtime

__all__ = ["view"]


def view(
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one)."),
    ] = 0,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the viewer in a browser, where one exists.")
    ] = False,
) -> None:
    """Watch jobs and rollouts live in a browser: progress, events, trajectories, diffs.

    Serves a web page on 127.0.0.1 only, for the backend of the current profile (local
    or hosted), and prints a link to stdout that signs one browser in, once; the page
    never sees the API key (the viewer calls the API for it). Ctrl-C stops it.

    Example: envpools view --open
    """
    import webbrowser

    import uvicorn

    from envpools_cli import client as ep
    from envpools_cli.client.settings import api_url
    from envpools_cli.jobs.store import JobStore
    from envpools_cli.jobs.view_source import StoredJobs
    from envpools_cli.output.messages import info, warn
    from envpools_cli.output.streams import write_out
    from envpools_cli.server.serve import bind_socket
    from envpools_cli.server.view import Sessions, ViewConfig, standalone_app

    conn = runtime.conn()
    ep.list_rollouts(limit=1, **conn)  # a wrong key or a backend that is down fails here
    base, version = conn["backend_base"], conn.get("api_version")
    sessions = Sessions(conn["api_key"])
    config = ViewConfig(
        sessions=sessions,
        upstream=lambda request, suffix: api_url(base, suffix, api_version=version),
        backend=base,
        jobs=StoredJobs(JobStore(), base),
    )
    try:
        sock = bind_socket("127.0.0.1", port, scan=1)
    except OSError as exc:
        raise CLIError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    where = f"http://127.0.0.1:{sock.getsockname()[1]}/view/"
    write_out(f"{where}#code={sessions.new_code()}\n")
    info(f"viewer for {base} at {where} (the link above signs one browser in; Ctrl-C stops)")
    if open_browser:
        try:
            opened = webbrowser.get().open(f"{where}#code={sessions.new_code()}")
        except webbrowser.Error:
            opened = False
        if not opened:
            warn("no browser to open here: open the link above")
    server = uvicorn.Server(
        uvicorn.Config(
            standalone_app(config),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=1,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
