"""Run by the OFFICIAL synth-ai SDK (its own venv) against our local backend.

Usage: python drive_local_backend.py TASK_DIR FREE_KEY; SYNTH_BACKEND_URL and SYNTH_API_KEY
point at the backend. Every assertion failure exits non-zero with a traceback.
"""

import io
import json
import sys
import warnings
import zipfile

import httpx
from synth_ai.sdk import environment_pools as ep

warnings.simplefilter("ignore")
task_dir, free_key = sys.argv[1], sys.argv[2]
checked = []


def check(name, condition, detail=""):
    assert condition, f"{name}: {detail}"
    checked.append(name)


client = ep.EnvironmentPoolsClient()  # plan check against /api/v1/me
check("plan check", client._account_info.get("plan") == "pro", client._account_info)

task = ep.PoolTaskInstance(
    task_id="fix", backend="harbor", data_source=ep.PoolDataSource(type="local", path=task_dir)
)
pool = ep.create_pool(pool_id="sdk-pool", template=ep.PoolTemplate.HARBOR_CODING, tasks=[task])
check("create_pool", pool.get("pool_id") == "sdk-pool" and pool.get("pool_type") == "sandbox", pool)
check("list_pools", [p["pool_id"] for p in ep.list_pools()] == ["sdk-pool"])
check("pools.list", client.pools.list()[0].pool_id == "sdk-pool")
check("get_pool", ep.get_pool("sdk-pool")["tasks"][0]["task_id"] == "fix")
ep.update_pool("sdk-pool", request={"concurrency": 2})
check("update_pool", client.pools.get("sdk-pool").concurrency == 2)
check("list_pool_tasks", [t["task_id"] for t in ep.list_pool_tasks("sdk-pool")] == ["fix"])
ep.create_pool_task("sdk-pool", request=ep.PoolTask.from_docker("img", "python:3.12"))
ep.update_pool_task(
    "sdk-pool",
    "img",
    request={"task_id": "img", "backend": "harbor", "docker_image": "python:3.13"},
)
ep.delete_pool_task("sdk-pool", "img")
check("pool task crud", len(client.pools.tasks.list("sdk-pool")) == 1)

request = ep.RolloutRequestV1(
    task_ref=ep.TaskRef(dataset="sdk", task_id="fix"),
    agent=ep.AgentSpec(harness="oracle"),
    pool_id="sdk-pool",
    container_id="",
    timeouts=ep.TimeoutSpec(agent_sec=120),
)
dry = ep.create_rollout(request=request, dry_run=True)
check("dry_run", dry.get("status") == "dry_run", dry)
valid = ep.validate_rollout(request=request)
check("validate", valid.get("valid") is True and valid.get("selected_pool_id") == "sdk-pool", valid)
created = ep.create_rollout(request=request, idempotency_key="sdk-key-1")
again = ep.create_rollout(request=request, idempotency_key="sdk-key-1")
rollout_id = created["rollout_id"]
check("idempotent create", again["rollout_id"] == rollout_id)
events = list(ep.stream_rollout_events(rollout_id))
envelopes = [e["data"] for e in events]
check("events", envelopes[-1]["data"]["status"] == "succeeded", envelopes[-1])
check("event ids", [e["id"] for e in events] == [str(x["seq"]) for x in envelopes])
handle = client.rollouts.get(rollout_id)
final = handle.wait(timeout=60, poll_interval=0.5)
check("wait", final["status"] == "succeeded" and final["reward_primary"] == 1.0, final)
check("summary", handle.summary()["status"] == "succeeded")
resumed = list(ep.stream_rollout_events_resilient(rollout_id, cursor=events[2]["id"]))
check("resume after cursor", resumed[0]["id"] == events[3]["id"])
manifest = handle.artifacts()
paths = [a["path"] for a in manifest["artifacts"]]
check("artifacts", "verifier/reward.txt" in paths, paths)
check("fetch_artifact", handle.download("verifier/reward.txt").strip() == b"1")
check(
    "fetch_artifact leading slash",
    ep.fetch_artifact(rollout_id, "/verifier/reward.txt").strip() == b"1",
)
archive = zipfile.ZipFile(io.BytesIO(handle.download_zip()))
check("zip", sorted(archive.namelist()) == sorted(paths))
usage = ep.UsageSnapshot(**handle.usage())
check("usage", usage.rollout_id == rollout_id and usage.wall_time_sec > 0)
bundle = handle.support_bundle()
check("support bundle", bundle["rollout"]["rollout_id"] == rollout_id)
replayed = handle.replay(overrides={"agent": {"harness": "nop"}})
check("replay", replayed["replay_of"] == rollout_id)
check("cancel finished", handle.cancel()["status"] == "succeeded")
listed = client.rollouts.list(limit=10)
check("list_rollouts", {r["rollout_id"] for r in listed["rollouts"]} >= {rollout_id})
batch = ep.create_rollouts_batch(requests=[request, request])
check("batch", len(batch["rollouts"]) == 2 and batch["errors"] == [])
metrics = ep.get_pool_metrics("sdk-pool")
check("metrics", {"queue_depth", "running", "total_count", "success_rate"} <= set(metrics))
check("queue", "pools" in ep.get_queue_status())
caps = client.capabilities.get()
check("capabilities", any(a["name"] == "oracle" for a in caps["agents"]))
check("openapi", "/v1/rollouts" in client.capabilities.openapi_schema()["paths"])
check("schema", "RolloutRequestV1" in client.capabilities.schema_json()["schemas"])
check("legacy prefix", ep.get_rollout(rollout_id, api_version="legacy")["rollout_id"] == rollout_id)

stored = client.credentials.store(
    credential_name="REG",
    credential_type="DOCKER_REGISTRY",
    credential_value={"username": "u", "token": "t"},
)
check("store_credential", "credential_value" not in stored)
check("list_credentials", [c["credential_name"] for c in client.credentials.list()] == ["REG"])
client.credentials.rotate(stored["credential_id"], new_value="t2")
client.credentials.delete(stored["credential_id"])
check("credentials crud", client.credentials.list() == [])

try:
    ep.get_rollout("ro_missing")
except httpx.HTTPStatusError as exc:
    check("404", exc.response.status_code == 404 and "error" in exc.response.json())
else:
    raise AssertionError("404 expected")
try:
    ep.list_pools(api_key=free_key)
except ep.PlanGatingError as exc:
    check("plan gating", "Your current plan is 'free'" in str(exc), str(exc))
else:
    raise AssertionError("PlanGatingError expected")
try:
    ep.EnvironmentPoolsClient(api_key=free_key)
except ep.PlanGatingError:
    checked.append("plan check gating")
print(json.dumps({"checked": checked}))
