"""An emulated node on BLE -> bleak (bumble backend) -> gateway -> mosquitto, with real parts."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streetsense.gateway.config import (
    BleSection,
    GatewayConfig,
    GatewaySection,
    HttpSection,
    JournalSection,
    MqttSection,
    SerialPort,
)
from streetsense.gateway.service import Gateway
from streetsense.gateway.transports.ble import BleTransport
from streetsense.hil.artefacts import FrameLog
from streetsense.hil.ble.bleak_backend import gateway_settings
from streetsense.hil.ble.peripheral import IRQ_GATTS_WRITE
from streetsense.hil.ble.radio import VirtualRadio, static_address
from streetsense.hil.ble.rig import BleLinkDriver, BleRig, board_address
from streetsense.hil.broker import Mosquitto
from streetsense.hil.environment import FAST_SENSORS, Environment
from streetsense.hil.node import EmulatedNode
from streetsense.hil.observer import MqttObserver
from streetsense.hil.pty import PtyPair
from streetsense.protocol import FLAG_ACK_REQ, Deframer, Frame
from streetsense.protocol.messages import ACK, DATA, HELLO
from tests.ble.ble_harness import NusNode, StartNode

pytestmark = pytest.mark.micropython

KEY = bytes(range(32))
UNIQUE_ID = "240ac4b1e042"
TOPIC = "streetsense/test/HN-0042/data"
OUTAGE_S = 4.0  # out of range for two report intervals


class BleBoard:
    """The environment's board entries plus the radio's: what EmulatedNode writes to board.json."""

    def __init__(self, environment: Environment, rig: BleRig) -> None:
        self.environment = environment
        self.rig = rig

    def board_entries(self) -> dict[str, Any]:
        return {**self.environment.board_entries(), **self.rig.board_entries(UNIQUE_ID)}


def gateway_config(tmp_path: Path, broker_url: str, hci: str) -> GatewayConfig:
    registry = tmp_path / "registry.toml"
    registry.write_text(f'[[node]]\nid = 42\nname = "HN-0042"\nkind = "air-quality"\n'
                        f'key = "{KEY.hex()}"\nlink = "ble"\nlocation = "pole 42"\n')  # fmt: skip
    return GatewayConfig(
        gateway=GatewaySection(id="gw-test", site="test", data_dir=tmp_path / "data"),
        mqtt=MqttSection(url=broker_url, client_id="streetsense-gw-test", keepalive_s=2),
        registry_path=registry,
        journal=JournalSection(path=tmp_path / "data" / "journal.sqlite"),
        # A short scan interval: after a loss the gateway scans one window (5 s); a node back
        # only after that window (a loaded machine stretches the outage) waits for the next.
        ble=BleSection(enabled=True, **gateway_settings(hci), max_connections=2,
                       scan_interval_s=6.0),
        http=HttpSection(listen=None),
    )


def sent_data(frames: FrameLog) -> list[tuple[int, int]]:
    """(boot, seq) of each distinct DATA frame node 42 notified, in order."""
    seen: dict[tuple[int, int], None] = {}
    for frame in frames.frames:
        raw = frame.raw
        if frame.direction == "up" and raw is not None and len(raw) > 15 and raw[1] == DATA:
            seen[(int.from_bytes(raw[7:11], "big"), int.from_bytes(raw[11:15], "big"))] = None
    return list(seen)


async def test_ble_node_readings_reach_mqtt_and_an_outage_loses_nothing(
    tmp_path: Path, rig: BleRig, mp_node: StartNode
) -> None:
    """BLE readings reach MQTT; an outage loses no DATA, none twice; strangers are ignored."""
    link = BleLinkDriver(rig, UNIQUE_ID)
    frames = link.frames
    stranger = await mp_node(77)  # advertises NUS, not in the registry
    with Mosquitto() as broker, \
            Environment("air-quality", sensor_speedup=FAST_SENSORS) as environment:
        environment.set_air(pm1_0=20.0, pm2_5=31.2, pm10=48.0, co2=650, temperature=29.5,
                            humidity=70.0, pressure=1008.0)  # fmt: skip
        node = EmulatedNode("air-quality", environment=BleBoard(environment, rig), node_id=42,
                            key=KEY, seed=3, extra_config={
                                "link": "ble", "report_interval_s": 2, "sample_interval_s": 1,
                                "pm_warmup_s": 1})  # fmt: skip
        config = gateway_config(tmp_path, broker.url, rig.central_transport())
        try:
            async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer, \
                    Gateway(config, derivers=[]).running() as gateway:  # fmt: skip
                node.start()
                first = (await observer.expect(TOPIC, timeout=30)).json()
                assert first["readings"]["pm2_5"]["value"] == pytest.approx(31.2, abs=0.5)
                assert first["readings"]["co2"]["value"] == pytest.approx(650, abs=5)
                ble = next(t for t in gateway.transports if isinstance(t, BleTransport))
                assert ble.stats()["ble:HN-0042"]["rssi"] == -50
                assert b'streetsense_gateway_node_rssi_dbm{node="HN-0042"} -50.0' in \
                    gateway.metrics.exposition()
                before = len(sent_data(frames))
                await link.unplug()  # out of range
                await asyncio.sleep(OUTAGE_S)  # the fault's duration itself, not a sync wait
                await link.replug()
                # what the node queued meanwhile, and more, comes through after the outage
                await frames.wait(lambda _: len(sent_data(frames)) >= before + 3, timeout=30)
                sent = sent_data(frames)
                await observer.expect(TOPIC, lambda m: (m.json()["boot"], m.json()["seq"])
                                      == sent[-1], timeout=20)  # fmt: skip
                published = [(m.json()["boot"], m.json()["seq"]) for m in observer.messages(TOPIC)]
                assert [p for p in published if p <= sent[-1]] == sent  # once each, in order
                stats = ble.stats()["ble:HN-0042"]
                assert (stats["connects"], stats["losses"]) == (2, 1)
                assert board_address(stranger.unique_id).to_string(False) in ble.ignored
                assert set(ble.stats()) == {"ble:HN-0042"}
                assert (await link.counters())["outages"] == 1
        finally:
            node.close()


async def test_node_on_serial_and_ble_published_once(tmp_path: Path, radio: VirtualRadio) -> None:
    """The same DATA frame over BLE and over serial: one `data` message; both links get ACKs."""
    node = await NusNode(radio, 42).start()
    pty = PtyPair()
    acks = FrameLog()
    loop = asyncio.get_running_loop()
    loop.add_reader(pty.master, lambda: acks.feed("down", os.read(pty.master, 4096)))
    hello = Frame(HELLO, 42, 9, 0, {1: "air-quality", 2: "0.1.0", 3: [1, 0], 4: ["pms5003"],
                                    5: 1, 6: 9, 8: 1500}, FLAG_ACK_REQ).encode(KEY)  # fmt: skip
    data = [Frame(DATA, 42, 9, seq, {1: 1_764_115_200 + seq, 2: 0, 3: 60, 4: [[2, -1, 312]]},
                  FLAG_ACK_REQ).encode(KEY) for seq in (1, 2)]  # fmt: skip
    try:
        with Mosquitto() as broker:
            config = gateway_config(tmp_path, broker.url, await radio.serve_hci(
                static_address(b"\xc0\0\0\0\0\x05")))  # fmt: skip
            config = replace(config, serial=(SerialPort(path=pty.path, name="pole"),))
            async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer, \
                    Gateway(config, derivers=[]).running():  # fmt: skip
                await node.wait_event(IRQ_GATTS_WRITE)  # the gateway subscribed over BLE
                await node.send(hello + data[0])
                await observer.expect(TOPIC, timeout=10)
                await node.wait_event(IRQ_GATTS_WRITE)  # the ACK, over BLE
                assert any(not isinstance(f, Exception) and f[1] == ACK
                           for f in Deframer().feed(bytes(node.written)))  # fmt: skip
                pty.write(data[0] + data[1])  # a retransmission, then a new frame
                await observer.expect(TOPIC, lambda m: m.json()["seq"] == 2, timeout=10)
                await acks.wait(lambda f: f.raw is not None and f.raw[1] == ACK, timeout=10)
        assert [m.json()["seq"] for m in observer.messages(TOPIC)] == [1, 2]
    finally:
        loop.remove_reader(pty.master)
        pty.close()
