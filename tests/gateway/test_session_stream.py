"""Framing and session on a real journal, fed chunk by chunk: splits, garbage, replay rule."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streetsense.gateway.framing import LOG_BURST, LOGGED_MAX, Framing, Rejections
from streetsense.gateway.journal import Journal
from streetsense.gateway.metrics import Metrics
from streetsense.gateway.payloads import iso_utc
from streetsense.gateway.replay import MAX_BOOTS, replay_verdict
from streetsense.gateway.session import Session
from streetsense.gateway.topics import Topics
from streetsense.hil.keys import numbered_key
from streetsense.protocol import Deframer, Frame, parse_frame
from streetsense.protocol.messages import ACK, DATA, HELLO
from tests.support.gateway_rig import node_info


class RecordingLink:
    """A link that keeps what the gateway sends (the ACKs) instead of writing it anywhere."""

    name = "rec0"

    def __init__(self) -> None:
        self.sent: list[Frame] = []
        self.changed = asyncio.Condition()

    async def send(self, data: bytes) -> None:
        (raw,) = Deframer().feed(data)
        self.sent.append(parse_frame(bytes(raw), numbered_key(42)))
        async with self.changed:
            self.changed.notify_all()


class Retained:
    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}

    def set_retained(self, topic: str, payload: bytes) -> None:
        self.states[topic] = payload


def _data(seq: int, boot: int = 1, node_id: int = 42) -> bytes:
    body = {1: 1_764_115_200 + seq, 2: 0, 3: 60, 4: [[2, -1, 300 + seq]]}
    wire: bytes = Frame(DATA, node_id, boot, seq, body, 0x01).encode(numbered_key(node_id))
    return wire


async def _session(tmp_path: Path, clock: Callable[[], float] = time.time
                   ) -> tuple[Framing, Session, Journal, asyncio.Task[None]]:
    journal = Journal(tmp_path / "j.sqlite")
    registry = {42: node_info(42)}
    rejections = Rejections(Metrics())
    session = Session(lookup=registry.get, journal=journal,
                      topics=Topics("streetsense", "test", "gw"), states=Retained(),
                      on_committed=lambda rows: None, match_result=lambda n, r: None,
                      rejections=rejections, clock=clock)
    framing = Framing(lookup=registry.get, on_frame=session.on_frame, rejections=rejections)
    return framing, session, journal, asyncio.create_task(session.run())


async def _settle(session: Session, frames: int) -> None:
    async with asyncio.timeout(5), session.committed:
        await session.committed.wait_for(lambda: session.stats.committed_frames >= frames)


def _published_seqs(journal: Journal) -> list[int]:
    return [json.loads(row.payload)["seq"] for row in journal.pending(0, 10_000)
            if row.topic.endswith("/data")]


async def test_session_frames_split_at_every_boundary(tmp_path: Path) -> None:
    """A frame split at each byte offset (and a stream byte by byte) is journaled once each."""
    framing, session, journal, task = await _session(tmp_path)
    link = RecordingLink()
    wires = [_data(seq) for seq in range(len(_data(0)) + 1)]
    for cut, wire in enumerate(wires):
        framing.on_bytes(link, wire[:cut])
        framing.on_bytes(link, wire[cut:])
    extra = [_data(seq) for seq in range(len(wires), len(wires) + 3)]
    for byte in b"".join(extra):
        framing.on_bytes(link, bytes([byte]))
    await _settle(session, len(wires) + 3)
    assert _published_seqs(journal) == list(range(len(wires) + 3))
    assert not framing.rejections.counts
    task.cancel()
    journal.close()


async def test_session_garbage_and_oversize_cost_no_good_frame(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Random garbage, a 600-byte run and a bad CRC are counted by reason; good frames pass."""
    framing, session, journal, task = await _session(tmp_path)
    link = RecordingLink()
    rng = random.Random(7)
    corrupt = bytearray(_data(1))
    corrupt[20] ^= 0x40
    stream = (bytes(rng.randrange(1, 256) for _ in range(100)) + b"\x00" + _data(0)
              + b"\x55" * 600 + b"\x00" + bytes(corrupt) + _data(1)
              + bytes(rng.randrange(0, 256) for _ in range(50)) + b"\x00" + _data(2))
    for start in range(0, len(stream), 37):
        framing.on_bytes(link, stream[start:start + 37])
    await _settle(session, 3)
    assert _published_seqs(journal) == [0, 1, 2]
    assert framing.rejections.counts["oversize"] == 1
    assert sum(framing.rejections.counts.values()) >= 3
    assert "rejected frame (oversize)" in caplog.text
    task.cancel()
    journal.close()


async def test_session_acks_after_commit_and_reacks_duplicates(tmp_path: Path) -> None:
    """ACK (signed, header seq 0) follows the commit; a retransmit is re-ACKed, not rejournaled."""
    framing, session, journal, task = await _session(tmp_path)
    link = RecordingLink()
    framing.on_bytes(link, _data(0))
    assert link.sent == []  # nothing is ACKed before the commit
    await _settle(session, 1)
    framing.on_bytes(link, _data(0))
    async with asyncio.timeout(5), link.changed:
        await link.changed.wait_for(lambda: len(link.sent) >= 2)
    assert [(f.type, f.seq, f.body) for f in link.sent] == [(ACK, 0, {1: 1, 2: 0})] * 2
    assert _published_seqs(journal) == [0]
    assert session.stats.duplicates == 1
    task.cancel()
    journal.close()


