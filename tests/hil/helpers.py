"""Checks shared by the HIL scenarios: what the node sent on its link against what MQTT got."""

from __future__ import annotations

from typing import Any

from streetsense.hil.artefacts import FrameLog
from streetsense.hil.observer import MqttObserver, Observed
from streetsense.hil.rig.drivers import Board
from streetsense.protocol import peek_node_id
from streetsense.protocol.messages import DATA, QUANTITIES

QUANTITY_NAMES = {name for name, _ in QUANTITIES.values()}


async def command(observer: MqttObserver, gateway: Any, board: Board, name: str,
                  request: dict[str, Any]) -> dict[str, Any]:
    """Send ``cmd/<name>``, signed, and return the node's result (matched by the request id)."""
    topic, payload = gateway.sign_command(board.name, name, request)
    await observer.publish(topic, payload)
    result = await observer.expect(f"{topic}/result",
                                   lambda m: m.json().get("id") == request["id"], timeout=20)
    answer: dict[str, Any] = result.json()
    return answer


def quantity(key: str) -> str:
    """The quantity of a reading key: ``temperature_1`` → ``temperature``, ``pm2_5`` stays."""
    if key in QUANTITY_NAMES:
        return key
    base, _, instance = key.rpartition("_")
    return base if instance.isdigit() and base in QUANTITY_NAMES else key


def sent_data(frames: FrameLog, node_id: int) -> list[tuple[int, int]]:
    """(boot, seq) of every distinct DATA frame the node put on its link, in order."""
    seen: dict[tuple[int, int], None] = {}
    for frame in frames.frames:
        raw = frame.raw
        if frame.direction == "up" and raw is not None and len(raw) >= 15 and raw[1] == DATA \
                and peek_node_id(raw) == node_id:
            seen[(int.from_bytes(raw[7:11], "big"), int.from_bytes(raw[11:15], "big"))] = None
    return list(seen)


def published_data(observer: MqttObserver, topic: str, since: int = 0) -> list[tuple[int, int]]:
    """(boot, seq) of every ``data`` message on ``topic``, in arrival order (duplicates kept)."""
    return [(m.json()["boot"], m.json()["seq"]) for m in observer.messages(topic, since=since)]


async def wait_published(observer: MqttObserver, topic: str, wanted: tuple[int, int], *,
                         timeout: float) -> Observed:
    """The ``data`` message of frame ``wanted`` = (boot, seq)."""
    return await observer.expect(
        topic, lambda m: (m.json()["boot"], m.json()["seq"]) == wanted, timeout=timeout)


def _count_before(observer: MqttObserver, topic: str, since: int, index: int) -> int:
    """How many messages on ``topic`` (from ``since``) came before transcript ``index``."""
    return len([m for m in observer.messages(topic, since=since) if m.index < index])


async def assert_delivered_once_in_order(observer: MqttObserver, board: Board, gateway: Any,
                                         *, timeout: float, since: int = 0,
                                         restarted_at: int | None = None) -> list[Any]:
    """Every DATA frame the node sent (until now) reaches MQTT exactly once, in send order.

    Waits for the last one sent, then compares the whole list: no gap, no duplicate, no
    reordering. Returns the (boot, seq) list of first copies.

    ``restarted_at`` (a transcript index): the gateway was killed and started again there.
    A message the killed process had published may come again from the new one (it died
    before recording the PUBACK: QoS 1 is at-least-once; consumers drop repeats by (node,
    boot, seq)). Only such repeats are allowed, and only once each.
    """
    assert board.link is not None
    topic = gateway.topic(board.name, "data")
    sent = sent_data(board.link.frames, board.node_id)
    assert sent, "the node sent no DATA frame"
    await wait_published(observer, topic, sent[-1], timeout=timeout)
    published = [item for item in published_data(observer, topic, since)
                 if sent[0] <= item <= sent[-1]]
    if restarted_at is not None:
        before = set(published_data(observer, topic, since)[: _count_before(
            observer, topic, since, restarted_at)])
        repeats = [item for index, item in enumerate(published) if item in published[:index]]
        assert all(item in before for item in repeats) and len(repeats) == len(set(repeats)), \
            f"published again beyond the restart's redelivery: {repeats}"
        published = list(dict.fromkeys(published))
    duplicates = sorted({item for item in published if published.count(item) > 1})
    assert not duplicates, f"published more than once: {duplicates}"
    missing = sorted(set(sent) - set(published))
    assert not missing, f"sent but never published: {missing}"
    assert published == sorted(published), f"published out of order: {published}"
    return published
