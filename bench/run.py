"""Every performance figure of issue 12, each against its anchor measured in the same run.

    .venv/bin/python -m bench [--runs 10] [--events 100000] [--json bench/results.json]
                              [--only stream,live,tail,startup,backend,scale]
                              [--baseline OTHER/.venv/bin/envpools]

Anchors: raw ``curl`` for the wire, the official SDK from its own venv (``.venv-sdk``) for
the client, a bare interpreter (``python -c pass``) for start-up, and ``--baseline`` (another
install, e.g. of main) for a command outside the fast paths. Commands are run in
turn (A, B, C, A, B, C, ...) so that a ratio compares runs made under the same load; the
figure is the median of the per-round ratios. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.backend import ROOT, Backend, make_task

ENVPOOLS = str(ROOT / ".venv" / "bin" / "envpools")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
WARM_ROLLOUTS = 32
TAB = "_ENVPOOLS_COMPLETE=bash"  # a Tab press: the shell function's call (values cached 20 s)
SDK_PYTHON = str(ROOT / ".venv-sdk" / "bin" / "python")

SDK_GET = (
    "import json, sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "from synth_ai.sdk import environment_pools as ep\n"
    "print(json.dumps(ep.get_rollout(sys.argv[1])))\n"
)
SDK_LIST = (
    "import json, sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "from synth_ai.sdk import environment_pools as ep\n"
    "print(json.dumps(ep.list_rollouts()))\n"
)
SDK_STREAM = (
    "import json, sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "from synth_ai.sdk import environment_pools as ep\n"
    # Not sys.stdout: the SDK wraps it in a log filter that costs ~2 ms a line.
    "out = open(1, 'w', closefd=False)\n"
    "for event in ep.stream_rollout_events(sys.argv[1]):\n"
    "    out.write(json.dumps(event) + '\\n')\n"
)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    anchor: str
    anchor_value: float | None
    ratio: float | None
    goal: str
    met: bool | None

    def row(self) -> str:
        anchor = "" if self.anchor_value is None else f"{self.anchor_value:,.1f} {self.unit}"
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return (
            f"{self.name:<44} {self.value:>12,.1f} {self.unit:<9} {self.anchor:<28} "
            f"{anchor:>16} {ratio:>7}  {self.goal:<22} {verdict}"
        )


@dataclass
class Sample:
    wall: float


def run_once(command: list[str], env: dict[str, str] | None = None) -> Sample:
    """Wall time of one process, its output thrown away."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    code = proc.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{command} exited {code}")
    return Sample(wall)


