"""Reliability under faults, as tests the project runs itself (issue 13).

``proxy.FaultProxy`` stands between any HTTP client and the real backend: point the client
library (``backend_base=proxy.url``), the CLI (``ENVPOOLS_API_URL=<proxy.url>``) or the
official SDK (``SYNTH_BACKEND_URL=<proxy.url>/api``) at it, and give it a plan saying which
requests to break and how. ``conftest.ServeProcess`` is ``envpools local serve`` in a
process of its own, to SIGKILL and start again on the same data dir and port.
"""
