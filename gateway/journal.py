"""The durable journal: SQLite in WAL mode, group commit, replay state, downlink counters.

Every accepted frame becomes one or more *messages* (topic, payload) committed in one
transaction together with the node's replay state (SPEC §6.2), before the frame is
ACKed. A message's ``published`` flag is set only on the broker's PUBACK; the publisher
drains unpublished messages in id order, so each node's messages leave in arrival order.

The journal is bounded (``max_bytes``, enforced with SQLite's ``max_page_count``). When an
insert does not fit, the configured policy applies (``WHEN_FULL``); a real disk-full
(ENOSPC) surfaces from SQLite as the same SQLITE_FULL error and takes the same path.

All database work runs on one worker thread (``await journal.call(fn, ...)``), so a commit
(an fsync) never blocks the event loop, and frames that arrive meanwhile form the next group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

__all__ = ["WHEN_FULL", "Batch", "Journal", "JournalError", "JournalFull", "Message", "Row"]

log = logging.getLogger("streetsense.gateway.journal")

P = ParamSpec("P")
T = TypeVar("T")

# What happens when a new frame does not fit:
#   drop-delivered-then-reject: delete published messages; if still full, refuse the frame
#     (no ACK: the node keeps it and retransmits, so nothing is lost, only held back).
#   drop-delivered-then-drop-oldest: delete published messages; if still full, delete the
#     oldest unpublished ones (data loss, counted in ``dropped``) to make room.
WHEN_FULL = ("drop-delivered-then-reject", "drop-delivered-then-drop-oldest")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id INTEGER NOT NULL,
    boot INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    correlation BLOB,
    delayable INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pending ON messages(id) WHERE published = 0;
CREATE TABLE IF NOT EXISTS replay (node_id INTEGER PRIMARY KEY, boots TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS downlink (
    node_id INTEGER NOT NULL, boot INTEGER NOT NULL, counter INTEGER NOT NULL,
    PRIMARY KEY (node_id, boot));
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_DROP_BATCH = 256  # oldest unpublished messages deleted per step under drop-oldest


class JournalError(Exception):
    """Root of the journal's errors."""


class JournalFull(JournalError):
    """The frames did not fit and the policy refuses them (they are not ACKed)."""

    def __init__(self, message: str, *, max_bytes: int) -> None:
        super().__init__(message)
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Message:
    """One MQTT message to journal: ``delayable`` payloads carry a ``"delayed"`` flag."""

    topic: str
    payload: bytes
    retain: bool = False
    correlation: bytes | None = None
    delayable: bool = False


@dataclass(frozen=True)
class Row:
    """A journaled message as the publisher reads it back."""

    id: int
    node_id: int
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None
    delayable: bool
    received_at: float


@dataclass
class Batch:
    """One group commit: messages of several frames plus the replay state they advance."""

    frames: list[tuple[int, int, int, float, list[Message]]] = field(default_factory=list)
    replay: dict[int, dict[int, int]] = field(default_factory=dict)


