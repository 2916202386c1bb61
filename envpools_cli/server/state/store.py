"""The local backend's state: one SQLite database in WAL mode.

Each thread gets its own connection; writes go through ``tx()`` (``BEGIN IMMEDIATE``)
so that read-modify-write sequences, such as allocating the next event ``seq``, are
atomic across the request threads and the rollout workers.

Secrets: the folder is 0700 and the database, its WAL and shared-memory files are 0600
whatever the umask; API keys are stored as SHA-256 hashes; credential values are
encrypted (``vault.Vault``) with a key kept outside the database; deleted rows are
overwritten (``secure_delete``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envpools_cli.server.state.frames import (
    FRAME_SQL,
    TERMINAL_SQL,
    data_text,
    frame_envelope,
    frame_text,
    is_terminal,
)
from envpools_cli.server.state.vault import Vault, VaultError

__all__ = ["Org", "Store", "hash_key", "now_iso", "parse_time"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS orgs (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    feature_flags TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    key_prefix TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs(org_id),
    name TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS pools (
    org_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, pool_id)
);
CREATE TABLE IF NOT EXISTS pool_tasks (
    org_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, pool_id, task_id)
);
CREATE TABLE IF NOT EXISTS rollouts (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    pool_id TEXT,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    dataset TEXT,
    task_id TEXT,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    request TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_org ON rollouts (org_id, n);
CREATE INDEX IF NOT EXISTS rollouts_status ON rollouts (status, priority, n);
CREATE INDEX IF NOT EXISTS rollouts_pool_status ON rollouts (org_id, pool_id, status);
CREATE TABLE IF NOT EXISTS events (
    rollout_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);
CREATE TABLE IF NOT EXISTS artifacts (
    rollout_id TEXT NOT NULL,
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    provenance TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (rollout_id, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    credential_name TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    credential_value TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    org_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (org_id, endpoint, idem_key)
);
"""

#: Plans whose organisations may use Environment Pools (CONTRACT §6).
PLANS_WITH_ACCESS = frozenset({"pro", "team", "enterprise", "demo"})
IDEMPOTENCY_TTL_SEC = 48 * 3600


def now_iso() -> str:
    """RFC 3339 UTC with milliseconds: sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> str:
    """Normalise a caller's RFC 3339 timestamp to the stored format (raises ValueError).

    RFC 3339 allows a lower-case ``t``/``z`` and a leap second (read as :59); a time whose
    UTC falls outside years 1-9999 is clamped to their ends (nothing is stored beyond them).
    """
    text = value.strip().upper().replace("Z", "+00:00")
    text = re.sub(r"(T\d\d:\d\d):60", r"\1:59", text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        utc = (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Org:
    org_id: str
    name: str
    plan: str
    feature_flags: dict[str, Any]

    @property
    def has_access(self) -> bool:
        flag = self.feature_flags.get("environment_pools")
        return (
            self.plan in PLANS_WITH_ACCESS
            or flag is True
            or (isinstance(flag, dict) and bool(flag.get("enabled")))
        )


#: An older layout kept events in a WITHOUT ROWID table, where every event over ~1 KB
#: took an overflow page of its own (4x the space): moved once into a rowid table.
_MIGRATE_EVENTS = """
ALTER TABLE events RENAME TO events_without_rowid;
CREATE TABLE events (
    rollout_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);
INSERT INTO events SELECT * FROM events_without_rowid ORDER BY rollout_id, seq;
DROP TABLE events_without_rowid;
"""

#: An older layout kept each event's ``data`` JSON; the stream then built every frame
#: again at each replay. Events keep their SSE frame now (``frames.py``), built once.
_EVENTS_TABLE = SCHEMA[
    SCHEMA.index("CREATE TABLE IF NOT EXISTS events (") : SCHEMA.index(
        "CREATE TABLE IF NOT EXISTS artifacts"
    )
]
_MIGRATE_EVENT_FRAMES = f"""
ALTER TABLE events RENAME TO events_with_data;
{_EVENTS_TABLE}
INSERT INTO events
    SELECT rollout_id, seq, event, timestamp, {TERMINAL_SQL}, CAST({FRAME_SQL} AS BLOB)
    FROM events_with_data ORDER BY rollout_id, seq;
