"""A timeout while the machine is saturated is the machine's doing, not the agent's.

Busy loops outside the sandbox (two per core) saturate the machine. An agent that needs
CPU and waits for it most of the time times out in ``error`` / ``timeout_under_load``
(an infrastructure error, transient: jobs count it apart and retry it); an agent that
just hangs under the same load is still the agent's ``agent_timeout``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envpools_cli import error_codes
from envpools_cli.server.scheduling.admission import usable_cores
from tests.integration.conftest import Backend, local_task, make_task, needs_bwrap

pytestmark = needs_bwrap

#: One thread that needs 30 s of CPU.
SPIN = """python3 -c '
import time
start = time.process_time()
while time.process_time() - start < 30:
    pass
'"""


@pytest.mark.timeout(180)
def test_a_timeout_while_starved_of_cpu_is_timeout_under_load(
    backend: Backend, tmp_path: Path
) -> None:
    backend.pool(
        "p",
        local_task("spin", make_task(tmp_path, "spin", solve=SPIN)),
        local_task("hang", make_task(tmp_path, "hang", solve="sleep 60")),
        concurrency=2,
    )
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * usable_cores())
    ]
    try:
        spin = backend.rollout("p", "spin", timeouts={"agent_sec": 6})["rollout_id"]
        hang = backend.rollout("p", "hang", timeouts={"agent_sec": 6})["rollout_id"]
        starved, hung = backend.wait(spin, timeout=90), backend.wait(hang, timeout=90)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
    assert starved["status"] == "error", starved
    error = starved["error"]
    assert error["code"] == "timeout_under_load", error
    assert error["under_load"] is True
    assert error["load"]["measured"] in ("sandbox", "machine")
    assert error["load"]["cpu_wait_share"] >= 0.25, error
    assert "did not finish within 6s while the machine was saturated" in error["message"]
    assert "--retry-errors" in error["message"]
    # Counted as the machine's error, worth running again; never the agent's failure.
    assert error_codes.error_kind("error", error) == "infrastructure"
    assert error_codes.is_transient("error", error)

    # The same load does not excuse an agent that just hangs: it used no CPU.
    assert hung["status"] == "failed", hung
    assert hung["error"]["code"] == "agent_timeout", hung["error"]
