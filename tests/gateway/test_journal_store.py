"""The SQLite journal: group commit, replay state, published flag, bounded size, state."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from streetsense.gateway.journal import Batch, Journal, JournalFull, Message


def _batch(node_id: int, boot: int, seqs: range, size: int = 40) -> Batch:
    batch = Batch()
    for seq in seqs:
        payload = json.dumps({"seq": seq, "pad": "x" * size}).encode()
        batch.frames.append((node_id, boot, seq, 1000.0 + seq,
                             [Message(f"t/{node_id}/data", payload, delayable=True)]))
    batch.replay[node_id] = {boot: seqs[-1]}
    return batch


def test_journal_commit_is_durable_and_drains_in_order(tmp_path: Path) -> None:
    """A committed batch survives reopening; pending() returns it in id order until marked."""
    journal = Journal(tmp_path / "j.sqlite")
    ids = [row.id for row in journal.commit(_batch(7, 3, range(5)))]
    assert ids == sorted(ids) and len(ids) == 5
    journal.close()
    journal = Journal(tmp_path / "j.sqlite")
    rows = journal.pending(0, 100)
    assert [json.loads(r.payload)["seq"] for r in rows] == [0, 1, 2, 3, 4]
    assert journal.load_replay() == {7: {3: 4}}
    journal.mark_published([rows[0].id, rows[1].id])
    assert [r.id for r in journal.pending(0, 100)] == [r.id for r in rows[2:]]
    assert [r.id for r in journal.pending(rows[3].id, 100)] == [rows[4].id]
    assert journal.stats()["depth"] == 3
    journal.close()


def test_journal_wal_and_full_sync(tmp_path: Path) -> None:
    """The journal runs in WAL mode with synchronous=FULL (a commit is on disk before ACK)."""
    journal = Journal(tmp_path / "j.sqlite")
    db = sqlite3.connect(tmp_path / "j.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    journal.close()


def test_journal_downlink_counter_starts_at_one_per_boot_and_persists(tmp_path: Path) -> None:
    """Downlink seq is 1, 2, ... per (node, boot), and goes on after a reopen."""
    journal = Journal(tmp_path / "j.sqlite")
    assert [journal.next_downlink_seq(5, 1) for _ in range(3)] == [1, 2, 3]
    assert journal.next_downlink_seq(5, 2) == 1
    journal.close()
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.next_downlink_seq(5, 1) == 4
    journal.close()


def test_journal_state_saved_inside_a_commit_is_committed_with_it(tmp_path: Path) -> None:
    """save_state during a commit's derive hook lands in that transaction; load_state sees it."""
    journal = Journal(tmp_path / "j.sqlite")

    def derive() -> list[tuple[int, Message]]:
        journal.save_state("aqi", {"hours": [1, 2]})
        assert journal.load_state("aqi") == {"hours": [1, 2]}
        return [(7, Message("t/7/aqi", b"{}"))]

    rows = journal.commit(_batch(7, 1, range(1)), derive)
    assert [row.topic for row in rows] == ["t/7/data", "t/7/aqi"]
    journal.close()
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.load_state("aqi") == {"hours": [1, 2]}
    assert journal.load_state("nothing") is None
    journal.close()


def test_journal_full_rejects_after_dropping_delivered(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """When full, delivered rows go first; then the default policy refuses (counted, logged)."""
    journal = Journal(tmp_path / "j.sqlite", max_bytes=64 * 1024)
    seq = 0
    with pytest.raises(JournalFull):
        while True:
            journal.commit(_batch(1, 1, range(seq, seq + 10), size=400))
            seq += 10
    accepted = journal.stats()["depth"]
    assert journal.rejected_frames == 10 and journal.full_events >= 1
    assert "journal full" in caplog.text and "not ACKed" in caplog.text
    # Deliver half: their rows make room for new frames.
    rows = journal.pending(0, accepted)
    journal.mark_published(r.id for r in rows[: accepted // 2])
    journal.commit(_batch(1, 1, range(seq, seq + 10), size=400))
    assert journal.pruned_messages >= accepted // 2
    assert journal.stats()["dropped_messages"] == 0
    journal.close()


def test_journal_full_spell_does_not_flap_at_the_edge(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Refused a big group, the journal also refuses the small one that would still squeeze in:
    the spell lasts until a 64th of the bound is free again (logged once, ended once)."""
    journal = Journal(tmp_path / "j.sqlite", max_bytes=1 << 20)
    seq = 0
    with pytest.raises(JournalFull):
        while True:
            journal.commit(_batch(1, 1, range(seq, seq + 10), size=400))
            seq += 10
    for _ in range(3):  # one small frame fits in what the big group left, but is refused
        with pytest.raises(JournalFull):
            journal.commit(_batch(1, 1, range(seq, seq + 1), size=10))
    assert caplog.text.count("journal full") == 1 and "takes frames again" not in caplog.text
    rows = journal.pending(0, 10_000)
    journal.mark_published(r.id for r in rows)
    journal.commit(_batch(1, 1, range(seq, seq + 1), size=10))
    assert caplog.text.count("takes frames again") == 1 and journal.rejected_frames == 13
    journal.close()


def test_journal_full_drop_oldest_keeps_the_newest(tmp_path: Path) -> None:
    """Policy drop-oldest deletes the oldest undelivered rows, counts them and accepts."""
    journal = Journal(tmp_path / "j.sqlite", max_bytes=64 * 1024,
                      when_full="drop-delivered-then-drop-oldest")
    for start in range(0, 2000, 10):
        journal.commit(_batch(1, 1, range(start, start + 10), size=400))
    assert journal.dropped_messages > 0 and journal.rejected_frames == 0
    rows = journal.pending(0, 10_000)
    seqs = [json.loads(r.payload)["seq"] for r in rows]
    assert seqs[-1] == 1999 and seqs == sorted(seqs)
    journal.close()


async def test_journal_call_runs_on_its_thread(tmp_path: Path) -> None:
    """Journal work awaited through call() does not run on the event loop's thread."""
    import threading

    journal = Journal(tmp_path / "j.sqlite")
    name = await journal.call(lambda: threading.current_thread().name)
    assert name.startswith("journal") and name != threading.current_thread().name
    await asyncio.sleep(0)
    journal.close()


def test_journal_bound_counts_the_wal(tmp_path: Path) -> None:
    """max_bytes bounds the database, its WAL and the WAL index together, at every commit
    of a fill up to the bound (the WAL alone used to add up to 4 MiB)."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path, max_bytes=1 << 20)
    on_disk = []
    seq = 0
    with pytest.raises(JournalFull):
        while True:
            journal.commit(_batch(1, 1, range(seq, seq + 10), size=400))
            seq += 10
            on_disk.append(sum(p.stat().st_size for p in tmp_path.glob("j.sqlite*")))
    journal.close()
    assert seq > 1000 and max(on_disk) <= 1 << 20, max(on_disk)
