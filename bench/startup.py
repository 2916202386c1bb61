"""Start-up time of envpools commands, as ratios to the interpreter, measured in one run.

.venv/bin/python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ENVPOOLS = [sys.executable, "-m", "envpools_cli"]


def median(command: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, env={**os.environ, **(env or {})}, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    from envpools_cli.server.serve import BackendThread
    from envpools_cli.server.settings import ServerSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    with BackendThread(ServerSettings(data_dir=Path(tempfile.mkdtemp()))) as backend:
        _, key = backend.create_key()
        env = {"ENVPOOLS_API_URL": backend.url, "ENVPOOLS_API_KEY": key}
        cases = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "envpools --version": ([*ENVPOOLS, "--version"], None),
            "envpools completion bash": ([*ENVPOOLS, "completion", "bash"], None),
            "envpools --help": ([*ENVPOOLS, "--help"], None),
            "envpools pools list -o json": ([*ENVPOOLS, "pools", "list", "-o", "json"], env),
            "eager: import app+client+rich+keyring": (
                [
                    sys.executable,
                    "-c",
                    "import envpools_cli.app, envpools_cli.client, "
                    "rich.console, rich.table, keyring, yaml",
                ],
                None,
            ),
        }
        results = {name: median(command, runs, extra) for name, (command, extra) in cases.items()}
    floor = results["python -c pass"]
    for name, seconds in results.items():
        print(f"{name:<42} {seconds * 1000:7.1f} ms   {seconds / floor:5.1f}x python")


if __name__ == "__main__":
    main()