class Journal:
    """The gateway's SQLite journal; sync methods, run them on its thread with ``call``."""

    def __init__(self, path: str | Path, *, max_bytes: int = 256 * 1024 * 1024,
                 when_full: str = WHEN_FULL[0]) -> None:
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.full_events = 0  # times an insert did not fit
        self.rejected_frames = 0  # frames refused because full (not ACKed)
        self.dropped_messages = 0  # unpublished messages deleted by drop-oldest
        self.pruned_messages = 0  # published messages deleted to make room
        self._lock = threading.RLock()
        # PUBACKed ids not yet flagged: written with the next commit or by flush_marks.
        # Their own small lock: the event loop appends without waiting for a commit.
        self._marks: list[int] = []
        self._marks_taken: list[int] = []  # in the transaction being written
        self._marks_lock = threading.Lock()
        self._pending_state: dict[str, str] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (fsync of the WAL) before it returns, so before the ACK.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count={max(16, max_bytes // page_size)}")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` (a method of this journal) on the journal thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._db.close()

    # ---- group commit -------------------------------------------------------------------

    def commit(self, batch: Batch,
               derive: Callable[[], list[tuple[int, Message]]] | None = None) -> list[Row]:
        """Commit ``batch`` in one transaction; returns the journaled rows, in id order.

        ``derive`` runs first, under the journal lock: the derived-value hook, whose
        ``save_state`` calls join this transaction; it returns extra (node_id, message)
        pairs. Raises ``JournalFull`` when the policy refuses the batch.
        """
        with self._lock:
            self._pending_state = {}
            try:
                derived = derive() if derive else []
                return self._insert_with_policy(batch, derived, self._pending_state)
            finally:
                self._pending_state = None

    def _insert_with_policy(self, batch: Batch, derived: list[tuple[int, Message]],
                            state: dict[str, str]) -> list[Row]:
        pruned_delivered = False
        while True:
            try:
                return self._insert(batch, derived, state)
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
            self.full_events += 1
            if not pruned_delivered:
                pruned_delivered = True
                removed = self._delete("DELETE FROM messages WHERE published = 1")
                self.pruned_messages += removed
                log.warning("journal full (max %d bytes): deleted %d delivered messages",
                            self.max_bytes, removed)
                if removed:
                    continue
            if self.when_full == "drop-delivered-then-drop-oldest":
                removed = self._delete(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                    f"WHERE published = 0 ORDER BY id LIMIT {_DROP_BATCH})")
                if removed:
                    self.dropped_messages += removed
                    log.error("journal full (max %d bytes): dropped the %d oldest "
                              "undelivered messages (policy %s)", self.max_bytes, removed,
                              self.when_full)
                    continue
            self.rejected_frames += len(batch.frames)
            log.error("journal full (max %d bytes): refused %d frames, not ACKed "
                      "(policy %s; nodes keep them and retransmit)", self.max_bytes,
                      len(batch.frames), self.when_full)
            raise JournalFull("journal full", max_bytes=self.max_bytes)

    def _delete(self, sql: str) -> int:
        cursor = self._db.execute(sql)
        return cursor.rowcount

    def _insert(self, batch: Batch, derived: list[tuple[int, Message]],
                state: dict[str, str]) -> list[Row]:
        rows: list[Row] = []
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._write_marks()
            for node_id, boot, seq, received_at, messages in batch.frames:
                for message in messages:
                    rows.append(self._insert_message(node_id, boot, seq, received_at, message))
            now = time.time()
            for node_id, message in derived:
                rows.append(self._insert_message(node_id, 0, 0, now, message))
            db.executemany(
                "INSERT INTO replay(node_id, boots) VALUES (?, ?) "
                "ON CONFLICT(node_id) DO UPDATE SET boots = excluded.boots",
                [(node, json.dumps(boots)) for node, boots in batch.replay.items()])
            db.executemany(
                "INSERT INTO state(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value", state.items())
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._marks_taken = []
        return rows

    def _insert_message(self, node_id: int, boot: int, seq: int, received_at: float,
                        message: Message) -> Row:
        cursor = self._db.execute(
            "INSERT INTO messages(node_id, boot, seq, topic, payload, retain, correlation, "
            "delayable, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, boot, seq, message.topic, message.payload, int(message.retain),
             message.correlation, int(message.delayable), received_at))
        assert cursor.lastrowid is not None
        return Row(cursor.lastrowid, node_id, message.topic, message.payload, message.retain,
                   message.correlation, message.delayable, received_at)

    # ---- publisher side -----------------------------------------------------------------

    def pending(self, after_id: int, limit: int) -> list[Row]:
        """Unpublished messages with id > ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, node_id, topic, payload, retain, correlation, delayable, "
                "received_at FROM messages WHERE published = 0 AND id > ? ORDER BY id LIMIT ?",
                (after_id, limit)).fetchall()
        return [Row(r[0], r[1], r[2], bytes(r[3]), bool(r[4]),
                    None if r[5] is None else bytes(r[5]), bool(r[6]), r[7]) for r in rows]

    def catch_up(self, after_id: int, limit: int) -> tuple[list[Row], int]:
        """``pending(after_id, limit)`` and the highest id in the journal, read together:
        every row up to that id is in the list or already published."""
        with self._lock:
            rows = self.pending(after_id, limit)
            top = self._db.execute("SELECT max(id) FROM messages").fetchone()[0]
        return rows, top or 0

    def mark_published(self, ids: Iterable[int]) -> None:
        """Set the published flag of ``ids`` now (one transaction)."""
        self.mark_soon(ids)
        self.flush_marks()

    def mark_soon(self, ids: Iterable[int]) -> None:
        """Flag ``ids`` as published with the next commit or ``flush_marks`` (no waiting:
        safe to call from the event loop)."""
        with self._marks_lock:
            self._marks.extend(ids)

    def flush_marks(self) -> None:
        """Write the published flags queued by ``mark_soon``."""
        with self._lock:
            if not self._marks:
                return
            self._db.execute("BEGIN")
            try:
                self._write_marks()
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._marks_taken = []

    def _write_marks(self) -> None:
        with self._marks_lock:
            self._marks_taken, self._marks = self._marks, []
        self._db.executemany("UPDATE messages SET published = 1 WHERE id = ?",
                             [(i,) for i in self._marks_taken])

    def _rollback(self) -> None:
        """Undo the open transaction; marks it held go back in the queue."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        with self._marks_lock:
            self._marks = self._marks_taken + self._marks
        self._marks_taken = []

    @property
    def marks_pending(self) -> int:
        return len(self._marks)

    def stats(self) -> dict[str, Any]:
        """Depth (unpublished messages), arrival of the oldest, size on disk, full counters."""
        with self._lock:
            depth, oldest = self._db.execute(
                "SELECT count(*), min(received_at) FROM messages WHERE published = 0"
            ).fetchone()
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return {"depth": depth, "oldest_received_at": oldest,
                "size_bytes": pages * page_size, "max_bytes": self.max_bytes,
                "when_full": self.when_full, "full_events": self.full_events,
                "rejected_frames": self.rejected_frames,
                "dropped_messages": self.dropped_messages,
                "pruned_messages": self.pruned_messages}

    # ---- node state ---------------------------------------------------------------------

    def load_replay(self) -> dict[int, dict[int, int]]:
        """Per node, boot -> highest seq accepted (the committed replay state)."""
        with self._lock:
            rows = self._db.execute("SELECT node_id, boots FROM replay").fetchall()
        return {node: {int(b): s for b, s in json.loads(boots).items()} for node, boots in rows}

    def next_downlink_seq(self, node_id: int, boot: int) -> int:
        """The next downlink counter of (node, boot), committed before it is returned."""
        with self._lock:
            row = self._db.execute(
                "INSERT INTO downlink(node_id, boot, counter) VALUES (?, ?, 1) "
                "ON CONFLICT(node_id, boot) DO UPDATE SET counter = counter + 1 "
                "RETURNING counter", (node_id, boot)).fetchone()
            self._db.execute("DELETE FROM downlink WHERE node_id = ? AND boot < ?",
                             (node_id, boot - 16))
        return int(row[0])

    def load_state(self, name: str) -> dict[str, Any] | None:
        """A derived-value state saved with ``save_state`` (None if never saved)."""
        with self._lock:
            if self._pending_state is not None and name in self._pending_state:
                return dict(json.loads(self._pending_state[name]))
            row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_state(self, name: str, value: dict[str, Any]) -> None:
        """Save ``value`` (JSON-able); inside a commit it is written with that commit."""
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            if self._pending_state is not None:
                self._pending_state[name] = text
                return
            self._db.execute(
                "INSERT INTO state(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, text))


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
        "full" in str(exc)
