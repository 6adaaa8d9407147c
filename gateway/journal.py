"""The durable journal: SQLite in WAL mode, group commit, replay state, downlink counters.

Every accepted frame becomes one or more *messages* (topic, payload) committed in one
transaction together with the node's replay state (SPEC §6.2), before the frame is
ACKed. A message's ``published`` flag is set only on the broker's PUBACK; the publisher
drains unpublished messages in id order, so each node's messages leave in arrival order.

The journal is bounded: ``max_bytes`` counts the database and its WAL (the WAL gets a fixed
share, ``wal_bytes``, kept by checkpoints; the database the rest, through SQLite's
``max_page_count``). The bound also shrinks to what the disk still has, less a reserve for
the WAL and checkpoints, so a full disk is met as the same clean "full" before a write fails.
When an insert does not fit, delivered rows are deleted (oldest first, in bounded steps),
then the configured policy applies (``WHEN_FULL``). A write the disk refuses anyway (ENOSPC
because something else filled it, EFBIG, EIO) takes the same path: the frames are refused,
delivered flags stay queued in memory; nothing raises out of the journal, and it recovers by
itself once there is room. Each full spell is logged once, with its figures, and once more
when it ends; under the refusing policy a spell ends only once a group fits with room to
spare (half the refused group's, at least a 64th of the bound), so a journal at the disk's edge
does not flap between taking and refusing.

All database work runs on one worker thread (``await journal.call(fn, ...)``), so a commit
(an fsync) never blocks the event loop, and frames that arrive meanwhile form the next group.

The schema carries its version (``PRAGMA user_version``, ``SCHEMA_VERSION``). A journal of an
older version is migrated when opened, step by step, each step one transaction (``_MIGRATIONS``;
version 1 is the schema from before versions were recorded: ``user_version`` 0 with tables);
one of a newer version is refused with a `JournalError` saying so, never guessed at.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .version import gateway_version

__all__ = ["SCHEMA_VERSION", "WHEN_FULL", "Batch", "Journal", "JournalError", "JournalFull",
           "Message", "Row", "schema_version"]

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
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = 2
# Steps from each version to the next; version 2 adds ``meta``: which streetsense version
# made the journal and which migrated it (read by ``gateway backup``, shown to operators).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",),
}

_DROP_BATCH = 256  # oldest unpublished messages deleted per step under drop-oldest
_ROW_BYTES = 64  # a message row's own columns and its index entries, roughly
_SPARE_ROW = 256  # the rows that test for room to spare (``_insert``)
_PRUNE_BATCH = 1000  # delivered messages deleted per step (one small transaction each)
_WAL_MIN, _WAL_MAX = 64 * 1024, 1024 * 1024  # the WAL's share of max_bytes: 1/32, clamped
_SHM_BYTES = 32 * 1024  # the WAL index (-shm) of a WAL of up to 4096 pages


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
        self.pruned_downlinks = 0  # downlink counters of boots long gone
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
        try:
            self._open_schema()
        except BaseException:
            self._db.close()
            self._executor.shutdown(wait=False)
            raise
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        # The WAL is checkpointed (and truncated back) at half its share: the other half
        # holds the transaction that crossed that line (group commits and pruning steps are
        # small) and the frame headers.
        self.wal_bytes = min(_WAL_MAX, max(_WAL_MIN, max_bytes // 32))
        self._db.execute(f"PRAGMA wal_autocheckpoint={self.wal_bytes // self._page_size // 2}")
        self._db.execute(f"PRAGMA journal_size_limit={self.wal_bytes}")
        self._max_pages = max(16, (max_bytes - self.wal_bytes - _SHM_BYTES) // self._page_size)
        # Disk space left free for the WAL to grow to its share and a checkpoint to extend
        # the database by as much: with it, a full disk never wedges the journal.
        self._reserve = 2 * self.wal_bytes + _SHM_BYTES
        self._limit = 0  # max_page_count as set now
        self._resume_bytes = 0  # room to spare for a refusing spell to end
        self._disk_free = 0
        self._full_since: float | None = None  # a full spell: logged at its start and end
        self._full_counts = (0, 0)
        self._marks_refused = False
        self._fit_bound()

    def _open_schema(self) -> None:
        """Create the tables of a new journal, or migrate an older one to SCHEMA_VERSION."""
        db = self._db
        version = schema_version(db)
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this gateway "
                f"knows ({SCHEMA_VERSION}): run the streetsense version that wrote it, or "
                f"restore a backup made by this one")
        if version == 0:
            db.executescript(_SCHEMA)
            self._set_version(SCHEMA_VERSION, {"created_by": gateway_version()})
            return
        while version < SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                self._set_version(version + 1, {f"migrated_to_{version + 1}":
                                                f"{_now_iso()} by {gateway_version()}"})
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            log.info("journal %s migrated from schema version %d to %d", self.path, version,
                     version + 1)
            version += 1

    def _set_version(self, version: int, meta: dict[str, str]) -> None:
        db = self._db
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", meta.items())
        db.execute(f"PRAGMA user_version={int(version)}")
        db.execute("COMMIT")

    def meta(self) -> dict[str, str]:
        """What ``meta`` records: the version that made the journal, its migrations."""
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

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
            self._fit_bound()
            self._pending_state = {}
            try:
                derived = derive() if derive else []
                return self._insert_with_policy(batch, derived, self._pending_state)
            finally:
                self._pending_state = None

    def _insert_with_policy(self, batch: Batch, derived: list[tuple[int, Message]],
                            state: dict[str, str]) -> list[Row]:
        # A refusing spell ends only when the group fits with room to spare (half the
        # refused group's, at least a 64th of the bound); without this margin a journal at the
        # disk's edge flaps, taking a small group and refusing the next, and logs each turn.
        spare = self._resume_bytes if self._full_since is not None else 0
        dropped = False
        while True:
            try:
                rows = self._insert(batch, derived, state, spare)
            except sqlite3.OperationalError as exc:
                if not _refused_by_disk(exc):
                    raise
                error = exc
            else:
                if not dropped:
                    self._full_over()
                return rows
            self.full_events += 1
            if self._delete_quietly(self._prune_sql(), "pruned_messages"):
                continue  # delivered rows made room
            if self.when_full == "drop-delivered-then-drop-oldest":
                self._full_began(error, "dropping the oldest undelivered messages (policy "
                                 f"{self.when_full}; each one counted)")
                if self._delete_quietly(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                        f"WHERE published = 0 ORDER BY id LIMIT {_DROP_BATCH})",
                        "dropped_messages"):
                    dropped = True
                    continue
            self._full_began(error, f"refusing new frames, not ACKed (policy {self.when_full}; "
                             "nodes keep them and retransmit)")
            size = sum(len(m.topic) + len(m.payload) + _ROW_BYTES
                       for *_, messages in batch.frames for m in messages)
            self._resume_bytes = max(self._resume_bytes, size // 2,
                                     self._limit * self._page_size // 64)
            self.rejected_frames += len(batch.frames)
            raise JournalFull("journal full", max_bytes=self.max_bytes)

    def _prune_sql(self) -> str:
        """Delete the oldest delivered messages, one step: every row below the oldest
        undelivered one is delivered (the drain publishes in id order)."""
        oldest = self._db.execute(
            "SELECT min(id) FROM messages WHERE published = 0").fetchone()[0]
        below = "" if oldest is None else f"WHERE id < {int(oldest)} "
        return (f"DELETE FROM messages WHERE id IN (SELECT id FROM messages {below}"
                f"ORDER BY id LIMIT {_PRUNE_BATCH})")

    def _delete_quietly(self, sql: str, counter: str) -> int:
        """Run one DELETE (its own small transaction), add the rows to ``counter``; 0 if
        there was nothing to delete or the disk refused even that."""
        try:
            removed = self._db.execute(sql).rowcount
        except sqlite3.OperationalError as exc:
            if not _refused_by_disk(exc):
                raise
            return 0
        setattr(self, counter, getattr(self, counter) + removed)
        return removed

    def _fit_bound(self) -> None:
        """Set SQLite's page limit: the database's share of ``max_bytes``, and no more than
        the disk can still give beyond the reserve (pages freed inside stay usable)."""
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        try:
            disk = os.statvfs(self.path.parent)
            self._disk_free = disk.f_bavail * disk.f_frsize
        except OSError:
            self._disk_free = self.max_bytes
        room = max(0, self._disk_free - self._reserve) // self._page_size
        limit = min(self._max_pages, pages + room)
        if limit != self._limit:
            self._limit = int(self._db.execute(f"PRAGMA max_page_count={limit}").fetchone()[0])

    def _figures(self) -> str:
        database, wal = (_size(self.path), _size(Path(f"{self.path}-wal")))
        text = (f"{_mib(database + wal)} used (database {_mib(database)} + WAL {_mib(wal)}) "
                f"of a {_mib(self._limit * self._page_size + self.wal_bytes)} bound "
                f"(max_bytes {_mib(self.max_bytes)}")
        if self._limit < self._max_pages:
            text += (f", cut to what the disk has: {_mib(self._disk_free)} free, "
                     f"{_mib(self._reserve)} of it kept for the WAL")
        return text + ")"

    def _full_began(self, error: sqlite3.Error, action: str) -> None:
        if self._full_since is not None:
            return
        self._full_since = time.monotonic()
        self._full_counts = (self.rejected_frames, self.dropped_messages)
        log.error("journal full: %s; SQLite: %s; %s", self._figures(), error, action)

    def _full_over(self) -> None:
        if self._full_since is None:
            return
        log.warning("journal takes frames again after %.1f s full: %d frames refused "
                    "meanwhile (the nodes kept them), %d undelivered messages dropped",
                    time.monotonic() - self._full_since,
                    self.rejected_frames - self._full_counts[0],
                    self.dropped_messages - self._full_counts[1])
        self._full_since = None
        self._resume_bytes = 0

    def _insert(self, batch: Batch, derived: list[tuple[int, Message]],
                state: dict[str, str], spare: int = 0) -> list[Row]:
        """Insert and commit the group; with ``spare`` bytes, only if that much more would
        also fit (rows of that size are written and deleted in the same transaction)."""
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
            if spare:  # in rows of a message's size, which fill pages as messages do
                db.executemany("INSERT INTO state(name, value) VALUES (?, zeroblob(?))",
                               [(f"spare {i}", _SPARE_ROW)
                                for i in range(1 + spare // _SPARE_ROW)])
                db.execute("DELETE FROM state WHERE name LIKE 'spare %'")
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

    def mark_published(self, ids: Iterable[int]) -> bool:
        """Set the published flag of ``ids`` now (one transaction); see ``flush_marks``."""
        self.mark_soon(ids)
        return self.flush_marks()

    def mark_soon(self, ids: Iterable[int]) -> None:
        """Flag ``ids`` as published with the next commit or ``flush_marks`` (no waiting:
        safe to call from the event loop)."""
        with self._marks_lock:
            self._marks.extend(ids)

    def flush_marks(self) -> bool:
        """Write the published flags queued by ``mark_soon``. False when the disk refused
        the write: they stay queued (a restart before they are written publishes those
        messages again)."""
        with self._lock:
            if not self._marks:
                return True
            self._db.execute("BEGIN")
            try:
                self._write_marks()
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                if not _refused_by_disk(exc):
                    raise
                if not self._marks_refused:
                    self._marks_refused = True
                    log.error("journal cannot record deliveries: SQLite: %s; %d flags kept "
                              "in memory until the disk has room (%s)", exc, len(self._marks),
                              self._figures())
                return False
            except BaseException:
                self._rollback()
                raise
            self._marks_taken = []
            if self._marks_refused:
                self._marks_refused = False
                log.warning("journal records deliveries again")
            return True

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
        wal = _size(Path(f"{self.path}-wal"))
        return {"depth": depth, "oldest_received_at": oldest,
                "size_bytes": pages * self._page_size + wal, "max_bytes": self.max_bytes,
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
        """The next downlink counter of (node, boot), committed before it is returned.

        Raises ``JournalFull`` when the disk refuses to save it (nothing may be sent then).
        """
        with self._lock:
            try:
                row = self._db.execute(
                    "INSERT INTO downlink(node_id, boot, counter) VALUES (?, ?, 1) "
                    "ON CONFLICT(node_id, boot) DO UPDATE SET counter = counter + 1 "
                    "RETURNING counter", (node_id, boot)).fetchone()
            except sqlite3.OperationalError as exc:
                if not _refused_by_disk(exc):
                    raise
                raise JournalFull(f"downlink counter not saved: {exc}",
                                  max_bytes=self.max_bytes) from exc
            self._delete_quietly(f"DELETE FROM downlink WHERE node_id = {int(node_id)} "
                                 f"AND boot < {int(boot) - 16}", "pruned_downlinks")
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


def schema_version(db: sqlite3.Connection) -> int:
    """The journal schema version of an open database: 0 for an empty one, 1 for one made
    before versions were recorded (tables, but ``user_version`` 0)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone():
        return 1
    return version


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _refused_by_disk(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL (the bound, or ENOSPC) or an SQLITE_IOERR (EFBIG, EIO): the write did
    not happen, the transaction is rolled back, and a later one may succeed."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_FULL,
                                                          sqlite3.SQLITE_IOERR)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f} MiB"