DROP TABLE events_with_data;
"""


def _private_files(path: Path) -> None:
    """The folder 0700, the database and its WAL/shared-memory files 0600.

    SQLite gives the -wal and -shm files the database file's mode, so the database is
    created 0600 before SQLite opens it; files left by an older version are fixed too.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    # Only a file that does not exist yet is opened here: closing a descriptor of a
    # database would drop the POSIX locks of every SQLite connection of this process.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.parent / name, 0o600)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        _private_files(path)
        self._local = threading.local()
        self.db.executescript(SCHEMA)  # runs its own transaction
        _private_files(path)  # the WAL and shared memory exist now
        self.vault = Vault(path.parent, self.get_meta, self.set_meta)
        self._migrate()

    def _migrate(self) -> None:
        row = self.db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if row is not None and "WITHOUT ROWID" in row["sql"].upper():
            self.db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_EVENTS} COMMIT;")
            row = {"sql": "data TEXT"}
        if row is not None and "frame BLOB" not in row["sql"]:
            self.db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE_EVENT_FRAMES} COMMIT;")
        plain = self.db.execute(
            "SELECT credential_id, credential_value FROM credentials "
            "WHERE credential_value != '' AND credential_value NOT LIKE 'fernet:%'"
        ).fetchall()
        if plain:  # stored by a version that did not encrypt
            with self.tx() as db:
                for row in plain:
                    db.execute(
                        "UPDATE credentials SET credential_value = ? WHERE credential_id = ?",
                        (self.vault.seal(row["credential_value"]), row["credential_id"]),
                    )
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no clear copy left in the WAL

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        if db.in_transaction:  # nested: join the outer transaction
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        callbacks: list[Callable[[], None]] = []
        self._local.after_commit = callbacks
        try:
            yield db
        except BaseException:
            _rollback(db)
            raise
        finally:
            self._local.after_commit = None
        try:
            db.execute("COMMIT")
        except BaseException:
            # A COMMIT refused (a full disk) can leave the transaction open: this thread's
            # next tx() would join it and never commit, holding the write lock for good.
            _rollback(db)
            raise
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's transaction commits (now, outside one).

        Waking a reader before the commit would let it look, find nothing, and sleep.
        """
        pending: list[Callable[[], None]] | None = getattr(self._local, "after_commit", None)
        if pending is None:
            callback()
        else:
            pending.append(callback)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- meta -----------------------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return str(row["value"]) if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = "
                "excluded.value",
                (name, value),
            )

    # --- orgs and keys --------------------------------------------------------------------

    def create_org(self, name: str, plan: str, feature_flags: dict[str, Any] | None = None) -> Org:
        org = Org(f"org_{secrets.token_hex(6)}", name, plan.lower(), feature_flags or {})
        with self.tx() as db:
            db.execute(
                "INSERT INTO orgs VALUES (?, ?, ?, ?, ?)",
                (org.org_id, org.name, org.plan, json.dumps(org.feature_flags), now_iso()),
            )
        return org

    def get_org(self, org_id: str) -> Org | None:
        row = self.db.execute("SELECT * FROM orgs WHERE org_id = ?", (org_id,)).fetchone()
        return _org(row) if row else None

    def set_plan(self, org_id: str, plan: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE orgs SET plan = ? WHERE org_id = ?", (plan.lower(), org_id))

    def create_key(self, org_id: str, name: str = "default") -> str:
        """A new API key for ``org_id``; only its hash is stored, so this is the one chance."""
        api_key = f"ep_local_{secrets.token_urlsafe(24)}"
        with self.tx() as db:
            db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (hash_key(api_key), api_key[:13], org_id, name, now_iso()),
            )
        return api_key

    def org_for_key(self, api_key: str) -> Org | None:
        row = self.db.execute(
            "SELECT orgs.* FROM api_keys JOIN orgs USING (org_id) "
            "WHERE key_hash = ? AND revoked_at IS NULL",
            (hash_key(api_key),),
        ).fetchone()
        return _org(row) if row else None

    def revoke_key(self, api_key: str) -> bool:
        with self.tx() as db:
            cur = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_hash = ? AND revoked_at IS NULL",
                (now_iso(), hash_key(api_key)),
            )
        return cur.rowcount > 0

    # --- idempotency ----------------------------------------------------------------------

    def idempotent_response(
        self, org_id: str, endpoint: str, key: str
    ) -> tuple[str, int, Any] | None:
        row = self.db.execute(
            "SELECT request_hash, status_code, response, created_at FROM idempotency "
            "WHERE org_id = ? AND endpoint = ? AND idem_key = ?",
            (org_id, endpoint, key),
        ).fetchone()
        if row is None or time.time() - row["created_at"] > IDEMPOTENCY_TTL_SEC:
            return None
        return row["request_hash"], row["status_code"], json.loads(row["response"])

    def remember_response(
        self, org_id: str, endpoint: str, key: str, request_hash: str, status: int, body: Any
    ) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?)",
                (org_id, endpoint, key, request_hash, status, json.dumps(body), time.time()),
            )
            db.execute(
                "DELETE FROM idempotency WHERE created_at < ?",
                (time.time() - IDEMPOTENCY_TTL_SEC,),
            )

    # --- pools and tasks ------------------------------------------------------------------

    def put_pool(self, org_id: str, pool: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO pools VALUES (?, ?, ?, ?) ON CONFLICT (org_id, pool_id) "
                "DO UPDATE SET doc = excluded.doc",
                (org_id, pool["pool_id"], json.dumps(pool), pool.get("created_at") or now_iso()),
            )

    def get_pool(self, org_id: str, pool_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT doc FROM pools WHERE org_id = ? AND pool_id = ?", (org_id, pool_id)
        ).fetchone()
        return json.loads(row["doc"]) if row else None

    def list_pools(self, org_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT doc FROM pools WHERE org_id = ? ORDER BY created_at, pool_id", (org_id,)
        ).fetchall()
        return [json.loads(row["doc"]) for row in rows]

    def delete_pool(self, org_id: str, pool_id: str) -> bool:
        with self.tx() as db:
            db.execute("DELETE FROM pool_tasks WHERE org_id = ? AND pool_id = ?", (org_id, pool_id))
            cur = db.execute(
                "DELETE FROM pools WHERE org_id = ? AND pool_id = ?", (org_id, pool_id)
            )
        return cur.rowcount > 0

    def put_task(self, org_id: str, pool_id: str, task: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO pool_tasks VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (org_id, pool_id, task_id) DO UPDATE SET doc = excluded.doc",
                (org_id, pool_id, task["task_id"], json.dumps(task), now_iso()),
            )

    def get_task(self, org_id: str, pool_id: str, task_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT doc FROM pool_tasks WHERE org_id = ? AND pool_id = ? AND task_id = ?",
            (org_id, pool_id, task_id),
        ).fetchone()
        return json.loads(row["doc"]) if row else None

    def list_tasks(self, org_id: str, pool_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT doc FROM pool_tasks WHERE org_id = ? AND pool_id = ? ORDER BY created_at",
            (org_id, pool_id),
        ).fetchall()
        return [json.loads(row["doc"]) for row in rows]

    def delete_task(self, org_id: str, pool_id: str, task_id: str) -> bool:
        with self.tx() as db:
            cur = db.execute(
                "DELETE FROM pool_tasks WHERE org_id = ? AND pool_id = ? AND task_id = ?",
                (org_id, pool_id, task_id),
            )
        return cur.rowcount > 0

    # --- rollouts -------------------------------------------------------------------------

    def insert_rollout(self, doc: dict[str, Any], request: dict[str, Any]) -> int:
        """Store a new rollout; its creation order (``n``, which breaks priority ties)."""
        task_ref = doc.get("task_ref") or {}
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO rollouts (rollout_id, org_id, pool_id, status, priority, dataset, "
                "task_id, created_at, doc, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    doc["rollout_id"],
                    doc["org_id"],
                    doc.get("pool_id"),
                    doc["status"],
                    int(doc.get("priority") or 0),
                    task_ref.get("dataset"),
                    task_ref.get("task_id"),
                    doc["created_at"],
                    json.dumps(doc),
                    json.dumps(request),
                ),
            )
        return int(cur.lastrowid or 0)

    def get_rollout(self, rollout_id: str, org_id: str | None = None) -> dict[str, Any] | None:
        sql, args = "SELECT doc FROM rollouts WHERE rollout_id = ?", [rollout_id]
        if org_id is not None:
            sql += " AND org_id = ?"
            args.append(org_id)
        row = self.db.execute(sql, args).fetchone()
        return json.loads(row["doc"]) if row else None

    def get_request(self, rollout_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT request FROM rollouts WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        return json.loads(row["request"]) if row else None

    def update_rollout(self, rollout_id: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the rollout document atomically; return the new document."""
        with self.tx() as db:
            row = db.execute(
                "SELECT doc FROM rollouts WHERE rollout_id = ?", (rollout_id,)
            ).fetchone()
            if row is None:
                raise KeyError(rollout_id)
            doc = json.loads(row["doc"])
            doc.update(changes)
            db.execute(
                "UPDATE rollouts SET doc = ?, status = ? WHERE rollout_id = ?",
                (json.dumps(doc), doc["status"], rollout_id),
            )
        return dict(doc)

    def list_rollouts(
        self,
        org_id: str,
        *,
        limit: int,
        before_n: int | None = None,
        status: str | None = None,
        pool_id: str | None = None,
        dataset: str | None = None,
        task_id: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        sql = "SELECT n, doc FROM rollouts WHERE org_id = ?"
        args: list[Any] = [org_id]
        for column, value, op in (
            ("n", before_n, "<"),
            ("status", status, "="),
            ("pool_id", pool_id, "="),
            ("dataset", dataset, "="),
            ("task_id", task_id, "="),
            ("created_at", created_after, ">"),
            ("created_at", created_before, "<"),
        ):
            if value is not None:
                sql += f" AND {column} {op} ?"
                args.append(value)
        sql += " ORDER BY n DESC LIMIT ?"
        args.append(limit)
        return [(row["n"], json.loads(row["doc"])) for row in self.db.execute(sql, args)]

    def rollout_ids_with_status(self, *statuses: str) -> list[str]:
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT rollout_id FROM rollouts WHERE status IN ({marks}) ORDER BY n", statuses
        ).fetchall()
        return [str(row["rollout_id"]) for row in rows]

    def rollouts_with_status(self, *statuses: str) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT doc FROM rollouts WHERE status IN ({marks}) ORDER BY priority DESC, n",
            statuses,
        ).fetchall()
        return [json.loads(row["doc"]) for row in rows]

    def queued_index(self) -> list[tuple[int, str, str, str | None, int, Any]]:
        """``(n, rollout_id, org_id, pool_id, priority, reservation)`` of every queued
        rollout, without decoding a document: the scheduler's queue at start."""
        rows = self.db.execute(
            "SELECT n, rollout_id, org_id, pool_id, priority, "
            "json_extract(doc, '$.reservation') AS reservation "
            "FROM rollouts WHERE status = 'queued' ORDER BY priority DESC, n"
        ).fetchall()
        return [
            (
                row["n"],
                row["rollout_id"],
                row["org_id"],
                row["pool_id"],
                row["priority"],
                json.loads(row["reservation"]) if row["reservation"] else None,
            )
            for row in rows
        ]

    def count_by_pool(self, org_id: str, statuses: tuple[str, ...]) -> dict[tuple[Any, str], int]:
        """``(pool_id, status) -> count`` of the org's rollouts in ``statuses``."""
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT pool_id, status, COUNT(*) AS c FROM rollouts "
            f"WHERE status IN ({marks}) AND org_id = ? GROUP BY pool_id, status",
            (*statuses, org_id),
        ).fetchall()
        return {(row["pool_id"], row["status"]): row["c"] for row in rows}

    def running_on_nodes(
        self, org_id: str, statuses: tuple[str, ...]
    ) -> dict[tuple[Any, str], int]:
        """``(pool_id, node name) -> count`` of the org's rollouts in ``statuses`` that
        recorded a node (what runs where)."""
        marks = ",".join("?" * len(statuses))
        rows = self.db.execute(
            f"SELECT pool_id, json_extract(doc, '$.node.name') AS node, COUNT(*) AS c "
            f"FROM rollouts WHERE status IN ({marks}) AND org_id = ? "
            f"GROUP BY pool_id, node",
            (*statuses, org_id),
        ).fetchall()
        return {(row["pool_id"], row["node"]): row["c"] for row in rows if row["node"]}

    def count_rollouts(self, org_id: str, pool_id: str | None = None) -> dict[str, int]:
        sql = "SELECT status, COUNT(*) AS c FROM rollouts WHERE org_id = ?"
        args: list[Any] = [org_id]
        if pool_id is not None:
            sql += " AND pool_id = ?"
            args.append(pool_id)
        sql += " GROUP BY status"
        return {row["status"]: row["c"] for row in self.db.execute(sql, args)}

    def pool_spend(self, org_id: str, pool_id: str) -> float:
        total = 0.0
        for row in self.db.execute(
            "SELECT doc FROM rollouts WHERE org_id = ? AND pool_id = ?", (org_id, pool_id)
        ):
            usage = json.loads(row["doc"]).get("usage") or {}
            total += float(usage.get("cost_usd") or 0.0)
        return total

    # --- events ---------------------------------------------------------------------------

    def append_event(self, rollout_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.append_event_frame(rollout_id, event, data)[0]

    def append_event_frame(
        self, rollout_id: str, event: str, data: dict[str, Any], *, timestamp: str | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """Store one event; its envelope and its SSE frame (``frames.frame_text``)."""
        timestamp = timestamp or now_iso()
        terminal = is_terminal(event, data)
        text = data_text(data)
        with self.tx() as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE rollout_id = ?", (rollout_id,)
            ).fetchone()
            seq = int(last) + 1
            frame = frame_text(seq, event, timestamp, text).encode()
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                (rollout_id, seq, event, timestamp, int(terminal), frame),
            )
        return envelope(seq, event, timestamp, data), frame

    def last_seq(self, rollout_id: str) -> int:
        (last,) = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        return int(last)

    def end_rollout(
        self,
        rollout_id: str,
        changes: dict[str, Any],
        data: dict[str, Any],
        *,
        entries: list[dict[str, Any]] | None = None,
        timestamp: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        """A rollout's end in one transaction: its artifacts, its final document and its
        terminal lifecycle event (the document, envelope and frame)."""
        with self.tx():
            if entries is not None:
                self.put_artifacts(rollout_id, entries)
            doc = self.update_rollout(rollout_id, **changes)
            envelope, frame = self.append_event_frame(
                rollout_id, "lifecycle", data, timestamp=timestamp
            )
        return doc, envelope, frame

    def event_frames_after(
        self, rollout_id: str, after_seq: int, *, limit: int, since: str | None = None
    ) -> list[tuple[int, int, bytes]]:
        """``(seq, terminal, frame)`` of the events after ``after_seq``, as stored."""
        sql = "SELECT seq, terminal, frame FROM events WHERE rollout_id = ? AND seq > ?"
        args: list[Any] = [rollout_id, after_seq]
        if since is not None:
            sql += " AND timestamp > ?"
            args.append(since)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        cursor = self.db.cursor()
        cursor.row_factory = None  # plain tuples: no sqlite3.Row per event
        return cursor.execute(sql, args).fetchall()

    def events_after(
        self, rollout_id: str, after_seq: int, *, limit: int = 500, since: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            frame_envelope(row[2])
            for row in self.event_frames_after(rollout_id, after_seq, limit=limit, since=since)
        ]

    def last_event(self, rollout_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT frame FROM events WHERE rollout_id = ? ORDER BY seq DESC LIMIT 1",
            (rollout_id,),
        ).fetchone()
        return None if row is None else frame_envelope(row["frame"])

    def count_events(self, rollout_id: str) -> int:
        (count,) = self.db.execute(
            "SELECT COUNT(*) FROM events WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        return int(count)

    # --- artifacts ------------------------------------------------------------------------

    def put_artifacts(self, rollout_id: str, entries: list[dict[str, Any]]) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM artifacts WHERE rollout_id = ?", (rollout_id,))
            db.executemany(
                "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        rollout_id,
                        e["path"],
                        e["size_bytes"],
                        e["sha256"],
                        e["content_type"],
                        e["provenance"],
                        e["created_at"],
                    )
                    for e in entries
                ],
            )

    def list_artifacts(
        self,
        rollout_id: str,
        *,
        prefix: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM artifacts WHERE rollout_id = ?"
        args: list[Any] = [rollout_id]
        if prefix:
            sql += " AND substr(path, 1, ?) = ?"
            args += [len(prefix), prefix]
        if after:
            sql += " AND path > ?"
            args.append(after)
        sql += " ORDER BY path"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        entries = [dict(row) for row in self.db.execute(sql, args)]
        for entry in entries:
            del entry["rollout_id"]
        return entries

    # --- credentials ----------------------------------------------------------------------

    def insert_credential(
        self, org_id: str, name: str, ctype: str, value: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        credential_id = f"cred_{secrets.token_hex(8)}"
        stamp = now_iso()
        sealed = self._seal(value)
        with self.tx() as db:
            db.execute(
                "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (credential_id, org_id, name, ctype, sealed, json.dumps(metadata), stamp, stamp),
            )
        found = self.get_credential(org_id, credential_id)
        assert found is not None
        return found

    def get_credential(self, org_id: str, credential_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM credentials WHERE org_id = ? AND credential_id = ? AND active = 1",
            (org_id, credential_id),
        ).fetchone()
        return _credential(row) if row else None

    def list_credentials(self, org_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM credentials WHERE org_id = ? AND active = 1 ORDER BY created_at",
            (org_id,),
        ).fetchall()
        return [_credential(row) for row in rows]

    def rotate_credential(self, org_id: str, credential_id: str, value: str) -> bool:
        sealed = self._seal(value)
        with self.tx() as db:
            cur = db.execute(
                "UPDATE credentials SET credential_value = ?, updated_at = ? "
                "WHERE org_id = ? AND credential_id = ? AND active = 1",
                (sealed, now_iso(), org_id, credential_id),
            )
        return cur.rowcount > 0

    def _seal(self, value: str) -> str:
        """The value encrypted; a lost key is replaced only when nothing still needs it."""
        try:
            return self.vault.seal(value)
        except VaultError:
            (needed,) = self.db.execute(
                "SELECT COUNT(*) FROM credentials WHERE credential_value LIKE 'fernet:%'"
            ).fetchone()
            if needed:
                raise
            self.vault.reset()
            return self.vault.seal(value)

    def deactivate_credential(self, org_id: str, credential_id: str) -> bool:
        with self.tx() as db:
            cur = db.execute(
                "UPDATE credentials SET active = 0, credential_value = '', updated_at = ? "
                "WHERE org_id = ? AND credential_id = ? AND active = 1",
                (now_iso(), org_id, credential_id),
            )
        return cur.rowcount > 0

    def credential_values(self, org_id: str) -> dict[str, tuple[str, str]]:
        """name -> (type, value) of the org's active credentials: for harness environments."""
        rows = self.db.execute(
            "SELECT credential_name, credential_type, credential_value FROM credentials "
            "WHERE org_id = ? AND active = 1 ORDER BY created_at",
            (org_id,),
        ).fetchall()
        return {
            row["credential_name"]: (
                row["credential_type"],
                self.vault.open(row["credential_value"]),
            )
            for row in rows
        }


def _rollback(db: sqlite3.Connection) -> None:
    """Undo what is open; SQLite may have rolled back itself (after SQLITE_FULL), and an
    error of the ROLLBACK must not hide the one that caused it."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def envelope(seq: int, event: str, timestamp: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(seq), "event": event, "seq": seq, "timestamp": timestamp, "data": data}


def _org(row: sqlite3.Row) -> Org:
    return Org(row["org_id"], row["name"], row["plan"], json.loads(row["feature_flags"]))


def _credential(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "credential_id": row["credential_id"],
        "id": row["credential_id"],
        "credential_name": row["credential_name"],
        "credential_type": row["credential_type"],
        "metadata": json.loads(row["metadata"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "active": bool(row["active"]),
        "value_set": bool(row["credential_value"]),
    }
