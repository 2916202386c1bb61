"""Every documented Environment Pools function, with the official SDK's signatures.

Each is a resource method (``resources.py``) taking the connection's fields as
keywords: ``backend_base``, ``api_key``, ``api_version`` (not on the fixed paths:
credentials, account) and ``session``, so a client object can route calls through its
own session. They return what the SDK returns: a dict, a list, bytes or None.
"""

from __future__ import annotations

from .bind import sdk_function
from .resources import (
    Account,
    Artifacts,
    Capabilities,
    Credentials,
    Pools,
    PoolTasks,
    Queue,
    Rollouts,
    clear_capabilities_cache,
    new_idempotency_key,
)

__all__ = [
    "cancel_rollout",
    "check_plan_access",
    "clear_capabilities_cache",
    "create_pool",
    "create_pool_task",
    "create_rollout",
    "create_rollouts_batch",
    "create_rollouts_concurrently",
    "delete_credential",
    "delete_pool",
    "delete_pool_task",
    "download_artifacts_zip",
    "fetch_artifact",
    "get_account",
    "get_capabilities",
    "get_openapi_schema",
    "get_pool",
    "get_pool_metrics",
    "get_queue_status",
    "get_rollout",
    "get_rollout_summary",
    "get_rollout_support_bundle",
    "get_rollout_usage",
    "get_schema_json",
    "list_credentials",
    "list_pool_tasks",
    "list_pools",
    "list_rollout_artifacts",
    "list_rollouts",
    "new_idempotency_key",
    "open_artifact",
    "open_artifacts_zip",
    "replay_rollout",
    "rotate_credential",
    "store_credential",
    "stream_rollout_events",
    "stream_rollout_events_resilient",
    "update_pool",
    "update_pool_task",
    "validate_rollout",
    "validate_rollout_request",
]

# /rollouts
create_rollout = sdk_function("create_rollout", Rollouts, Rollouts.create)
validate_rollout = sdk_function("validate_rollout", Rollouts, Rollouts.validate)
validate_rollout_request = sdk_function(
    "validate_rollout_request", Rollouts, Rollouts.check_request
)
list_rollouts = sdk_function("list_rollouts", Rollouts, Rollouts.list)
create_rollouts_batch = sdk_function("create_rollouts_batch", Rollouts, Rollouts.create_batch)
create_rollouts_concurrently = sdk_function(
    "create_rollouts_concurrently", Rollouts, Rollouts.create_concurrently
)
get_rollout = sdk_function("get_rollout", Rollouts, Rollouts.get)
get_rollout_summary = sdk_function("get_rollout_summary", Rollouts, Rollouts.summary)
get_rollout_usage = sdk_function("get_rollout_usage", Rollouts, Rollouts.usage)
get_rollout_support_bundle = sdk_function(
    "get_rollout_support_bundle", Rollouts, Rollouts.support_bundle
)
replay_rollout = sdk_function("replay_rollout", Rollouts, Rollouts.replay)
cancel_rollout = sdk_function("cancel_rollout", Rollouts, Rollouts.cancel)
stream_rollout_events = sdk_function("stream_rollout_events", Rollouts, Rollouts.events)
stream_rollout_events_resilient = sdk_function(
    "stream_rollout_events_resilient", Rollouts, Rollouts.events, auto_reconnect=True
)

# /rollouts/{id}/artifacts
list_rollout_artifacts = sdk_function("list_rollout_artifacts", Artifacts, Artifacts.list)
fetch_artifact = sdk_function("fetch_artifact", Artifacts, Artifacts.fetch)
open_artifact = sdk_function("open_artifact", Artifacts, Artifacts.open)
download_artifacts_zip = sdk_function("download_artifacts_zip", Artifacts, Artifacts.zip)
open_artifacts_zip = sdk_function("open_artifacts_zip", Artifacts, Artifacts.open_zip)

# /pools, /pools/{id}/tasks
list_pools = sdk_function("list_pools", Pools, Pools.list)
get_pool = sdk_function("get_pool", Pools, Pools.get)
create_pool = sdk_function("create_pool", Pools, Pools.create)
update_pool = sdk_function("update_pool", Pools, Pools.update)
delete_pool = sdk_function("delete_pool", Pools, Pools.delete)
get_pool_metrics = sdk_function("get_pool_metrics", Pools, Pools.metrics)
list_pool_tasks = sdk_function("list_pool_tasks", PoolTasks, PoolTasks.list)
create_pool_task = sdk_function("create_pool_task", PoolTasks, PoolTasks.create)
update_pool_task = sdk_function("update_pool_task", PoolTasks, PoolTasks.update)
delete_pool_task = sdk_function("delete_pool_task", PoolTasks, PoolTasks.delete)

# /queue, /capabilities, schemas
get_queue_status = sdk_function("get_queue_status", Queue, Queue.status)
get_capabilities = sdk_function("get_capabilities", Capabilities, Capabilities.get)
get_openapi_schema = sdk_function("get_openapi_schema", Capabilities, Capabilities.openapi_schema)
get_schema_json = sdk_function("get_schema_json", Capabilities, Capabilities.schema_json)

# fixed paths: no API version
store_credential = sdk_function("store_credential", Credentials, Credentials.store, versioned=False)
list_credentials = sdk_function("list_credentials", Credentials, Credentials.list, versioned=False)
delete_credential = sdk_function(
    "delete_credential", Credentials, Credentials.delete, versioned=False
)
rotate_credential = sdk_function(
    "rotate_credential", Credentials, Credentials.rotate, versioned=False
)
get_account = sdk_function("get_account", Account, Account.get, versioned=False)
check_plan_access = sdk_function(
    "check_plan_access", Account, Account.check_plan_access, versioned=False
)
