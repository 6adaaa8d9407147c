"""Node core on the emulated board: boot, HELLO, stop-and-wait delivery, spill to flash."""

from __future__ import annotations

from pathlib import Path

import pytest

from streetsense.hil.keys import KEY, NODE_ID
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.protocol import messages as m
from tests.firmware.node_harness import hello, make_node, wait_until

pytestmark = pytest.mark.micropython


def test_hello_after_boot(tmp_path: Path) -> None:
    """A provisioned node's first frame is a signed HELLO of boot 1, seq 0, with its identity."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        frame = gw.wait(hello(1))
    assert frame.verified and frame.ack_requested
    assert (frame.boot, frame.seq) == (1, 0)
    body = frame.body
    assert body[1] == "test" and body[3] == [1, 0] and body[4] == ["fake"]
    assert body[5] == 1 and body[6] == 1  # power-on reset, boot counter = header boot
    assert "factory" not in body[7] and "reboot" in body[7]


def test_boot_counter_increments_across_power_cycle(tmp_path: Path) -> None:
    """Each power-up increments the persisted boot counter before the first frame."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        node.power_cycle()
        frame = gw.wait(hello(2))
        node.power_cycle()
        gw.wait(hello(3))
        assert node.boot_count == 3
    assert frame.body[6] == 2 and frame.body[5] == 1


def test_retransmits_identical_bytes_until_acked(tmp_path: Path) -> None:
    """Without an ACK the node resends the same bytes and nothing newer; an ACK moves it on."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY, extra_config={"test_burst": 3}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}, acking=False) as gw:  # fmt: skip
        raw = gw.wait_raw(3)
        assert raw[0] == raw[1] == raw[2]  # the HELLO, three times
        gw.acking = True
        gw.send(m.ACK, {1: 1, 2: 0}, seq=0)
        gw.wait(lambda f: f.type == m.DATA and f.body[4][0][2] == 2)  # the last of the burst
    assert [f.seq for f in gw.accepted] == list(range(len(gw.accepted)))


def test_outage_spills_to_flash_and_survives_reboot(tmp_path: Path) -> None:
    """Frames queued during a long outage spill to flash, survive a controlled reboot, and
    all arrive afterwards, oldest first, none lost and none twice."""
    burst = 130
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"test_burst": burst}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}, acking=False) as gw:  # fmt: skip
        spool = node.flash_dir / "spool"
        wait_until(lambda: spool.exists() and len(list(spool.iterdir())) >= 2)
        gw.send(m.COMMAND, {1: 9, 2: "reboot"})  # RESULT queued behind the backlog, then reset
        node.wait_for(r"# rig: exit 86")
        gw.wait(hello(2))  # the new boot's HELLO goes first (unacked: resent until acked)
        gw.acking = True
        gw.wait(lambda f: f.type == m.RESULT and f.body[1] == 9, timeout=20)
        gw.wait(lambda f: f.boot == 2 and f.type == m.DATA and f.body[4][0][2] == burst - 1)
    boot1 = [f for f in gw.accepted if f.boot == 1]
    assert [f.seq for f in boot1] == list(range(len(boot1)))  # every seq once, in order
    data = [f.body[4][0][2] for f in boot1 if f.type == m.DATA]
    assert data == list(range(burst))
    assert any(f.type == m.RESULT for f in boot1)
    order = [(f.boot, f.seq) for f in gw.accepted]
    assert order.index((2, 0)) < order.index((1, 1)) < order.index((2, 1))
    assert not list(spool.iterdir())  # everything delivered: the segments are gone


def test_status_reports_uptime_heap_and_link_counters(tmp_path: Path) -> None:
    """STATUS every status_interval_s: uptime, free heap, link counters, app faults."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"status_interval_s": 1}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        first = gw.wait(lambda f: f.type == m.STATUS)
        second = gw.wait(lambda f: f.type == m.STATUS and f.seq > first.seq)
    assert 1 <= first.body[1] <= second.body[1] - 1
    assert 0 < second.body[2] < 256 * 1024  # gc.mem_free() of the emulated board's heap
    link = second.body[3]
    assert link["acked"] >= 2 and link["lost"] == 0 and link["rx_dropped"] == 0
    assert 4 not in second.body  # the test app reports no faults


def test_lossy_link_delivers_every_frame_once_in_order(tmp_path: Path) -> None:
    """Over a link that drops frames and flips bits (both ways), every frame still arrives,
    once and in order; an unplugged link delays them, a replug lets them through."""
    burst = 20
    with make_node(tmp_path, node_id=NODE_ID, key=KEY, seed=7,
                   extra_config={"test_burst": burst}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        node.link.unplug()
        gw.send(m.COMMAND, {1: 1, 2: "echo"}, boot=1)  # lost: no RESULT while unplugged
        wait_until(lambda: node.link.counters["unplugged_bytes"] > 0)
        node.link.replug()
        node.link.set_faults(drop=0.1, ber=2e-4)
        gw.wait(lambda f: f.type == m.DATA and f.body[4][0][2] == burst - 1, timeout=30)
    data = [f.body[4][0][2] for f in gw.accepted if f.type == m.DATA]
    assert data == list(range(burst))
    assert [f.seq for f in gw.accepted] == list(range(len(gw.accepted)))
    assert not any(f.type == m.RESULT for f in gw.accepted)
    counters = node.link.counters
    assert counters["dropped_frames"] > 0 and counters["flipped_bits"] > 0
    assert any(isinstance(e, Exception) for e in gw.errors)  # flipped bits: bad CRC
