"""One Idempotency-Key, one rollout: under concurrent requests and lost responses."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from envpools_cli import client as ep
from tests.integration.conftest import Backend

from .conftest import rollout_request
from .proxy import Fault, FaultProxy, randomly

# An ad-hoc environment without a task: the rollout ends in `error` at once, so hundreds
# of them cost the backend nothing to run.
REQUEST = rollout_request("p", "t", environment={"backend": "harbor"})


def _all_rollouts(backend: Backend) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = ep.list_rollouts(limit=500, cursor=cursor, **backend.conn)
        found += page["rollouts"]
        cursor = page["next_cursor"]
        if not cursor:
            return found


def _race(backend: Backend, bodies: list[dict[str, Any]], key: str) -> list[httpx.Response]:
    """Send every body at the same moment, each on its own connection, with one key."""
    barrier = threading.Barrier(len(bodies))
    headers = {"Authorization": f"Bearer {backend.key}", "Idempotency-Key": key}

    def send(body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(base_url=backend.url, headers=headers, timeout=60) as client:
            barrier.wait()
            return client.post("/v1/rollouts", json=body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_twenty_concurrent_requests_with_one_key_create_one_rollout(backend: Backend) -> None:
    backend.pool("p")
    rounds = 5
    for round_ in range(rounds):
        answers = _race(backend, [REQUEST] * 20, key=f"race-{round_}")
        assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers]
        ids = {a.json()["rollout_id"] for a in answers}
        assert len(ids) == 1, f"round {round_}: {len(ids)} rollouts for one key"
        assert all(a.json() == answers[0].json() for a in answers), "the first response again"
    assert len(_all_rollouts(backend)) == rounds


def test_one_key_racing_with_two_bodies_creates_one_and_refuses_the_other(
    backend: Backend,
) -> None:
    backend.pool("p")
    other = {**REQUEST, "priority": 7}
    answers = _race(backend, [REQUEST, other] * 10, key="two-bodies")
    assert len(_all_rollouts(backend)) == 1
    created = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code == 409]
    assert len(created) == 10 and len(refused) == 10, Counter(a.status_code for a in answers)
    assert len({a.json()["rollout_id"] for a in created}) == 1
    winner = created[0].json()["priority"]
    assert all(a.json()["priority"] == winner for a in created), "only the winner's body"
    for answer in refused:
        error = answer.json()["error"]
        assert error["code"] == "idempotency_conflict"
        assert "different request body" in error["message"]
        assert answer.headers["x-request-id"] == error["request_id"]


def test_two_hundred_creates_with_a_fifth_of_responses_lost_make_two_hundred_rollouts(
    backend: Backend, proxy: FaultProxy
) -> None:
    """Responses are lost *after* the server created the rollout: dropped connections and
    502s. The client retries each create with its one key until it learns the outcome."""
    backend.pool("p")

    def lost(rng: Any) -> Fault:
        return Fault.drop_response() if rng.random() < 0.5 else Fault.error(502, reach_server=True)

    proxy.plan = randomly(0.2, lost, seed=13, method="POST", path=r"/rollouts$")
    session = ep.HTTPSession(
        retry=ep.RetryPolicy(max_retries=12, initial_delay=0.01, max_delay=0.05),
        sleep=lambda seconds: time.sleep(min(seconds, 0.05)),
    )

    def create(index: int) -> str:
        request = {**REQUEST, "metadata": {"index": index}}
        created = ep.create_rollout(
            request=request,
            idempotency_key=f"create-{index}",
            backend_base=proxy.url,
            api_key=backend.key,
            session=session,
        )
        return str(created["rollout_id"])

    try:
        with ThreadPoolExecutor(8) as pool:
            returned = list(pool.map(create, range(200)))
    finally:
        session.close()

    stored = _all_rollouts(backend)
    assert len(stored) == 200, f"{len(stored)} rollouts for 200 creates"
    assert sorted(returned) == sorted(r["rollout_id"] for r in stored)
    by_index = {r["metadata"]["index"]: r["rollout_id"] for r in stored}
    assert [by_index[i] for i in range(200)] == returned, "each create got its own rollout"
    faults = proxy.faults()
    # The plan's draws are seeded and one is taken per request, so the count is fixed:
    # 52 of the 252 responses were lost (27 connections dropped, 25 turned into 502s).
    assert len(faults) == 52, f"{len(faults)} responses were lost"
    assert (len(proxy.faults("drop_response")), len(proxy.faults("error"))) == (27, 25)
    assert all(r.upstream_status == 201 for r in faults), "lost after the server created it"
    creates = [r for r in proxy.records if r.request.matches("POST", r"/rollouts$")]
    assert len(creates) == 200 + len(faults), "one retry per lost response"
