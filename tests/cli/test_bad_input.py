"""Bad input across the CLI: every case fails cleanly, the same way.

The rule each case is held to (README "Exit codes" and "Output, for people and scripts"):

- the documented exit code, exactly;
- no traceback and no "internal error" anywhere (an expected failure is never a bug report);
- stdout empty: a failing command prints no data;
- text modes: stderr is one line ``error: <message>`` naming what is wrong (``says``),
  optionally followed by ONE hint line (what to do), and nothing else;
- JSON modes (``-o json``, ``-o jsonl``, ``--json``): stderr is exactly one line, a JSON object
  ``{"error": {"code", "message", "exit_code", ...}}`` whose ``exit_code`` is the process's.

Most cases run in-process against a real local backend on port 0; a few need something else
(a closed port, a server that answers HTML) or a real process (raw bytes on argv, startup).
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envpools_cli.app import run
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.settings import ServerSettings

from .conftest import EXAMPLE, envpools_subprocess

USAGE, ERROR, AUTH, NOT_FOUND, TRANSIENT = 2, 1, 4, 6, 7

POOL = "badinput"
TASK = "fix-failing-test"
MISSING_ROLLOUT = "ro_doesnotexist"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    says: str
    """A piece of the error message (case-insensitive): it names the culprit."""
    backend: str = "live"
    """live: the real local backend; down: a closed port; html: a server answering HTML."""
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    json: bool = False
    """The command writes JSON by default, so its errors are JSON too."""


def case(
    id: str,
    *argv: str,
    code: int,
    says: str,
    backend: str = "live",
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    json: bool = False,
) -> Case:
    return Case(id, argv, code, says, backend, env or {}, stdin, json)


CASES = [
    # --- the command line itself: unknown commands and flags, missing arguments -------------
    case("unknown-command", "rolouts", "list", code=USAGE, says="rolouts"),
    case("unknown-subcommand", "rollouts", "frobnicate", code=USAGE, says="frobnicate"),
    case("unknown-flag", "rollouts", "list", "--bogus", code=USAGE, says="--bogus"),
    case(
        "unknown-flag-json", "rollouts", "list", "--bogus", "-o", "json", code=USAGE, says="--bogus"
    ),
    case("unknown-global-flag", "--frob", "pools", "list", code=USAGE, says="--frob"),
    case("missing-argument", "rollouts", "get", code=USAGE, says="ROLLOUT_ID"),
    case(
        "missing-argument-jsonl", "rollouts", "usage", "-o", "jsonl", code=USAGE, says="ROLLOUT_ID"
    ),
    case("flag-without-value", "rollouts", "list", "--limit", code=USAGE, says="--limit"),
    case("jobs-status-is-not-a-command", "jobs", "status", "x", code=USAGE, says="status"),
    case("cancel-without-ids", "rollouts", "cancel", "--yes", code=USAGE, says="ROLLOUT_ID..."),
    case("compare-one-job", "jobs", "compare", "a", code=USAGE, says="JOB"),
    # --- bad values, bad enums, negative and huge numbers -----------------------------------
    case("limit-not-a-number", "rollouts", "list", "--limit", "abc", code=USAGE, says="--limit"),
    case("limit-negative", "rollouts", "list", "--limit", "-1", code=USAGE, says="--limit"),
    case(
        "limit-zero-json", "rollouts", "list", "--limit", "0", "--json", code=USAGE, says="--limit"
    ),
    case("status-bad-enum", "rollouts", "list", "--status", "bogus", code=USAGE, says="bogus"),
    case(
        "created-after-not-a-date",
        "rollouts",
        "list",
        "--created-after",
        "yesterday",
        code=USAGE,
        says="yesterday",
    ),
    case("output-bad-enum", "rollouts", "list", "-o", "xml", code=USAGE, says="xml"),
    case("fields-unknown", "pools", "list", "--fields", "nope", code=USAGE, says="nope"),
    case("color-bad-enum", "--color", "sometimes", "pools", "list", code=USAGE, says="sometimes"),
    case(
        "count-zero",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--count",
        "0",
        code=USAGE,
        says="--count",
    ),
    case(
        "count-huge",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--count",
        "99999999999999999999999",
        code=USAGE,
        says="--count",
    ),
    case(
        "agent-timeout-negative",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--agent-timeout",
        "-5",
        code=USAGE,
        says="--agent-timeout",
    ),
    case(
        "timeout-not-a-number",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--wait",
        "--timeout",
        "abc",
        code=USAGE,
        says="--timeout",
    ),
    case(
        "priority-not-an-int",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--priority",
        "high",
        code=USAGE,
        says="--priority",
    ),
    case(
        "metadata-without-equals",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--metadata",
        "novalue",
        code=USAGE,
        says="novalue",
    ),
    case(
        "task-without-dataset-or-pool",
        "rollouts",
        "create",
        "-t",
        "justatask",
        "-a",
        "oracle",
        code=USAGE,
        says="add --pool POOL",
    ),
    case(
        # With --pool, a bare task id is that pool's task: one it does not have is not found.
        "task-not-in-the-pool",
        "rollouts",
        "create",
        "-t",
        "justatask",
        "-a",
        "oracle",
        "--pool",
        POOL,
        code=NOT_FOUND,
        says="is not in pool",
    ),
    case("create-without-anything", "rollouts", "create", code=USAGE, says="missing"),
    case(
        "create-nowhere-to-run",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        code=USAGE,
        says="--pool",
    ),
    case(
        "wait-and-follow",
        "rollouts",
        "create",
        "-t",
        "d/t",
        "-a",
        "oracle",
        "--pool",
        POOL,
        "--wait",
        "--follow",
        code=USAGE,
        says="--wait",
    ),
    case(
        "wait-interval-zero",
        "rollouts",
        "wait",
        MISSING_ROLLOUT,
        "--interval",
        "0",
        code=USAGE,
        says="--interval",
    ),
    case(
        "wait-timeout-not-a-number",
        "rollouts",
        "wait",
        MISSING_ROLLOUT,
        "--timeout",
        "soon",
        code=USAGE,
        says="--timeout",
    ),
    case(
        "wait-min-reward-not-a-number",
        "rollouts",
        "wait",
        MISSING_ROLLOUT,
        "--min-reward",
        "high",
        code=USAGE,
        says="--min-reward",
    ),
    case(
        "tail-since-not-a-date",
        "rollouts",
        "tail",
        MISSING_ROLLOUT,
        "--since",
        "noon",
        code=USAGE,
        says="noon",
    ),
    case(
        "tail-type-bad-enum",
        "rollouts",
        "tail",
        MISSING_ROLLOUT,
        "--type",
        "bogus",
        code=USAGE,
        says="bogus",
    ),
    case(
        "tail-timeout-negative-jsonl",
        "rollouts",
        "tail",
        MISSING_ROLLOUT,
        "--timeout",
        "-1",
        "-o",
        "jsonl",
        code=USAGE,
        says="--timeout",
    ),
    case(
        "pool-concurrency-negative",
        "pools",
        "create",
        "p1",
        "--concurrency",
        "-1",
        code=USAGE,
        says="--concurrency",
    ),
    case(
        "pool-concurrency-not-a-number",
        "pools",
        "create",
        "p1",
        "--concurrency",
        "two",
        code=USAGE,
        says="--concurrency",
    ),
    case(
        "pool-spend-limit-nan",
        "pools",
        "create",
        "p1",
        "--spend-limit",
        "nan",
        code=USAGE,
        says="--spend-limit",
    ),
    case(
        "pool-spend-limit-inf",
        "pools",
        "create",
        "p1",
        "--spend-limit",
        "inf",
        code=USAGE,
        says="--spend-limit",
    ),
    case(
        "pool-priority-weight-not-a-number",
        "pools",
        "create",
        "p1",
        "--priority-weight",
        "heavy",
        code=USAGE,
        says="--priority-weight",
    ),
    case(
        "pool-template-bad-enum",
        "pools",
        "create",
        "p1",
        "--template",
        "NOPE",
        code=USAGE,
        says="NOPE",
    ),
    case("pool-create-without-id", "pools", "create", code=USAGE, says="pool"),
    # the backend validates ids: its 422 is a plain error (exit 2 is for checks before a request)
    case("pool-id-with-slash", "pools", "create", "a/b", code=ERROR, says="pool_id"),
    case(
        "task-cpus-zero",
        "pools",
        "tasks",
        "create",
        POOL,
        "t2",
        "--local",
        str(EXAMPLE),
        "--cpus",
        "0",
        code=USAGE,
        says="--cpus",
    ),
    case(
        "task-env-without-equals",
        "pools",
        "tasks",
        "create",
        POOL,
        "t2",
        "--local",
        str(EXAMPLE),
        "--env",
        "NOEQ",
        code=USAGE,
        says="NOEQ",
    ),
    case("task-without-source", "pools", "tasks", "create", POOL, "t2", code=USAGE, says="--local"),
    case(
        "jobs-attempts-zero",
        "jobs",
        "run",
        "-t",
        str(EXAMPLE),
        "-a",
        "oracle",
        "-k",
        "0",
        code=USAGE,
        says="--attempts",
    ),
    case(
        "jobs-pass-rate-above-one",
        "jobs",
        "run",
        "-t",
        str(EXAMPLE),
        "-a",
        "oracle",
        "--min-pass-rate",
        "1.5",
        code=USAGE,
        says="--min-pass-rate",
    ),
    case("jobs-run-without-tasks", "jobs", "run", "-a", "oracle", code=USAGE, says="--tasks"),
    case("jobs-empty-agent", "jobs", "run", "-t", str(EXAMPLE), "-a", "", code=USAGE, says="agent"),
    case(
        "jobs-agent-colon-no-model",
        "jobs",
        "run",
        "-t",
        str(EXAMPLE),
        "-a",
        "codex:",
        code=USAGE,
        says="no model",
    ),
    case(
        "jobs-pass-reward-nan",
        "jobs",
        "run",
        "-t",
        str(EXAMPLE),
        "-a",
        "oracle",
        "--pass-reward",
        "nan",
        code=USAGE,
        says="--pass-reward",
    ),
    case(
        "jobs-junit-under-a-file",
        "jobs",
        "run",
        "-t",
        str(EXAMPLE),
        "-a",
        "oracle",
        "--junit",
        "{empty}/j.xml",
        code=USAGE,
        says="not a folder",
    ),
    case(
        "jobs-resume-junit-is-a-folder",
        "jobs",
        "resume",
        "nojob",
        "--junit",
        "{dir}",
        code=USAGE,
        says="directory",
    ),
    case("local-up-port-too-big", "local", "up", "--port", "70000", code=USAGE, says="--port"),
    case("local-up-port-negative", "local", "up", "--port", "-1", code=USAGE, says="--port"),
    case(
        "local-up-cpu-overcommit-zero",
        "local",
        "up",
        "--cpu-overcommit",
        "0",
        code=USAGE,
        says="--cpu-overcommit",
    ),
    case(
        "local-serve-executor-unknown",
        "local",
        "serve",
        "--executor",
        "kubernetes",
        code=USAGE,
        says="executor 'kubernetes'",
    ),
    case(
        "local-serve-ray-without-address",
        "local",
        "serve",
        "--executor",
        "ray",
        code=USAGE,
        says="--ray-address",
    ),
    case(
        "local-serve-env-overcommit-bad",
        "local",
        "serve",
        code=USAGE,
        says="ENVPOOLS_CPU_OVERCOMMIT",
        env={"ENVPOOLS_CPU_OVERCOMMIT": "lots"},
    ),
    case("demo-timeout-not-a-number", "demo", "--timeout", "forever", code=USAGE, says="--timeout"),
    case("completion-unknown-shell", "completion", "tcsh", code=USAGE, says="tcsh"),
    case(
        "agents-install-unknown", "agents", "install", "notanagent", code=USAGE, says="notanagent"
    ),
    case(
        "agents-install-version-injection",
        "agents",
        "install",
        "codex",
        "--version",
        "1.0; rm -rf /",
        code=USAGE,
        says="--version",
    ),
    case("config-set-unknown-key", "config", "set", "bogus", "1", code=USAGE, says="bogus"),
    case("config-set-bad-output", "config", "set", "output", "xml", code=USAGE, says="xml"),
    case(
        "config-set-bad-url", "config", "set", "api_url", "not a url", code=USAGE, says="not a url"
    ),
    case("config-use-unknown-profile", "config", "use", "nope", code=USAGE, says="nope"),
    case("config-get-unknown-key", "config", "get", "bogus", code=USAGE, says="bogus"),
    case("cancel-needs-yes", "rollouts", "cancel", MISSING_ROLLOUT, code=USAGE, says="--yes"),
    # --- files: missing, a folder, binary, not JSON/YAML, not UTF-8, empty, wrong shape -----
    case(
        "from-file-missing", "rollouts", "create", "-f", "{missing}", code=USAGE, says="{missing}"
    ),
    case("from-file-folder", "rollouts", "create", "-f", "{dir}", code=USAGE, says="directory"),
    case("from-file-binary", "rollouts", "create", "-f", "{binary}", code=USAGE, says="{binary}"),
    case(
        "from-file-binary-json",
        "rollouts",
        "create",
        "-f",
        "{binary}",
        "-o",
        "json",
        code=USAGE,
        says="{binary}",
    ),
    case("from-file-not-utf8", "rollouts", "create", "-f", "{latin1}", code=USAGE, says="UTF-8"),
    case(
        "from-file-invalid-yaml",
        "rollouts",
        "create",
        "-f",
        "{badyaml}",
        code=USAGE,
        says="{badyaml}",
    ),
    case("from-file-empty", "rollouts", "create", "-f", "{empty}", code=USAGE, says="empty"),
    case(
        "from-file-scalar", "rollouts", "create", "-f", "{scalar}", code=USAGE, says="--from-file"
    ),
    case(
        "from-file-stdin-binary",
        "rollouts",
        "create",
        "-f",
        "-",
        code=USAGE,
        says="stdin",
        stdin=b"\x00\xff\xfe\x89PNG\r\n",
    ),
    case(
        "from-file-wrong-types",
        "rollouts",
        "create",
        "-f",
        "{wrongtypes}",
        code=USAGE,
        says="agent",
    ),
    case("pool-from-file-folder", "pools", "create", "-f", "{dir}", code=USAGE, says="directory"),
    case(
        "pool-from-file-invalid-json",
        "pools",
        "create",
        "-f",
        "{badjson}",
        code=USAGE,
        says="{badjson}",
    ),
    case("pool-from-file-list", "pools", "create", "-f", "{list}", code=USAGE, says="--from-file"),
    case(
        "pool-local-missing",
        "pools",
        "create",
        "p2",
        "--local",
        "{missing}",
        code=USAGE,
        says="{missing}",
    ),
    case(
        "pool-local-is-a-file",
        "pools",
        "create",
        "p2",
        "--local",
        "{empty}",
        code=USAGE,
        says="{empty}",
    ),
    case(
        "task-from-file-binary",
        "pools",
        "tasks",
        "update",
        POOL,
        TASK,
        "-f",
        "{binary}",
        code=USAGE,
        says="{binary}",
    ),
    case(
        "replay-overrides-missing",
        "rollouts",
        "replay",
        MISSING_ROLLOUT,
        "--overrides",
        "{missing}",
        code=USAGE,
        says="{missing}",
    ),
    case(
        "replay-overrides-not-utf8",
        "rollouts",
        "replay",
        MISSING_ROLLOUT,
        "--overrides",
        "{latin1}",
        code=USAGE,
        says="UTF-8",
    ),
    case("jobs-from-file-invalid", "jobs", "run", "-f", "{badyaml}", code=USAGE, says="{badyaml}"),
    case("jobs-from-file-binary", "jobs", "run", "-f", "{binary}", code=USAGE, says="{binary}"),
    case(
        "jobs-tasks-missing",
        "jobs",
        "run",
        "-t",
        "{missing}",
        "-a",
        "oracle",
        code=USAGE,
        says="{missing}",
    ),
    case(
        "jobs-tasks-is-a-file",
        "jobs",
        "run",
        "-t",
        "{empty}",
        "-a",
        "oracle",
        code=USAGE,
        says="{empty}",
    ),
    case(
        "wait-junit-under-a-file",
        "rollouts",
        "wait",
        MISSING_ROLLOUT,
        "--junit",
        "{empty}/report.xml",
        code=USAGE,
        says="report.xml",
    ),
    case(
        "wait-junit-is-a-folder",
        "rollouts",
        "wait",
        MISSING_ROLLOUT,
        "--junit",
        "{dir}",
        code=USAGE,
        says="directory",
    ),
    case(
        "download-zip-under-a-file",
        "rollouts",
        "download",
        MISSING_ROLLOUT,
        "--zip-file",
        "{empty}/a.zip",
        code=USAGE,
        says="not a folder",
    ),
    case(
        "download-dir-is-a-file",
        "rollouts",
        "download",
        MISSING_ROLLOUT,
        "--dir",
        "{empty}",
        code=USAGE,
        says="{empty}",
    ),
    case(
        "credential-value-file-missing",
        "credentials",
        "store",
        "K",
        "--type",
        "OPENAI_API_KEY",
        "--value-file",
        "{missing}",
        code=USAGE,
        says="{missing}",
    ),
    case(
        "credential-value-file-folder",
        "credentials",
        "store",
        "K",
        "--type",
        "OPENAI_API_KEY",
        "--value-file",
        "{dir}",
        code=USAGE,
        says="directory",
    ),
    case(
        "credential-value-binary",
        "credentials",
        "store",
        "K",
        "--type",
        "OPENAI_API_KEY",
        "--value-file",
        "{binary}",
        code=USAGE,
        says="{binary}",
    ),
    case(
        "credential-empty-stdin",
        "credentials",
        "store",
        "K",
        "--type",
        "OPENAI_API_KEY",
        code=USAGE,
        says="empty",
        stdin=b"",
    ),
    case("credential-without-type", "credentials", "store", "K", code=USAGE, says="--type"),
    case(
        "login-key-file-missing",
        "auth",
        "login",
        "--key-file",
        "{missing}",
        code=USAGE,
        says="{missing}",
    ),
    case(
        "login-key-not-ascii",
        "auth",
        "login",
        code=USAGE,
        says="ASCII",
        stdin="ep_kéy_ünïcode".encode(),
    ),
    case(
        "login-key-with-space",
        "auth",
        "login",
        code=USAGE,
        says="whitespace",
        stdin=b"ep_local abc",
    ),
    case("login-key-not-utf8", "auth", "login", code=USAGE, says="UTF-8", stdin=b"ep_\xff\xfe"),
    case("login-empty-key", "auth", "login", code=USAGE, says="empty", stdin=b"\n"),
    # --- ids the backend does not know, or cannot be ids ------------------------------------
    case(
        "get-unknown-rollout",
        "rollouts",
        "get",
        MISSING_ROLLOUT,
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "get-unknown-rollout-json",
        "rollouts",
        "get",
        MISSING_ROLLOUT,
        "--json",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "get-path-traversal-id",
        "rollouts",
        "get",
        "../../etc/passwd",
        code=NOT_FOUND,
        says="passwd",
    ),
    case("get-empty-id", "rollouts", "get", "", code=USAGE, says="empty or blank"),
    case("get-whitespace-id", "rollouts", "get", "  ", code=USAGE, says="empty or blank"),
    case(
        "artifacts-unknown-rollout-jsonl",
        "rollouts",
        "artifacts",
        MISSING_ROLLOUT,
        "-o",
        "jsonl",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "download-unknown-rollout",
        "rollouts",
        "download",
        MISSING_ROLLOUT,
        "--dir",
        "{new}",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "usage-unknown-rollout-json",
        "rollouts",
        "usage",
        MISSING_ROLLOUT,
        "-o",
        "json",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "tail-unknown-rollout-jsonl",
        "rollouts",
        "tail",
        MISSING_ROLLOUT,
        "-o",
        "jsonl",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "wait-unknown-rollout",
        "rollouts",
        "wait",
        MISSING_ROLLOUT,
        "--timeout",
        "5",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "cancel-unknown-rollout-json",
        "rollouts",
        "cancel",
        MISSING_ROLLOUT,
        "--yes",
        "--json",
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "replay-unknown-rollout",
        "rollouts",
        "replay",
        MISSING_ROLLOUT,
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
    ),
    case(
        "support-bundle-unknown",
        "rollouts",
        "support-bundle",
        MISSING_ROLLOUT,
        code=NOT_FOUND,
        says=MISSING_ROLLOUT,
        json=True,
    ),
    case("pool-get-unknown", "pools", "get", "nopool", code=NOT_FOUND, says="nopool"),
    case(
        "pool-update-unknown",
        "pools",
        "update",
        "nopool",
        "--concurrency",
        "2",
        code=NOT_FOUND,
        says="nopool",
    ),
    case(
        "pool-delete-unknown", "pools", "delete", "nopool", "--yes", code=NOT_FOUND, says="nopool"
    ),
    case(
        "pool-tasks-unknown-pool", "pools", "tasks", "list", "nopool", code=NOT_FOUND, says="nopool"
    ),
    case(
        "pool-task-delete-unknown",
        "pools",
        "tasks",
        "delete",
        POOL,
        "notask",
        "--yes",
        code=NOT_FOUND,
        says="notask",
    ),
    case(
        "credential-delete-unknown",
        "credentials",
        "delete",
        "NOPE",
        "--yes",
        code=NOT_FOUND,
        says="NOPE",
    ),
    case(
        "credential-rotate-unknown",
        "credentials",
        "rotate",
        "NOPE",
        code=NOT_FOUND,
        says="NOPE",
        stdin=b"v",
    ),
    case("jobs-resume-unknown", "jobs", "resume", "nojob", code=NOT_FOUND, says="nojob"),
    case("jobs-show-unknown-json", "jobs", "show", "nojob", "--json", code=NOT_FOUND, says="nojob"),
    case(
        "capabilities-schema-extra-argument",
        "capabilities",
        "schema",
        "NoSuchModel",
        code=USAGE,
        says="NoSuchModel",
    ),
    # --- environment and configuration with bad values --------------------------------------
    case("env-output-bad", "pools", "list", code=USAGE, says="xml", env={"ENVPOOLS_OUTPUT": "xml"}),
    case(
        "env-api-version-bad",
        "pools",
        "list",
        code=USAGE,
        says="v9",
        env={"ENVPOOLS_API_VERSION": "v9"},
    ),
    case(
        "env-synth-url-garbage",
        "pools",
        "list",
        code=USAGE,
        says="SYNTH_BACKEND_URL",
        env={"ENVPOOLS_API_URL": "", "SYNTH_BACKEND_URL": "garbage"},
    ),
    case(
        "env-url-not-absolute",
        "pools",
        "list",
        code=USAGE,
        says="not an absolute",
        env={"ENVPOOLS_API_URL": "localhost:8000"},
    ),
    case(
        "env-url-bad-scheme-json",
        "pools",
        "list",
        "--json",
        code=USAGE,
        says="ftp",
        env={"ENVPOOLS_API_URL": "ftp://127.0.0.1:21"},
    ),
    case(
        "flag-url-malformed",
        "--api-url",
        "http://[::1",
        "pools",
        "list",
        code=USAGE,
        says="http://[::1",
    ),
    case(
        "flag-url-bad-port",
        "--api-url",
        "http://127.0.0.1:99999",
        "pools",
        "list",
        code=USAGE,
        says="99999",
    ),
    case(
        "env-key-not-ascii",
        "pools",
        "list",
        code=USAGE,
        says="ASCII",
        env={"ENVPOOLS_API_KEY": "ep_kéy"},
    ),
    case(
        "env-key-not-ascii-json",
        "pools",
        "list",
        "-o",
        "json",
        code=USAGE,
        says="ASCII",
        env={"ENVPOOLS_API_KEY": "ep_kéy"},
    ),
    case(
        "env-key-inner-whitespace",
        "pools",
        "list",
        code=USAGE,
        says="whitespace",
        env={"ENVPOOLS_API_KEY": "ep_local abc"},
    ),
    case(
        "env-key-newline",
        "pools",
        "list",
        code=USAGE,
        says="whitespace",
        env={"ENVPOOLS_API_KEY": "ep_local\nX-Injected: 1"},
    ),
    case(
        "env-key-rejected",
        "pools",
        "list",
        code=AUTH,
        says="not valid",
        env={"ENVPOOLS_API_KEY": "ep_local_not_a_key"},
    ),
    case(
        "unknown-profile-no-key",
        "--profile",
        "nope",
        "pools",
        "list",
        code=AUTH,
        says="nope",
        env={"ENVPOOLS_API_KEY": ""},
    ),
    case(
        "config-file-not-toml",
        "pools",
        "list",
        code=ERROR,
        says="not valid TOML",
        env={"_CONFIG": "this is = = not toml"},
    ),
    case(
        "config-file-not-utf8",
        "pools",
        "list",
        code=ERROR,
        says="config.toml",
        env={"_CONFIG": "\udcff\udcfe = 1"},
    ),
    case(
        "config-profiles-not-a-table",
        "pools",
        "list",
        code=ERROR,
        says="profiles",
        env={"_CONFIG": "profiles = 3"},
    ),
    case(
        "config-profile-url-bad",
        "pools",
        "list",
        code=USAGE,
        says="not an absolute",
        env={
            "_CONFIG": 'current_profile = "x"\n[profiles.x]\napi_url = "nowhere"\n',
            "ENVPOOLS_API_URL": "",
        },
    ),
    case(
        "env-debug-not-a-bool",
        "pools",
        "list",
        code=USAGE,
        says="ENVPOOLS_DEBUG",
        env={"ENVPOOLS_DEBUG": "maybe"},
    ),
    case(
        "env-config-dir-is-a-file",
        "config",
        "set",
        "output",
        "json",
        code=ERROR,
        says="{empty}",
        env={"ENVPOOLS_CONFIG_DIR": "{empty}"},
    ),
    case(
        "env-state-dir-is-a-file",
        "local",
        "status",
        code=ERROR,
        says="{empty}",
        env={"ENVPOOLS_STATE_DIR": "{empty}"},
    ),
    # --- the backend: down, or not an envpools backend ---------------------------------------
    case("down-list", "rollouts", "list", code=TRANSIENT, says="failed", backend="down"),
    case(
        "down-get-json",
        "rollouts",
        "get",
        "ro_1",
        "-o",
        "json",
        code=TRANSIENT,
        says="failed",
        backend="down",
    ),
    case(
        "down-tail-jsonl",
        "rollouts",
        "tail",
        "ro_1",
        "-o",
        "jsonl",
        code=TRANSIENT,
        says="failed",
        backend="down",
    ),
    case("down-capabilities", "capabilities", "get", code=TRANSIENT, says="failed", backend="down"),
    case("html-list", "pools", "list", code=ERROR, says="not JSON", backend="html"),
    case(
        "html-get-json",
        "rollouts",
        "get",
        "ro_1",
        "--json",
        code=ERROR,
        says="not JSON",
        backend="html",
    ),
    case("html-credentials", "credentials", "list", code=ERROR, says="not JSON", backend="html"),
]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    thread = BackendThread(
        ServerSettings(data_dir=tmp_path_factory.mktemp("backend"), heartbeat_sec=1.0)
    )
    thread.start()
    _, key = thread.create_key("pro", name="bad-input")
    from envpools_cli import client as ep
    from envpools_cli.commands.tasks import local_task_body

    ep.create_pool(
        backend_base=thread.url,
        api_key=key,
        request={"pool_id": POOL, "tasks": [local_task_body(EXAMPLE)]},
    )
    yield thread.url, key
    thread.stop()


class _HTML(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def html_backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HTML)
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def down_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    (root / "folder").mkdir()
    contents: dict[str, bytes] = {
        "binary": bytes(range(256)) * 4,
        "latin1": "agent: 'oracle'\ntask_ref: {dataset: d, task_id: 'café'}\n".encode("latin-1"),
        "badyaml": b"agent: [oracle\ntask: {",
        "badjson": b'{"pool_id": "p", ',
        "empty": b"",
        "scalar": b"42\n",
        "list": b'[{"pool_id": "a"}]',
        "wrongtypes": b"agent: oracle\ntask_ref: {dataset: d, task_id: t}\npool_id: "
        + POOL.encode()
        + b"\nagent_timeout: soon\n",
    }
    paths = {
        "dir": str(root / "folder"),
        "missing": str(root / "missing"),
        "new": str(root / "new-dir"),
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)
        paths[name] = str(root / name)
    return paths


@pytest.fixture(scope="module")
def built_command() -> object:
    """The command tree, built once: building it is half a second and the app is static."""
    import typer

    from envpools_cli.app import app

    return typer.main.get_command(app)


# --- the rule ---------------------------------------------------------------------------------


def _json_mode(argv: tuple[str, ...], env: dict[str, str]) -> bool:
    for index, arg in enumerate(argv):
        if arg == "--json":
            return True
        if arg in ("-o", "--output") and argv[index + 1 : index + 2] in (("json",), ("jsonl",)):
            return True
    return env.get("ENVPOOLS_OUTPUT") in ("json", "jsonl")


def assert_clean_failure(
    case: Case, code: int, out: str, err: str, *, says: str, json_mode: bool
) -> None:
    shown = f"exit {code}\n--- stdout\n{out}--- stderr\n{err}"
    for text in (out, err):
        assert "Traceback" not in text, shown
        assert "internal error" not in text, shown
    assert code == case.code, shown
    assert out == "", "a failing command prints no data\n" + shown
    lines = [line for line in err.splitlines() if line.strip()]
    if json_mode:
        assert len(lines) == 1, "JSON modes: the error is ONE JSON object on stderr\n" + shown
        error = json.loads(lines[0])["error"]
        assert error["exit_code"] == code, shown
        assert isinstance(error["code"], str) and error["code"], shown
        message = error["message"]
    else:
        assert 1 <= len(lines) <= 2, "one error line, at most one hint line\n" + shown
        assert lines[0].startswith("error: "), shown
        assert not any(line.startswith(("error:", "Error:")) for line in lines[1:]), shown
        message = lines[0][len("error: ") :]
    assert "\n" not in message and len(message) <= 400, shown
    assert says.lower() in message.lower(), f"the message names {says!r}\n" + shown


# --- in-process cases -------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case,
    files: dict[str, str],
    live_backend: tuple[str, str],
    html_backend: str,
    down_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    isolated_environment: Path,
    built_command: object,
) -> None:
    import typer

    monkeypatch.setattr(typer.main, "get_command", lambda _app: built_command)
    url, key = {
        "live": live_backend,
        "down": (down_url, live_backend[1]),
        "html": (html_backend, live_backend[1]),
    }[case.backend]
    monkeypatch.setenv("ENVPOOLS_API_URL", url)
    monkeypatch.setenv("ENVPOOLS_API_KEY", key)
    monkeypatch.setenv("ENVPOOLS_NO_INPUT", "1")
    monkeypatch.chdir(isolated_environment)
    for name, value in case.env.items():
        if name == "_CONFIG":
            config = isolated_environment / "config" / "envpools" / "config.toml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_bytes(value.encode("utf-8", "surrogateescape"))
        else:
            monkeypatch.setenv(name, value.format(**files))
    argv = [arg.format(**files) for arg in case.argv]
    says = case.says.format(**files)
    stdin = io.TextIOWrapper(io.BytesIO(case.stdin or b""), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    capsys.readouterr()
    code = run(argv)
    captured = capsys.readouterr()
    assert_clean_failure(
        case,
        code,
        captured.out,
        captured.err,
        says=says,
        json_mode=case.json or _json_mode(case.argv, case.env),
    )


def test_corpus_is_large_and_covers_every_command_group() -> None:
    assert len(CASES) + len(PROCESS_CASES) >= 60
    groups = {c.argv[0] if not c.argv[0].startswith("-") else c.argv[2] for c in CASES}
    assert {
        "rollouts",
        "pools",
        "credentials",
        "capabilities",
        "config",
        "auth",
        "local",
        "jobs",
        "agents",
        "demo",
        "completion",
    } <= groups


# --- cases that need a real process -----------------------------------------------------------

PROCESS_CASES = [
    case("argv-not-utf8", "rollouts", "get", "ro_\udcff\udcfe", code=USAGE, says="not valid UTF-8"),
    case(
        "startup-broken-config-debug-env",
        "pools",
        "list",
        code=ERROR,
        says="TOML",
        env={"_CONFIG": "[[[", "ENVPOOLS_DEBUG": "1"},
    ),
]


@pytest.mark.parametrize("case", PROCESS_CASES, ids=[c.id for c in PROCESS_CASES])
def test_bad_input_in_a_real_process(
    case: Case, live_backend: tuple[str, str], isolated_environment: Path
) -> None:
    url, key = live_backend
    env = {
        "ENVPOOLS_API_URL": url,
        "ENVPOOLS_API_KEY": key,
        "ENVPOOLS_NO_INPUT": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    for name, value in case.env.items():
        if name == "_CONFIG":
            config = isolated_environment / "config" / "envpools" / "config.toml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(value)
        else:
            env[name] = value
    result = envpools_subprocess(*case.argv, env=env, timeout=60)
    assert_clean_failure(
        case,
        result.returncode,
        result.stdout,
        result.stderr,
        says=case.says,
        json_mode=_json_mode(case.argv, case.env),
    )
