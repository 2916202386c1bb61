"""A trial on another machine: the runner in a thread, its reports as numbered records.

On a cluster node (``scheduling/ray.py`` runs this inside a Ray task) the runner reports
to a queue; ``run_on_node`` turns what it reports into batches of records, numbered from
1 in order, which the backend applies to its database exactly once (a record whose
number it already has is skipped). When the trial has ended, the files its artifact
index names travel in chunks before the index itself, and the node's copy of the trial
folder goes. Nothing here knows Ray: the caller passes ``cancelled`` (asked to stop?).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from envpools_cli.server.trial.artifacts import open_artifact
from envpools_cli.server.trial.reporter import TrialInput
from envpools_cli.server.trial.runner import RolloutRunner
from envpools_cli.server.trial.site import TrialSite

__all__ = ["Record", "node_site", "run_on_node"]

Record = tuple[int, str, Any]
"""``(number, kind, payload)``: kind ``node``, ``update``, ``event``, ``file``, ``artifacts``."""

BATCH_SEC = 0.05
"""How long records gather before a batch leaves (events reach tailers within this)."""
BATCH_RECORDS = 500
FILE_CHUNK = 1 << 20

_sites: dict[tuple[str, str, str], TrialSite] = {}
_sites_lock = threading.Lock()


def node_site(sandbox: str, node: dict[str, Any]) -> TrialSite:
    """This node's site, made once per worker process: its own sandbox driver, agent CLIs
    (``ENVPOOLS_AGENTS_DIR`` of the node, else ``<node dir>/agents``) and trial folders
    (``ENVPOOLS_NODE_DIR``, else a folder of the node's temporary directory)."""
    default = Path(tempfile.gettempdir()) / f"envpools-node-{str(node.get('node_id'))[:12]}"
    data_dir = Path(os.environ.get("ENVPOOLS_NODE_DIR") or default)
    agents = Path(os.environ.get("ENVPOOLS_AGENTS_DIR") or data_dir / "agents")
    key = (sandbox, str(data_dir), str(agents))
    with _sites_lock:
        site = _sites.get(key)
        if site is None:
            site = TrialSite.create(
                sandbox=sandbox, data_dir=data_dir, agents_path=agents, node=dict(node)
            )
            _sites[key] = site
    return site


class _QueueReporter:
    """The runner's reports, in order, for the batches (a TrialReporter)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = dict(doc)
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

    def update(self, **changes: Any) -> dict[str, Any]:
        self.doc.update(changes)
        self.queue.put(("update", changes))
        return dict(self.doc)

    def event(self, event: str, data: dict[str, Any]) -> None:
        self.queue.put(("event", (event, data)))

    def artifacts(self, entries: list[dict[str, Any]]) -> None:
        self.queue.put(("files", entries))
        self.queue.put(("artifacts", entries))

    def end(
        self,
        changes: dict[str, Any],
        data: dict[str, Any],
        entries: list[dict[str, Any]] | None,
        *,
        fallback: dict[str, Any],
    ) -> dict[str, Any]:
        if entries is not None:
            self.queue.put(("files", entries))
        self.queue.put(("end", (changes, data, entries)))
        self.doc.update(changes)
        return dict(self.doc)


def run_on_node(
    trial: TrialInput, site: TrialSite, *, cancelled: Callable[[], bool]
) -> Iterator[list[Record]]:
    """Run ``trial`` here; yield its reports in numbered batches until it has ended."""
    reporter = _QueueReporter(trial.doc)
    runner = RolloutRunner(trial, site, reporter)
    numbered = 0

    def number(kind: str, payload: Any) -> Record:
        nonlocal numbered
        numbered += 1
        return (numbered, kind, payload)

    yield [number("node", site.node)]
    worker = threading.Thread(target=runner.run, name=f"trial-{trial.rollout_id}", daemon=True)
    worker.start()
    try:
        while True:
            if not runner.cancel.is_set() and cancelled():
                runner.cancel.set()
            batch: list[Record] = []
            deadline = time.monotonic() + BATCH_SEC
            done = False
            while len(batch) < BATCH_RECORDS:
                left = deadline - time.monotonic()
                try:
                    kind, payload = reporter.queue.get(timeout=max(0.0, left))
                except queue.Empty:
                    done = not worker.is_alive() and reporter.queue.empty()
                    break
                if kind == "files":
                    if batch:
                        yield batch
                        batch = []
                    for chunk in _file_chunks(site.trial_dir(trial.rollout_id), payload):
                        yield [number("file", chunk)]
                    continue
                batch.append(number(kind, payload))
            if batch:
                yield batch
            if done:
                return
    finally:
        if worker.is_alive():  # the task is being torn down: stop the sandbox with it
            runner.shutting_down = True
            runner.cancel.set()
            worker.join(10)
        shutil.rmtree(site.trial_dir(trial.rollout_id), ignore_errors=True)


def _file_chunks(trial_dir: Path, entries: list[dict[str, Any]]) -> Iterator[Any]:
    """``(path, offset, bytes)`` pieces of every indexed file, read without following links."""
    for entry in entries:
        path = str(entry["path"])
        fd = open_artifact(trial_dir, path)
        if fd is None:
            continue
        offset = 0
        with os.fdopen(fd, "rb", closefd=True) as handle:
            while piece := handle.read(FILE_CHUNK):
                yield (path, offset, piece)
                offset += len(piece)
        if offset == 0:
            yield (path, 0, b"")