def test_session_replay_rule_tracks_sixteen_boots() -> None:
    """SPEC §6.2: per boot new/duplicate/replay; 16 boots kept, older ones are replays."""
    boots: dict[int, int] = {}
    assert replay_verdict(boots, 1, 5) == "new"
    boots[1] = 5
    assert replay_verdict(boots, 1, 5) == "duplicate"
    assert replay_verdict(boots, 1, 4) == "replay"
    assert replay_verdict(boots, 1, 6) == "new"
    boots = {b: 0 for b in range(10, 10 + MAX_BOOTS)}
    assert replay_verdict(boots, 9, 100) == "replay"
    assert replay_verdict(boots, 10, 1) == "new"
    assert replay_verdict(boots, 40, 0) == "new"


async def test_session_replay_state_survives_restart(tmp_path: Path) -> None:
    """The replay state is committed with the frames: after a restart old frames are replays."""
    framing, session, journal, task = await _session(tmp_path)
    link = RecordingLink()
    for seq in range(3):
        framing.on_bytes(link, _data(seq))
    await _settle(session, 3)
    task.cancel()
    journal.close()
    framing, session, journal, task = await _session(tmp_path)
    session.restore()
    framing.on_bytes(link, _data(1))
    framing.on_bytes(link, _data(3))
    await _settle(session, 1)
    assert framing.rejections.counts["replay"] == 1
    assert _published_seqs(journal) == [0, 1, 2, 3]
    task.cancel()
    journal.close()


async def test_session_restores_a_birth_saved_before_the_kind_rename(tmp_path: Path) -> None:
    """A birth a gateway saved with the old field name "device" comes back as "kind"."""
    framing, session, journal, task = await _session(tmp_path)
    framing.on_bytes(RecordingLink(), _data(0))
    await _settle(session, 1)
    journal.save_state("session.births", {"42": {"boot": 1, "device": "air-quality",
                                                 "anchors": {"1": 1000.0}}})
    task.cancel()
    journal.close()
    framing, session, journal, task = await _session(tmp_path)
    session.restore()
    assert session.nodes[42].birth == {"boot": 1, "kind": "air-quality",
                                       "anchors": {"1": 1000.0}}
    assert session.nodes[42].anchors == {1: 1000.0}
    task.cancel()
    journal.close()


async def test_session_maps_uptime_timestamps_to_utc(tmp_path: Path) -> None:
    """clock 1 (uptime) becomes UTC with the boot's anchor (HELLO arrival - uptime_ms);
    a boot whose HELLO was never seen stays `uptime` with ts null."""
    now = 1_800_000_000.0
    framing, session, journal, task = await _session(tmp_path, clock=lambda: now)
    link = RecordingLink()
    hello = {1: "streetsense-node", 2: "0.1.0", 3: [1, 0], 4: [], 5: 1, 6: 2, 8: 5000}
    key = numbered_key(42)
    framing.on_bytes(link, Frame(HELLO, 42, 2, 0, hello, 0x01).encode(key))
    framing.on_bytes(link, Frame(DATA, 42, 2, 1, {1: 65, 2: 1, 4: []}, 0x01).encode(key))
    framing.on_bytes(link, Frame(DATA, 42, 1, 9, {1: 30, 2: 1, 4: []}, 0x01).encode(key))
    await _settle(session, 3)
    mapped, unknown = [json.loads(r.payload) for r in journal.pending(0, 10)]
    assert (mapped["clock"], mapped["uptime_s"]) == ("mapped", 65)
    assert mapped["ts"] == iso_utc(now - 5 + 65)
    assert (unknown["clock"], unknown["ts"], unknown["uptime_s"]) == ("uptime", None, 30)
    assert unknown["delayed"] is True  # a frame of an older boot was held at the node
    task.cancel()
    journal.close()


def test_session_a_flood_of_strangers_costs_bounded_memory_and_log_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    """5,000 frames of ever new unknown node ids: each counted; at most LOGGED_MAX sources
    remembered and LOG_BURST lines logged; a minute on, one line says how many were not."""
    now = [1000.0]
    rejections = Rejections(Metrics(), clock=lambda: now[0])
    framing = Framing(lookup=lambda node_id: None, on_frame=lambda *frame: None,
                      rejections=rejections)
    link = RecordingLink()
    for node_id in range(1000, 6000):
        framing.on_bytes(link, Frame(DATA, node_id, 1, 0, {1: 1, 2: 0, 4: []}, 0x01).encode(
            numbered_key(node_id)))
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("framing")]
    assert rejections.counts["unknown_node"] == 5000
    assert rejections.sources <= LOGGED_MAX and len(lines) == LOG_BURST
    now[0] += 60.0
    framing.on_bytes(link, Frame(DATA, 7, 1, 0, {1: 1, 2: 0, 4: []}, 0x01).encode(numbered_key(7)))
    last = [r.getMessage() for r in caplog.records if r.name.endswith("framing")][-1]
    assert "node 7 on rec0" in last and f"({5000 - LOG_BURST} more like it not logged)" in last
