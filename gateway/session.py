"""Node sessions: verified frames in (from ``framing``), deduplicated, journaled, then ACKed.

The session loop: the replay rule (``replay``) per (node, boot) drops replays; new frames
become journal messages (``frame_messages``); the committer task commits every frame that
arrived meanwhile in one transaction (group commit) and only then sends the ACKs (SPEC
§6.3). Duplicates are re-ACKed after the same commit, never journaled again. HELLO is the
node's birth: a retained ``state`` with its birth info, then a TIME. Downlinks (TIME,
CONFIG, COMMAND) are signed with the next (node, boot) downlink counter.

Nothing here reaches back up to MQTT except through the journal, the retained-state sink and
the RESULT matcher handed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streetsense.protocol import Frame, names
from streetsense.protocol.messages import ACK, CLOCK_UPTIME, DATA, HELLO, OTA_STATUS, TIME

from . import payloads
from .frame_messages import Announcer, FrameMessages, ResultMatcher, RetainedSink
from .framing import LOG_EVERY_S, Rejections
from .journal import Batch, Journal, JournalFull, Message, Row
from .metrics import Metrics
from .node_state import NodeState
from .ownership import Ownership
from .registry import NodeInfo
from .replay import advance, replay_verdict
from .topics import Topics
from .transports.base import Link

__all__ = ["DataAmender", "Deriver", "Session", "SessionStats"]

log = logging.getLogger("streetsense.gateway.session")

TIME_RESEND_S = 60.0  # a node still on its uptime clock gets a TIME at most this often
FLOOR_EVERY_S = 10.0  # an owned node's retained state carries its replay floor this fresh


class Deriver(Protocol):
    """A derived-value hook (``Gateway(config, derivers=[...])``)."""

    name: str

    def on_data(self, node: NodeInfo, message: dict[str, Any],
                journal: Journal) -> list[tuple[str, dict[str, Any]]]:
        """(subtopic, payload) pairs to publish for one ``data`` message."""


class DataAmender(Protocol):
    """Adds derived fields to a ``data`` message before it is published (the PM correction)."""

    name: str

    def amend_data(self, message: dict[str, Any]) -> None:
        """Change ``message`` in place."""


class OtaStatusSink(Protocol):
    """Where a node's OTA_STATUS goes (gateway/ota.py): the messages to journal for it."""

    def on_status(self, node: NodeState, body: dict[int, Any], now: float) -> list[Message]:
        ...


@dataclass
class _Arrival:
    link: Link
    node: NodeState
    frame: Frame
    received_at: float
    new: bool
    messages: list[Message]
    data: dict[str, Any] | None = None


@dataclass
class SessionStats:
    """Counters of the session layer (health payload and metrics read them)."""

    frames_in: int = 0  # verified frames that were not replays
    frames_new: int = 0
    duplicates: int = 0
    acks_sent: int = 0
    downlinks_sent: int = 0
    downlink_failures: int = 0
    unknown_types: int = 0
    standby_frames: int = 0  # heard from nodes another gateway owns: not stored, not ACKed
    commits: int = 0
    committed_frames: int = 0
    derive_errors: int = 0


