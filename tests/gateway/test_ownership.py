"""Ownership of a node among a site's gateways: who may claim it, and who wins a race."""

from __future__ import annotations

import json
from pathlib import Path

from streetsense.gateway.journal import Journal
from streetsense.gateway.ownership import Ownership
from streetsense.gateway.registry import NodeInfo
from streetsense.gateway.session import Session
from streetsense.gateway.topics import Topics
from streetsense.protocol import Frame
from streetsense.protocol.messages import DATA


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ownership(gateway: str, clock: Clock) -> Ownership:
    view = Ownership(gateway, prefix="streetsense", site="s", claim_after_s=2.0, clock=clock,
                     monotonic=clock)
    view.subscribed()
    return view


def state(node: str, gateway: str, *, online: bool = True, claimed_at: float = 0.0,
          replay: dict[str, int] | None = None) -> tuple[str, bytes]:
    return f"streetsense/s/{node}/state", json.dumps({
        "state": "online" if online else "offline", "gateway": gateway,
        "claimed_at": claimed_at, "replay": replay or {}}).encode()


def gateway_state(gateway: str, online: bool) -> tuple[str, bytes]:
    return f"streetsense/s/_gateway/{gateway}/state", json.dumps(
        {"state": "online" if online else "offline"}).encode()


def test_no_claim_until_the_retained_states_had_time_to_arrive() -> None:
    """Right after subscribing a gateway does not claim (it may not know the owner yet)."""
    clock = Clock()
    view = ownership("gw-b", clock)
    assert not view.may_claim("HN-1")
    clock.now += 2.0
    assert view.may_claim("HN-1")


def test_a_live_owner_keeps_its_node_until_offline_or_its_will() -> None:
    """A node owned by a live gateway is not claimable; it is once the owner marks it
    offline, or once the owner's own state goes offline (its Will)."""
    clock = Clock()
    view = ownership("gw-b", clock)
    clock.now += 5
    view.on_state(*gateway_state("gw-a", True))
    view.on_state(*state("HN-1", "gw-a", replay={"3": 41}))
    assert not view.may_claim("HN-1") and view.owner("HN-1") == "gw-a"
    view.on_state(*gateway_state("gw-a", False))
    assert view.may_claim("HN-1") and view.owner("HN-1") is None
    assert view.claim("HN-1") == {3: 41}  # the replay floor travels with the node
    assert view.owns("HN-1") and view.owner("HN-1") == "gw-b"
    view.on_state(*gateway_state("gw-a", True))
    view.on_state(*state("HN-2", "gw-a", online=False))
    assert view.may_claim("HN-2")


def test_a_race_is_won_by_the_earlier_claim() -> None:
    """Both claim; the one with the earlier claimed_at keeps the node, the other stands by."""
    clock = Clock()
    early, late = ownership("gw-b", clock), ownership("gw-a", clock)
    clock.now += 5
    early.claim("HN-1")
    clock.now += 0.5
    late.claim("HN-1")
    early_state = state("HN-1", "gw-b", claimed_at=early.mine["HN-1"])
    late_state = state("HN-1", "gw-a", claimed_at=late.mine["HN-1"])
    assert late.on_state(*early_state) == ("HN-1", "lost") and not late.owns("HN-1")
    assert early.on_state(*late_state) == ("HN-1", "reassert") and early.owns("HN-1")
    assert early.on_state(*early_state) is None  # its own state coming back


def test_a_gateway_reclaims_its_nodes_after_a_restart() -> None:
    """A restarted gateway finds itself named as owner and takes its nodes back."""
    clock = Clock()
    view = ownership("gw-a", clock)
    clock.now += 5
    view.on_state(*state("HN-1", "gw-a", replay={"1": 9}))
    assert view.may_claim("HN-1") and view.claim("HN-1") == {1: 9}


def test_bad_state_payloads_are_ignored() -> None:
    """A retained state that is not a JSON object naming a gateway changes nothing."""
    view = ownership("gw-a", Clock())
    for payload in (b"", b"not json", b"[1]", b'{"state": "online"}'):
        assert view.on_state("streetsense/s/HN-1/state", payload) is None
    assert view.claims == {}


class Sink:
    """The publisher's retained side: what is set, and what was forgotten."""

    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}
        self.forgotten: list[str] = []

    def set_retained(self, topic: str, payload: bytes) -> None:
        self.states[topic] = payload

    def forget_retained(self, topic: str) -> None:
        self.forgotten.append(topic)
        self.states.pop(topic, None)


class Link:
    name = "pole"

    async def send(self, data: bytes) -> None:
        return None


def test_a_standby_neither_stores_nor_acks_and_a_lost_node_is_let_go(tmp_path: Path) -> None:
    """A node another live gateway owns: its frames are counted as standby frames and go
    nowhere, and the floor follows to seq - 1. Owned, then claimed earlier by another: the
    node is let go without an offline mark and its state is no longer republished."""
    clock = Clock()
    view = ownership("gw-b", clock)
    clock.now += 5
    sink = Sink()
    info = NodeInfo(id=42, name="HN-0042", kind="air-quality", key=bytes(32))
    session = Session(lookup={42: info}.get, journal=Journal(tmp_path / "j.sqlite"),
                      topics=Topics("streetsense", "s", "gw-b"), states=sink,
                      on_committed=lambda rows: None, match_result=lambda n, r: None,
                      ownership=view)
    data = {1: 1_796_000_000, 2: 0, 3: 10, 4: [[2, -1, 312]]}
    view.on_state(*gateway_state("gw-a", True))
    view.on_state(*state("HN-0042", "gw-a"))
    session.on_frame(Link(), Frame(DATA, 42, 1, 7, data, 0x01), info)
    assert session.stats.standby_frames == 1 and session.stats.frames_new == 0
    assert session.nodes[42].boots == {1: 6} and not sink.states
    assert not session.answers_commands_for("HN-0042")
    view.on_state(*state("HN-0042", "gw-a", online=False, replay={"1": 7}))
    session.on_frame(Link(), Frame(DATA, 42, 1, 8, data, 0x01), info)
    topic = "streetsense/s/HN-0042/state"
    claim = json.loads(sink.states[topic])
    assert (claim["gateway"], claim["state"], claim["replay"]) == ("gw-b", "online", {"1": 7})
    session.on_state(*state("HN-0042", "gw-a", claimed_at=claim["claimed_at"] - 1))
    assert sink.forgotten == [topic] and not session.nodes[42].online
    assert not view.owns("HN-0042")