def peak_rss_kib(command: list[str], env: dict[str, str] | None = None) -> int:
    """The peak RSS of one run, read from /proc while it runs (not ``wait4``'s
    ``ru_maxrss``: a child forked from this big process starts with its high-water mark)."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    return peak


def interleave(
    cases: dict[str, list[str]], runs: int, env: dict[str, str] | None = None
) -> dict[str, list[Sample]]:
    """Each case once per round, in turn, after one warm-up round."""
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for round_ in range(runs + 1):
        for name, command in cases.items():
            # Leading NAME=VALUE words are that case's own environment (as in a shell).
            own = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: "=" in w, command))
            sample = run_once(command[len(own) :], {**(env or {}), **own})
            if round_:
                samples[name].append(sample)
    return samples


def median_wall(samples: list[Sample]) -> float:
    return statistics.median(s.wall for s in samples)


def paired_ratio(a: list[Sample], b: list[Sample]) -> float:
    return statistics.median(x.wall / y.wall for x, y in zip(a, b, strict=True))


def ms(seconds: float) -> float:
    return seconds * 1000


# --- sections ---------------------------------------------------------------------------


def stream_figures(backend: Backend, rollout_id: str, events: int, runs: int) -> list[Figure]:
    url = f"{backend.url}/v1/rollouts/{rollout_id}/events"
    curl = ["curl", "-sSfN", "-o", "/dev/null", "-H", f"Authorization: Bearer {backend.key}", url]
    samples = interleave({"curl": curl}, runs)["curl"]
    rate = events / median_wall(samples)
    return [
        Figure(
            f"server replay, {events:,} events (curl)",
            rate,
            "events/s",
            "goal",
            200_000,
            rate / 200_000,
            ">= 200k events/s",
            rate >= 200_000,
        )
    ]


def tail_figures(backend: Backend, small: str, large: str, events: int, runs: int) -> list[Figure]:
    url = f"{backend.url}/v1/rollouts/{large}/events"
    env = backend.env_vars
    cases = {
        "envpools": [ENVPOOLS, "rollouts", "tail", large, "-o", "jsonl"],
        "sdk": [SDK_PYTHON, "-c", SDK_STREAM, large],
        "curl": [
            "curl",
            "-sSfN",
            "-o",
            "/dev/null",
            "-H",
            f"Authorization: Bearer {backend.key}",
            url,
        ],
    }
    got = interleave(cases, runs, env)
    ours = got["envpools"]
    sdk_over_ours = 1 / paired_ratio(ours, got["sdk"])
    ours_over_curl = paired_ratio(ours, got["curl"])
    rss_small = statistics.median(
        peak_rss_kib([ENVPOOLS, "rollouts", "tail", small, "-o", "jsonl"], env) for _ in range(3)
    )
    rss_large = statistics.median(peak_rss_kib(cases["envpools"], env) for _ in range(3))
    growth = rss_large / rss_small
    return [
        Figure(
            f"tail -o jsonl, {events:,} events",
            events / median_wall(ours),
            "events/s",
            "SDK stream_rollout_events",
            events / median_wall(got["sdk"]),
            sdk_over_ours,
            ">= 2x the SDK",
            sdk_over_ours >= 2.0,
        ),
        Figure(
            "tail -o jsonl time / raw curl",
            ms(median_wall(ours)),
            "ms",
            "curl",
            ms(median_wall(got["curl"])),
            ours_over_curl,
            "<= 1.3x curl",
            ours_over_curl <= 1.3,
        ),
        Figure(
            f"tail peak RSS, {events:,} vs {events // 10:,} events",
            rss_large / 1024,
            "MiB",
            f"{events // 10:,} events",
            rss_small / 1024,
            growth,
            "<= 1.10x",
            growth <= 1.10,
        ),
    ]


def startup_figures(
    backend: Backend, rollout_id: str, runs: int, baseline: str | None = None
) -> list[Figure]:
    """``baseline``: another install's ``envpools`` (a checkout of main) to compare a
    command outside the fast paths with, in the same run."""
    env = backend.env_vars
    cases = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "--version": [ENVPOOLS, "--version"],
        "completion bash": [ENVPOOLS, "completion", "bash"],
        "--help": [ENVPOOLS, "--help"],
        "rollouts --help": [ENVPOOLS, "rollouts", "--help"],
        "Tab: commands": [TAB, ENVPOOLS, "2", "envpools", "rollouts", ""],
        "Tab: rollout ids": [TAB, ENVPOOLS, "3", "envpools", "rollouts", "get", ""],
        "get -o json": [ENVPOOLS, "rollouts", "get", rollout_id, "-o", "json"],
        "sdk get": [SDK_PYTHON, "-c", SDK_GET, rollout_id],
        "list -o json": [ENVPOOLS, "rollouts", "list", "-o", "json"],
        "sdk list": [SDK_PYTHON, "-c", SDK_LIST],
    }
    got = interleave(cases, runs, env)
    # In rounds of their own: a slow case in the rounds above would make them longer than
    # the 20 s a Tab press keeps rollout ids, and every "rollout ids" press would refetch.
    outside = {"python -c pass": cases["python -c pass"], "pools list": [ENVPOOLS, "pools", "list"]}
    if baseline:
        outside["baseline pools list"] = [baseline, "pools", "list"]
    got_outside = interleave(outside, runs, env)
    bare = got["python -c pass"]
    figures = []
    for name in ("--version", "completion bash", "Tab: commands", "Tab: rollout ids"):
        ratio = paired_ratio(got[name], bare)
        figures.append(
            Figure(
                name if name.startswith("Tab") else f"envpools {name}",
                ms(median_wall(got[name])),
                "ms",
                "python -c pass",
                ms(median_wall(bare)),
                ratio,
                "<= 1.2x python",
                ratio <= 1.2,
            )
        )
    for name in ("--help", "rollouts --help"):
        wall = ms(median_wall(got[name]))
        figures.append(
            Figure(
                f"envpools {name}",
                wall,
                "ms",
                "python -c pass",
                ms(median_wall(bare)),
                paired_ratio(got[name], bare),
                "<= 100 ms",
                wall <= 100,
            )
        )
    for name, sdk in (("get -o json", "sdk get"), ("list -o json", "sdk list")):
        ratio = paired_ratio(got[name], got[sdk])
        figures.append(
            Figure(
                f"envpools rollouts {name}",
                ms(median_wall(got[name])),
                "ms",
                f"SDK {sdk.split()[1]} (fresh process)",
                ms(median_wall(got[sdk])),
                ratio,
                "<= 0.8x the SDK",
                ratio <= 0.8,
            )
        )
    # A command outside the fast paths: Typer, the client and one command group.
    if baseline:
        ratio = paired_ratio(got_outside["pools list"], got_outside["baseline pools list"])
        figures.append(
            Figure(
                "envpools pools list",
                ms(median_wall(got_outside["pools list"])),
                "ms",
                f"{baseline} pools list",
                ms(median_wall(got_outside["baseline pools list"])),
                ratio,
                "<= 0.7x the baseline",
                ratio <= 0.7,
            )
        )
    else:
        figures.append(
            Figure(
                "envpools pools list",
                ms(median_wall(got_outside["pools list"])),
                "ms",
                "python -c pass",
                ms(median_wall(got_outside["python -c pass"])),
                paired_ratio(got_outside["pools list"], got_outside["python -c pass"]),
                "report",
                None,
            )
        )
    return figures


def backend_figures(root: Path, rollouts: int, latency_runs: int) -> list[Figure]:
    figures = []
    task = make_task(root, "nop-task")
    with Backend(root / "latency", ENVPOOLS_MAX_RUNNING="16") as backend:
        backend.pool("nop", {"nop-task": task}, concurrency=1)
        backend.wait_terminal(backend.create("nop", "nop-task"))  # warm: sandbox, caches
        walls = []
        for _ in range(latency_runs):
            started = time.perf_counter()
            status = backend.wait_terminal(backend.create("nop", "nop-task"))
            walls.append(time.perf_counter() - started)
            assert status == "succeeded", status
        latency = ms(statistics.median(walls))
        figures.append(
            Figure(
                "nop rollout create -> succeeded (median)",
                latency,
                "ms",
                "goal",
                300,
                latency / 300,
                "<= 300 ms",
                latency <= 300,
            )
        )
    for concurrency in (1, 4, 16):
        with Backend(root / f"c{concurrency}", ENVPOOLS_MAX_RUNNING=str(concurrency)) as backend:
            backend.pool("nop", {"nop-task": task}, concurrency=concurrency)
            # Warm up first (imports, the sandbox, the allocator): growth is read from there.
            warm = [backend.create("nop", "nop-task") for _ in range(WARM_ROLLOUTS)]
            assert {backend.wait_terminal(rid) for rid in warm} == {"succeeded"}
            rss_before, db_before = backend.rss_kib(), backend.db_bytes()
            started = time.perf_counter()
            ids = [backend.create("nop", "nop-task") for _ in range(rollouts)]
            statuses = [backend.wait_terminal(rid, timeout=600) for rid in ids]
            elapsed = time.perf_counter() - started
            assert set(statuses) == {"succeeded"}, set(statuses)
            rate = rollouts / elapsed
            figures.append(
                Figure(
                    f"nop rollouts/s, concurrency {concurrency} ({rollouts})",
                    rate,
                    "rollouts/s",
                    "",
                    None,
                    None,
                    "report",
                    None,
                )
            )
            if concurrency == 16:
                time.sleep(1.0)  # the last rollout threads end a moment after their status
                rss_after, db_after = backend.rss_kib(), backend.db_bytes()
                figures.append(
                    Figure(
                        f"backend RSS growth per rollout ({rollouts})",
                        (rss_after - rss_before) / rollouts,
                        "KiB",
                        f"RSS after {WARM_ROLLOUTS} warm-up rollouts -> after (MiB)",
                        rss_before / 1024,
                        rss_after / rss_before,
                        "report (flat)",
                        None,
                    )
                )
                figures.append(
                    Figure(
                        f"database bytes per rollout ({rollouts})",
                        (db_after - db_before) / rollouts,
                        "bytes",
                        "",
                        None,
                        None,
                        "report",
                        None,
                    )
                )
    return figures


def live_figures(root: Path) -> list[Figure]:
    from bench.live import bench_live

    with Backend(root / "live") as backend:
        result = bench_live(backend, root / "live-tasks")
    p99 = result["publish_p99_ms"]
    return [
        Figure(
            "live event to 32 tailers, p99 (publish)",
            p99,
            "ms",
            "p50",
            result["publish_p50_ms"],
            None,
            "<= 50 ms",
            p99 <= 50,
        ),
        Figure(
            "live event to 32 tailers, p99 (agent print)",
            result["print_p99_ms"],
            "ms",
            "p50",
            result["print_p50_ms"],
            None,
            "report",
            None,
        ),
    ]


def scale_figures(root: Path) -> list[Figure]:
    """Issue 20: bench/scale.py, each part against its anchor in the same run."""
    from bench import scale

    small = scale.bench_dispatch(root, queued=10)
    large = scale.bench_dispatch(root, queued=10_000)
    per_small = small["dispatch_cpu_ms_per_launch"]
    per_large = large["dispatch_cpu_ms_per_launch"]
    running = scale.bench_running(root)
    drain = scale.bench_drain(root)
    live = scale.bench_live_scale(root)
    figures = [
        Figure(
            "dispatch CPU per rollout, 10,000 queued",
            per_large,
            "ms",
            "10 queued",
            per_small,
            per_large / per_small,
            "<= 1.5x",
            per_large / per_small <= 1.5,
        ),
        Figure(
            f"backend RSS per running rollout ({running['most_running']} sleeping)",
            running["rss_per_running_kib"],
            "KiB",
            "RSS idle (KiB)",
            running["rss_idle_kib"],
            None,
            "report",
            None,
        ),
        Figure(
            "create -> running, p99 (200 at once)",
            running["create_to_running_p99_ms"],
            "ms",
            "p50",
            running["create_to_running_p50_ms"],
            None,
            "report",
            None,
        ),
        Figure(
            f"{drain['rollouts']} queued nop rollouts drained",
            drain["rollouts_per_sec"],
            "/s",
            "",
            None,
            None,
            "report",
            None,
        ),
        Figure(
            "live lag, 200 chatty rollouts, 10 tailers, p99",
            live["print_p99_ms"],
            "ms",
            "p50",
            live["print_p50_ms"],
            None,
            "<= 100 ms",
            live["print_p99_ms"] <= 100 and live["complete"],
        ),
    ]
    try:
        ray = scale.bench_ray(root)
    except Exception as exc:  # no Ray, no namespaces here: said, not fatal
        print(f"... ray skipped: {exc}", file=sys.stderr)
        return figures
    figures.append(
        Figure(
            "Ray rollouts/s, two worker nodes",
            ray["per_sec_2_workers"],
            "/s",
            "one worker node",
            ray["per_sec_1_workers"],
            ray["two_over_one"],
            "report",
            None,
        )
    )
    return figures


SECTIONS = ("stream", "live", "tail", "startup", "backend", "scale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--baseline",
        metavar="ENVPOOLS",
        help="another install's envpools (a checkout of main): startup compares pools list",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    root = Path(tempfile.mkdtemp(prefix="envpools-bench-"))
    figures: list[Figure] = []

    def section(name: str, build: Callable[[], list[Figure]]) -> None:
        if name in only:
            print(f"... {name}", file=sys.stderr, flush=True)
            figures.extend(build())

    if only & {"stream", "tail", "startup"}:
        with Backend(root / "streams") as backend:
            large = backend.finished_rollout(args.events, root / "tasks")
            small = ""
            if "tail" in only:
                small_backend_task = make_task(root / "tasks", "replay-small")
                backend.pool("replay-small", {"replay-small": small_backend_task})
                small = backend.create("replay-small", "replay-small", harness="oracle")
                backend.wait_terminal(small)
                backend.seed_events(small, args.events // 10)
            section("stream", lambda: stream_figures(backend, large, args.events, args.runs))
            section("tail", lambda: tail_figures(backend, small, large, args.events, args.runs))
            section("startup", lambda: startup_figures(backend, large, args.runs, args.baseline))
    section("live", lambda: live_figures(root))
    section("backend", lambda: backend_figures(root, args.rollouts, args.runs))
    section("scale", lambda: scale_figures(root))

    header = (
        f"{'figure':<44} {'value':>12} {'unit':<9} {'anchor (same run)':<28} "
        f"{'anchor value':>16} {'ratio':>7}  {'goal':<22} verdict"
    )
    print(header)
    print("-" * len(header))
    for figure in figures:
        print(figure.row())
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "runs": args.runs,
        "figures": [asdict(f) for f in figures],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}", file=sys.stderr)
    return 0 if all(f.met is not False for f in figures) else 1