class Session:
    """The session layer between framing and the journal."""

    def __init__(self, *, lookup: Callable[[int], NodeInfo | None], journal: Journal,
                 topics: Topics, states: RetainedSink,
                 on_committed: Callable[[list[Row]], None],
                 match_result: ResultMatcher, derivers: Sequence[Deriver] = (),
                 announce: Announcer | None = None, rejections: Rejections | None = None,
                 clock: Callable[[], float] = time.time,
                 amenders: Sequence[DataAmender] = (),
                 ownership: Ownership | None = None) -> None:
        self._lookup = lookup
        self._messages = FrameMessages(topics=topics, states=states, match_result=match_result,
                                       amend=self._amend, announce=announce)
        self.ownership = ownership
        self._journal = journal
        self._topics = topics
        self._states = states
        self._on_committed = on_committed
        self._derivers = list(derivers)
        self._amenders = list(amenders)
        self._rejections = rejections or Rejections(Metrics())
        self.metrics = self._rejections.metrics
        self._journal_losses = 0  # journal.rejected_frames + dropped_messages already counted
        self._clock = clock
        self.stats = SessionStats()
        self.nodes: dict[int, NodeState] = {}
        self._inbox: list[_Arrival] = []
        self._inbox_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unknown_type_logged: dict[int, float] = {}
        self.ota: OtaStatusSink | None = None  # firmware updates (gateway/ota.py)
        self.committed = asyncio.Condition()  # notified after each group commit

    # ---- startup ------------------------------------------------------------------------

    def restore(self) -> None:
        """Load the committed replay state and births from the journal (sync, at startup)."""
        for node_id, boots in self._journal.load_replay().items():
            info = self._lookup(node_id)
            if info is None:
                continue
            node = self._node(info)
            node.boots = dict(boots)
            node.committed = dict(boots)
            node.current_boot = max(boots) if boots else None
        births = self._journal.load_state("session.births") or {}
        for key, birth in births.items():
            node_state = self.nodes.get(int(key))
            if node_state is not None:
                if "device" in birth:  # saved before the field took the wire's name "kind"
                    birth["kind"] = birth.pop("device")
                node_state.birth = birth
                node_state.anchors = {int(b): a for b, a in birth.get("anchors", {}).items()}

    def _node(self, info: NodeInfo) -> NodeState:
        node = self.nodes.get(info.id)
        if node is None:
            node = self.nodes[info.id] = NodeState(info.id, info)
        node.info = info
        return node

    # ---- frames in ----------------------------------------------------------------------

    def on_frame(self, link: Link, frame: Frame, info: NodeInfo) -> None:
        """A verified frame (from ``Framing``): replay rule, then journal and ACK."""
        node = self._node(info)
        if self.ownership is not None and not self._owned(node, frame):
            return
        verdict = replay_verdict(node.boots, frame.boot, frame.seq)
        if verdict == "replay":
            self._rejections("replay", ("node", frame.node_id),
                         f"node {info.name}: replayed frame boot {frame.boot} seq {frame.seq}")
            return
        self.stats.frames_in += 1
        self.metrics.frame_in(link.name)
        self.metrics.node_seen(info.name, rssi_dbm=getattr(link, "rssi", None))  # BLE links
        now = self._clock()
        node.link = link
        node.last_seen = now
        if node.current_boot is None or frame.boot > node.current_boot:
            node.current_boot = frame.boot
        if verdict == "duplicate":
            self.stats.duplicates += 1
            if frame.ack_requested:
                self._push(_Arrival(link, node, frame, now, False, []))
            return
        self.stats.frames_new += 1
        advance(node.boots, frame.boot, frame.seq)
        arrival = _Arrival(link, node, frame, now, True, [])
        self._build(arrival)
        if not node.online:
            node.online = True
            self._publish_state(node)
        self._push(arrival)

    def _owned(self, node: NodeState, frame: Frame) -> bool:
        """Whether this gateway owns ``node``, claiming it if it may. A standby only follows
        the node's replay floor: a node sends ``seq`` once ``seq - 1`` was ACKed (stop-and-
        wait), so what it heard before that was stored by the owner."""
        ownership, name = self.ownership, node.info.name
        assert ownership is not None
        if ownership.owns(name):
            return True
        if not ownership.may_claim(name):
            self.stats.standby_frames += 1
            if frame.seq > 0 and replay_verdict(node.boots, frame.boot, frame.seq - 1) == "new":
                advance(node.boots, frame.boot, frame.seq - 1)
                advance(node.committed, frame.boot, frame.seq - 1)
            return False
        for boot, seq in ownership.claim(name).items():
            for replay in (node.boots, node.committed):
                if replay_verdict(replay, boot, seq) == "new":
                    advance(replay, boot, seq)
        if node.current_boot is None and node.committed:
            node.current_boot = max(node.committed)
        node.online = False  # the first frame it accepts publishes the claim
        return True

    def on_state(self, topic: str, payload: bytes) -> None:
        """A retained node or gateway state of this site (ownership): step down from a node
        another gateway claimed first, or publish this gateway's claim again."""
        if self.ownership is None:
            return
        change = self.ownership.on_state(topic, payload)
        if change is None:
            return
        node = self.node_by_name(change[0])
        if node is None:
            return
        if change[1] == "lost":
            node.online = False  # no offline mark: the node is online, at the other gateway
            self._states.forget_retained(self._topics.node(node.info.name, "state"))
        elif node.online:
            self._publish_state(node)

    def answers_commands_for(self, name: str) -> bool:
        """Whether this gateway answers the commands for node ``name``: always without
        ownership; with it, unless another gateway owns the node."""
        return self.ownership is None or self.ownership.owner(name) in (
            None, self.ownership.gateway_id)

    def _push(self, arrival: _Arrival) -> None:
        self._inbox.append(arrival)
        self._inbox_ready.set()

    # ---- messages -----------------------------------------------------------------------

    def origin(self, info: NodeInfo) -> payloads.Origin:
        return self._messages.origin(info)

    def _build(self, arrival: _Arrival) -> None:
        if arrival.frame.type == HELLO:
            self._birth(arrival.node, arrival.frame, arrival.received_at)
            return
        if arrival.frame.type == OTA_STATUS and self.ota is not None:
            arrival.messages = self.ota.on_status(arrival.node, arrival.frame.body,
                                                  arrival.received_at)
            return
        built = self._messages.build(arrival.node, arrival.frame, arrival.received_at)
        if built is None:
            self.stats.unknown_types += 1
            self._reject_unknown_type(arrival.frame)
            return
        arrival.messages, arrival.data = built

    def _reject_unknown_type(self, frame: Frame) -> None:
        now = time.monotonic()
        if now - self._unknown_type_logged.get(frame.node_id, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._unknown_type_logged[frame.node_id] = now  # verified nodes only: bounded
            log.info("node %d sent type 0x%02x, unknown to protocol v1.0: ACKed, not published",
                     frame.node_id, frame.type)

    def _birth(self, node: NodeState, frame: Frame, now: float) -> None:
        self._messages.birth(node, frame, now)
        node.online = True
        self._publish_state(node)

    def _publish_state(self, node: NodeState, reason: str = "") -> None:
        self._states.set_retained(self._topics.node(node.info.name, "state"),
                                  self.state_message(node, online=node.online, reason=reason))

    def state_message(self, node: NodeState, *, online: bool, reason: str = "") -> bytes:
        """The node's retained ``state``; with ownership, the claim and replay floor too."""
        birth = None
        if node.birth is not None:
            birth = {k: v for k, v in node.birth.items() if k != "anchors"}
        payload = payloads.state_payload(
            self.origin(node.info), online=online, birth=birth,
            location=node.info.location, link=node.link.name if node.link else None,
            last_seen=node.last_seen, reason=reason)
        if self.ownership is not None:
            payload.update(self.ownership.claim_fields(node.info.name, node.committed))
            node.floor_sent = (dict(node.committed), time.monotonic())
        return payloads.encode(payload)

    # ---- group commit -------------------------------------------------------------------

    async def run(self) -> None:
        """The committer: journal everything that arrived, in one transaction, then ACK."""
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            arrivals, self._inbox = self._inbox, []
            if arrivals:
                await self._commit(arrivals)

    async def _commit(self, arrivals: list[_Arrival]) -> None:
        batch = Batch()
        touched: dict[int, NodeState] = {}
        for arrival in arrivals:
            if not arrival.new:
                continue
            frame = arrival.frame
            batch.frames.append((frame.node_id, frame.boot, frame.seq, arrival.received_at,
                                 arrival.messages))
            replay = batch.replay.setdefault(frame.node_id, dict(arrival.node.committed))
            advance(replay, frame.boot, frame.seq)
            touched[frame.node_id] = arrival.node
        data = [(a.node.info, a.data) for a in arrivals if a.new and a.data is not None]
        births = any(a.new and a.frame.type == HELLO for a in arrivals)
        rows: list[Row] = []
        try:
            if batch.frames:
                rows = await self._journal.call(self._journal.commit, batch,
                                                lambda: self._before_commit(data, births))
        except JournalFull:
            self._count_journal_losses()
            self._forget_refused(touched, {(a.frame.node_id, a.frame.boot)
                                           for a in arrivals if a.new})
            return
        self._count_journal_losses()
        for node_id, replay in batch.replay.items():
            touched[node_id].committed = replay
        self.stats.commits += 1
        self.stats.committed_frames += len(batch.frames)
        self._on_committed(rows)
        async with self.committed:
            self.committed.notify_all()
        await self._ack(arrivals)
        for arrival in arrivals:
            if arrival.new and arrival.frame.type == HELLO:
                self._spawn(self.send_time(arrival.node))
            elif (arrival.new and arrival.frame.type == DATA
                  and arrival.frame.body.get(names.DATA_CLOCK) == CLOCK_UPTIME
                  and time.monotonic() - arrival.node.time_sent_at > TIME_RESEND_S):
                self._spawn(self.send_time(arrival.node))

    def _forget_refused(self, touched: dict[int, NodeState],
                        refused: set[tuple[int, int]]) -> None:
        """After a refused commit: the replay state goes back to what is committed, and
        whatever of the same (node, boot) arrived meanwhile is dropped unACKed too (a
        retransmission of a refused frame is not a duplicate of anything committed, and a
        later seq must not be ACKed over it). The nodes send them again, in order."""
        self._inbox = [a for a in self._inbox
                       if (a.frame.node_id, a.frame.boot) not in refused]
        for node_id, node in touched.items():
            node.boots = dict(node.committed)
            for later in self._inbox:  # other boots of this node: still new
                if later.new and later.node.node_id == node_id:
                    advance(node.boots, later.frame.boot, later.frame.seq)

    def _amend(self, data: dict[str, Any], info: NodeInfo) -> None:
        for amender in self._amenders:
            try:
                amender.amend_data(data)
            except Exception:
                self.stats.derive_errors += 1
                log.exception("%s failed on a message of %s", amender.name, info.name)

    def _count_journal_losses(self) -> None:
        losses = self._journal.rejected_frames + self._journal.dropped_messages
        if losses > self._journal_losses:
            self.metrics.journal_full(losses - self._journal_losses)
            self._journal_losses = losses

    def _before_commit(self, data: list[tuple[NodeInfo, dict[str, Any]]],
                       births: bool) -> list[tuple[int, Message]]:
        """On the journal thread, inside the commit: derived values and node births."""
        extra: list[tuple[int, Message]] = []
        for info, message in data:
            for deriver in self._derivers:
                try:
                    produced = deriver.on_data(info, message, self._journal)
                except Exception:
                    self.stats.derive_errors += 1
                    log.exception("deriver %s failed on a message of %s", deriver.name,
                                  info.name)
                    continue
                for subtopic, payload in produced:
                    extra.append((info.id, Message(
                        self._topics.node(info.name, subtopic), payloads.encode(payload),
                        delayable="delayed" in payload)))
        if births:
            self._journal.save_state("session.births", {
                str(n.node_id): n.birth for n in self.nodes.values() if n.birth is not None})
        return extra

    async def _ack(self, arrivals: list[_Arrival]) -> None:
        # One cumulative ACK per (link, node, boot): the highest seq of this commit, and
        # only up to what the journal holds (a duplicate of a frame whose commit is pending
        # or was refused is not ACKed: the node retransmits it).
        highest: dict[tuple[str, int, int], tuple[_Arrival, int]] = {}
        for arrival in arrivals:
            frame = arrival.frame
            if not frame.ack_requested or \
                    frame.seq > arrival.node.committed.get(frame.boot, -1):
                continue
            key = (arrival.link.name, frame.node_id, frame.boot)
            if key not in highest or frame.seq > highest[key][1]:
                highest[key] = (arrival, frame.seq)
        # The ACKs for one link leave in one write (one syscall, one wakeup of the reader).
        by_link: dict[str, tuple[Link, list[bytes], list[str]]] = {}
        for (_, node_id, boot), (arrival, seq) in highest.items():
            node = arrival.node
            ack = Frame(ACK, node_id, node.current_boot or boot, 0,
                        {names.ACK_BOOT: boot, names.ACK_SEQ: seq})
            _, acks, receivers = by_link.setdefault(arrival.link.name, (arrival.link, [], []))
            acks.append(ack.encode(node.info.key))
            receivers.append(node.info.name)
        for link, acks, receivers in by_link.values():
            try:
                await link.send(b"".join(acks))
            except ConnectionError as exc:
                log.warning("ACK to %s not sent: %s", ", ".join(receivers), exc)
                continue
            self.stats.acks_sent += len(acks)
            self.metrics.downlink("ack", len(acks))

    # ---- downlinks ----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_downlink(self, node: NodeState, mtype: int, body: dict[int, Any]) -> int:
        """Sign and send TIME/CONFIG/COMMAND with the next (node, boot) downlink counter.

        Returns the seq used. Raises ``ConnectionError`` if the node is removed or disabled
        in the registry (nothing is signed for it), has no link or boot yet, or the journal
        cannot save the downlink counter (a full disk).
        """
        link, boot = node.link, node.current_boot
        info = self._lookup(node.node_id)
        if info is None or not info.enabled:
            raise ConnectionError(f"node {node.info.name} is no longer enabled in the registry")
        node.info = info
        if link is None or boot is None:
            raise ConnectionError(f"node {node.info.name} has not been heard yet")
        try:
            seq = await self._journal.call(self._journal.next_downlink_seq, node.node_id, boot)
        except JournalFull as exc:
            raise ConnectionError(str(exc)) from exc
        frame = Frame(mtype, node.node_id, boot, seq, body)
        try:
            await link.send(frame.encode(node.info.key))
        except ConnectionError:
            self.stats.downlink_failures += 1
            raise
        self.stats.downlinks_sent += 1
        self.metrics.downlink(frame.type_name or str(mtype))
        return seq

    async def send_time(self, node: NodeState) -> None:
        """Push the gateway's UTC time to ``node`` (after HELLO, on request, periodically)."""
        node.time_sent_at = time.monotonic()
        try:
            await self.send_downlink(node, TIME, {names.TIME_UTC_MS: int(self._clock() * 1000)})
        except ConnectionError as exc:
            log.warning("TIME to %s not sent: %s", node.info.name, exc)

    # ---- availability -------------------------------------------------------------------

    def check_silence(self, offline_after_s: float) -> None:
        """Mark nodes silent for ``offline_after_s`` offline (retained state); with
        ownership, refresh an owned node's replay floor in its state every FLOOR_EVERY_S."""
        now = self._clock()
        for node in self.nodes.values():
            if node.online and node.last_seen is not None and \
                    now - node.last_seen >= offline_after_s:
                node.online = False
                log.warning("node %s offline: silent for %.0f s", node.info.name,
                            now - node.last_seen)
                self._publish_state(node, reason="silent")
            elif (node.online and self.ownership is not None
                  and node.floor_sent[0] != node.committed
                  and time.monotonic() - node.floor_sent[1] >= FLOOR_EVERY_S):
                self._publish_state(node)

    def refresh(self, node_id: int) -> None:
        """The registry renamed this node: its retained state again, under the new name."""
        node, info = self.nodes.get(node_id), self._lookup(node_id)
        if node is not None and info is not None:
            node.info = info
            self._publish_state(node)

    def node_by_name(self, name: str) -> NodeState | None:
        for node in self.nodes.values():
            if node.info.name == name:
                return node
        return None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
