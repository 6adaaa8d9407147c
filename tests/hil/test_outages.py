"""Scenarios: broker down, gateway killed, cable unplugged, line noise, node power cycle.

Each lets the node keep sending through the fault, then checks that every DATA frame the
node put on its link reached MQTT exactly once and in order. They run on a traffic board:
its first report does not wait for sensor warm-up, and the link does not care. Short
durations in `make test`, the issue's full ones in the ``soak`` variants (``make soak``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streetsense.hil.artefacts import LinkFrame
from streetsense.hil.broker import Mosquitto, TcpProxy
from streetsense.hil.gateway_proc import GatewayProcess
from streetsense.hil.observer import MqttObserver
from streetsense.hil.plugin import Durations, short_and_soak
from streetsense.hil.rig.drivers import Board, LinkDriver, PowerDriver
from streetsense.hil.rig.strategy import BoardStrategy
from streetsense.protocol import parse_frame
from streetsense.protocol.messages import ACK
from tests.hil.helpers import assert_delivered_once_in_order, sent_data


async def _more_data(board: Board, count: int, *, timeout: float) -> None:
    """Wait until the node has put ``count`` more DATA frames on its link."""
    assert board.link is not None
    start = len(sent_data(board.link.frames, board.node_id))
    await board.link.frames.wait(
        lambda _: len(sent_data(board.link.frames, board.node_id)) >= start + count,  # type: ignore[union-attr]
        timeout=timeout)


def _acks(frame: LinkFrame, boot: int, seq: int) -> bool:
    """Whether ``frame`` is a downlink ACK covering (boot, seq)."""
    if frame.direction != "down" or frame.raw is None or frame.raw[1] != ACK:
        return False
    body = parse_frame(frame.raw).body
    return bool(body[1] == boot and body[2] >= seq)


async def _health(observer: MqttObserver, gateway: GatewayProcess, predicate: Any,
                  timeout: float = 15) -> dict[str, Any]:
    message = await observer.expect(f"{gateway.gateway_topic}/health",
                                    lambda m: predicate(m.json()), timeout=timeout,
                                    since=observer.mark())
    result: dict[str, Any] = message.json()
    return result


@short_and_soak()
@pytest.mark.board(kind="traffic")
@pytest.mark.needs_broker_control
@pytest.mark.needs_link
async def test_broker_outage_loses_nothing(
        variant: str, durations: Durations, board: Board, link: LinkDriver, broker: Mosquitto,
        mqtt_proxy: TcpProxy, gateway: GatewayProcess, observer: MqttObserver,
        strategy: BoardStrategy) -> None:
    """Broker unreachable, then killed and restarted: afterwards all data once, in order."""
    await strategy.transition("provisioned")
    await _more_data(board, 1, timeout=20)
    mqtt_proxy.blackhole(True)
    connections = observer.connections
    await asyncio.to_thread(broker.kill)
    await asyncio.to_thread(broker.start)
    await observer.wait_connected(timeout=10, after=connections)
    # The node keeps reporting through the outage: its frames are acked from the journal.
    per_interval = 2
    await _more_data(board, max(2, int(durations.broker_outage_s / per_interval)),
                     timeout=durations.broker_outage_s + 20)
    mqtt_proxy.reset_all()
    mqtt_proxy.blackhole(False)
    published = await assert_delivered_once_in_order(observer, board, gateway, timeout=30)
    assert len(published) >= 3
    delayed = [m.json()["delayed"] for m in observer.messages(gateway.topic(board.name, "data"))]
    assert any(delayed), "data held through the outage is not flagged delayed"


@short_and_soak()
@pytest.mark.board(kind="traffic")
@pytest.mark.needs_gateway_control
@pytest.mark.needs_link
async def test_gateway_sigkill_mid_stream_loses_nothing(
        variant: str, durations: Durations, board: Board, link: LinkDriver,
        gateway: GatewayProcess, observer: MqttObserver, strategy: BoardStrategy) -> None:
    """SIGKILL right after an ACK went out, restart on the same journal: every frame once,
    in order (an ACK promises the frame is committed: the node will not send it again)."""
    await strategy.transition("provisioned")
    await _more_data(board, 2, timeout=20)
    boot, seq = sent_data(link.frames, board.node_id)[-1]
    await link.frames.wait(lambda f: _acks(f, boot, seq), timeout=20)
    await asyncio.to_thread(gateway.kill)
    # Stop-and-wait: the node retransmits its head frame into the void until the restart.
    retries = len(link.frames.frames)
    await link.frames.wait(lambda f: f.direction == "up", timeout=20, since=retries)
    restarted_at = observer.mark()
    await asyncio.to_thread(gateway.start)
    await _more_data(board, max(2, int(durations.stream_s / 2)), timeout=durations.stream_s + 20)
    await assert_delivered_once_in_order(observer, board, gateway, timeout=30,
                                         restarted_at=restarted_at)


@short_and_soak()
@pytest.mark.board(kind="traffic")
@pytest.mark.needs_link
async def test_cable_unplugged_queue_drains_after_replug(
        variant: str, durations: Durations, board: Board, link: LinkDriver, gateway: Any,
        observer: MqttObserver, strategy: BoardStrategy) -> None:
    """Unplugged for a while: the node queues, and after replug all of it arrives, in order."""
    await strategy.transition("provisioned")
    await _more_data(board, 1, timeout=20)
    before = len(sent_data(link.frames, board.node_id))
    await link.unplug()
    # Stop-and-wait: the node retransmits its head frame while unplugged; the rest queues.
    await asyncio.sleep(durations.unplug_s)  # the fault's duration itself, not a sync wait
    await link.replug()
    await _more_data(board, int(durations.unplug_s / 2), timeout=durations.unplug_s + 30)
    published = await assert_delivered_once_in_order(observer, board, gateway, timeout=30)
    assert len(published) >= before + int(durations.unplug_s / 2)


@short_and_soak()
@pytest.mark.board(kind="traffic")
@pytest.mark.needs_link
async def test_line_noise_loses_nothing_and_counts_crc_errors(
        variant: str, durations: Durations, board: Board, link: LinkDriver,
        gateway: GatewayProcess, observer: MqttObserver, strategy: BoardStrategy) -> None:
    """Bit errors at 1e-3 both ways: CRC errors are counted, no frame is lost or doubled."""
    await strategy.transition("provisioned")
    await link.set_faults(ber=1e-3)
    await asyncio.sleep(durations.noise_s)  # the fault's duration itself, not a sync wait
    await link.set_faults()
    counters = await link.counters()
    assert counters["flipped_bits"] > 0
    await _more_data(board, 2, timeout=20)
    await assert_delivered_once_in_order(observer, board, gateway, timeout=60)
    health = await _health(observer, gateway,
                           lambda h: h["frames_rejected"].get("bad_crc", 0) > 0)
    assert health["frames_rejected"]["bad_crc"] > 0


@pytest.mark.board(kind="traffic")
@pytest.mark.needs_power
@pytest.mark.needs_link
async def test_power_cycle_births_a_new_boot_without_duplicates(
        board: Board, power: PowerDriver, link: LinkDriver, gateway: Any,
        observer: MqttObserver, strategy: BoardStrategy) -> None:
    """Power cycle: a new birth with the boot counter one up, and no data published twice."""
    await strategy.transition("provisioned")
    first = await strategy.wait_birth()
    boot = first.json()["birth"]["boot"]
    await _more_data(board, 1, timeout=20)
    mark = observer.mark()
    frames_mark = len(link.frames.frames)
    await power.cycle()
    await strategy.wait_hello(after=frames_mark)
    birth = await strategy.wait_birth(since=mark)
    assert birth.json()["birth"]["boot"] == boot + 1
    await _more_data(board, 2, timeout=20)
    published = await assert_delivered_once_in_order(observer, board, gateway, timeout=30)
    assert {b for b, _ in published} >= {boot + 1}
