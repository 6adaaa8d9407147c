"""The database side of ``streetsense store``: rows keyed by (node_id, boot, seq), exactly once.

Tables ``data``, ``event`` and ``status`` hold one row per frame a node sent, its primary key
(node_id, boot, seq) being the frame's identity (docs/mqtt.md), so a message delivered twice
(at-least-once MQTT) meets the constraint and is counted as a duplicate, never stored twice.
``rejected`` keeps what could not be read (not JSON, no boot or seq) with the reason: bad
input is kept, never lost. A batch is written in one transaction; ``write`` returns once it is
committed (SQLite: WAL, ``synchronous=FULL``; PostgreSQL: its default synchronous commit), and
only then may the messages be acknowledged to the broker.

``open_database(url)`` takes ``postgresql://user@host:port/db`` (psycopg 3, the ``store``
extra) or ``sqlite:///path/to/file.db``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["KINDS", "Database", "DatabaseError", "Record", "Rejected", "open_database",
           "record_from_message"]

KINDS = ("data", "event", "status")  # the topic's last level names the table

# Column types per dialect: (integer, text, json, timestamp, float, bytes).
_TYPES = {
    "sqlite": ("INTEGER", "TEXT", "TEXT", "TEXT", "REAL", "BLOB"),
    "postgresql": ("BIGINT", "TEXT", "JSONB", "TIMESTAMPTZ", "DOUBLE PRECISION", "BYTEA"),
}


class DatabaseError(Exception):
    """The database refused or lost a write (nothing of the batch is committed)."""


@dataclass(frozen=True)
class Record:
    """One node message to store: its kind (table), frame identity and the JSON as received.

    ``stored_at`` (UNIX seconds) is when the store wrote it: with the node's send time it
    gives the node-to-database latency."""

    kind: str
    node_id: int
    boot: int
    seq: int
    node: str
    site: str
    gateway: str | None
    ts: str | None
    received_at: str | None
    payload: str
    stored_at: float


@dataclass(frozen=True)
class Rejected:
    """A message that could not be stored as a row, kept with the reason."""

    topic: str
    payload: bytes
    reason: str


def record_from_message(topic: str, payload: bytes) -> Record | Rejected:
    """The row for a message on ``<prefix>/<site>/<node>/<kind>``, or why there is none."""
    levels = topic.split("/")
    kind = levels[-1]
    if len(levels) < 4 or kind not in KINDS:
        return Rejected(topic, payload, f"not a node's {', '.join(KINDS)} topic")
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejected(topic, payload, f"not JSON: {exc}")
    if not isinstance(message, dict):
        return Rejected(topic, payload, "not a JSON object")
    identity = [message.get(key) for key in ("node_id", "boot", "seq")]
    node_id, boot, seq = (value if isinstance(value, int) and not isinstance(value, bool)
                          and value >= 0 else -1 for value in identity)
    if min(node_id, boot, seq) < 0:
        return Rejected(topic, payload, "no node_id, boot and seq (non-negative integers)")
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return Record(kind, node_id, boot, seq, str(message.get("node", levels[-2])),
                  str(message.get("site", levels[-3])), _text(message.get("gateway")),
                  _text(message.get("ts")), _text(message.get("received_at")), text,
                  time.time())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class Database(Protocol):
    """Where rows go: ``write`` commits a batch, returns how many rows were new."""

    def write(self, records: Sequence[Record], rejected: Sequence[Rejected]) -> int: ...

    def close(self) -> None: ...


class _SqlDatabase:
    """The SQL both engines share; ``_mark`` is the driver's parameter placeholder."""

    dialect = "sqlite"
    _mark = "?"

    def __init__(self, connection: Any) -> None:
        self._db = connection
        integer, text, js, stamp, real, blob = _TYPES[self.dialect]
        statements = [
            f"CREATE TABLE IF NOT EXISTS {kind} (node_id {integer} NOT NULL, "
            f"boot {integer} NOT NULL, seq {integer} NOT NULL, node {text} NOT NULL, "
            f"site {text} NOT NULL, gateway {text}, ts {stamp}, received_at {stamp}, "
            f"stored_at {real} NOT NULL, payload {js} NOT NULL, "
            f"PRIMARY KEY (node_id, boot, seq))" for kind in KINDS]
        statements.append(
            f"CREATE TABLE IF NOT EXISTS rejected (topic {text} NOT NULL, "
            f"payload {blob} NOT NULL, reason {text} NOT NULL, stored_at {real} NOT NULL)")
        self._run(statements, [])
        marks = ", ".join([self._mark] * 10)
        self._insert = {
            kind: f"INSERT INTO {kind} (node_id, boot, seq, node, site, gateway, ts, "
                  f"received_at, stored_at, payload) VALUES ({marks}) "
                  "ON CONFLICT (node_id, boot, seq) DO NOTHING"
            for kind in KINDS}
        self._reject = ("INSERT INTO rejected (topic, payload, reason, stored_at) VALUES "
                        f"({', '.join([self._mark] * 4)})")

    def write(self, records: Sequence[Record], rejected: Sequence[Rejected]) -> int:
        inserts: list[tuple[str, tuple[Any, ...]]] = [
            (self._insert[r.kind], (r.node_id, r.boot, r.seq, r.node, r.site, r.gateway, r.ts,
                                    r.received_at, r.stored_at, r.payload)) for r in records]
        now = time.time()
        inserts += [(self._reject, (r.topic, r.payload, r.reason, now)) for r in rejected]
        return self._run([], inserts) - len(rejected)

    def _run(self, statements: list[str], inserts: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Everything in one transaction; the number of rows inserted."""
        raise NotImplementedError

    def close(self) -> None:
        self._db.close()


class SqliteDatabase(_SqlDatabase):
    """A SQLite file (WAL, ``synchronous=FULL``: committed means on disk)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        super().__init__(connection)

    def _run(self, statements: list[str], inserts: list[tuple[str, tuple[Any, ...]]]) -> int:
        db: sqlite3.Connection = self._db
        inserted = 0
        try:
            db.execute("BEGIN IMMEDIATE")
            for statement in statements:
                db.execute(statement)
            for sql, params in inserts:
                inserted += db.execute(sql, params).rowcount
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise DatabaseError(f"SQLite: {exc}") from exc
        return inserted


class PostgresDatabase(_SqlDatabase):
    """A PostgreSQL database through psycopg 3."""

    dialect = "postgresql"
    _mark = "%s"

    def __init__(self, url: str) -> None:
        import psycopg  # the store extra

        try:
            connection = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            raise DatabaseError(f"PostgreSQL: {exc}") from exc
        super().__init__(connection)

    def _run(self, statements: list[str], inserts: list[tuple[str, tuple[Any, ...]]]) -> int:
        import psycopg

        inserted = 0
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                for sql, params in inserts:
                    cursor.execute(sql, params)
                    inserted += max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise DatabaseError(f"PostgreSQL: {exc}") from exc
        return inserted


def open_database(url: str) -> Database:
    """The database at ``url``: ``postgresql://...`` or ``sqlite:///path``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise DatabaseError(f"{url}: no file: use sqlite:///path/to/file.db")
        return SqliteDatabase(Path(path))
    raise DatabaseError(f"{url}: not postgresql://user@host:port/db nor sqlite:///path")
