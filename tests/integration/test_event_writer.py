"""The event writer (issue 20): running trials' events stored by one thread, many to a
transaction, each rollout's in the order handed over, and a lifecycle event stored
before ``publish`` returns."""

from __future__ import annotations

import threading
from pathlib import Path

from envpools_cli.server.state.events import EventBus
from envpools_cli.server.state.store import Store
from envpools_cli.server.state.writer import EventWriter


def test_many_trials_many_lines_in_order_and_grouped(tmp_path: Path) -> None:
    store = Store(tmp_path / "envpools.db")
    writer = EventWriter(store, EventBus())
    rollouts, lines = 40, 250

    def trial(index: int) -> None:
        rollout_id = f"ro_{index}"
        writer.publish(rollout_id, "lifecycle", {"status": "running"}, wait=True)
        stored = store.count_events(rollout_id)
        assert stored == 1, "a lifecycle event is stored when publish returns"
        for line in range(1, lines + 1):
            writer.publish(rollout_id, "agent", {"line": line})
        writer.publish(rollout_id, "lifecycle", {"status": "succeeded"}, wait=True)
        assert store.count_events(rollout_id) == lines + 2, "and all before it"

    threads = [threading.Thread(target=trial, args=(i,)) for i in range(rollouts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    writer.stop()
    for index in range(rollouts):
        events = store.events_after(f"ro_{index}", 0, limit=lines + 10)
        assert [e["seq"] for e in events] == list(range(1, lines + 3))
        assert [e["data"]["line"] for e in events[1:-1]] == list(range(1, lines + 1))
        assert events[-1]["data"]["status"] == "succeeded"
    assert writer.written == rollouts * (lines + 2)
    assert writer.batches < writer.written / 5, (writer.batches, writer.written)
    store.close()
