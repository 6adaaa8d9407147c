"""Two gateways hear one BLE node ([ownership] enabled): one publishes and ACKs it, the other
stands by, commands are answered once, and when the owner is SIGKILLed the standby takes
the node over with nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streetsense.hil.ble.bleak_backend import gateway_settings
from streetsense.hil.ble.rig import BleRig
from streetsense.hil.broker import Mosquitto
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry
from streetsense.hil.observer import MqttObserver, Observed
from tests.ble.ble_harness import ProtocolNusNode

KEY = bytes(range(40, 72))
NODE = "streetsense/test/HN-0042"


def ble_gateway(tmp_path: Path, broker: Mosquitto, rig: BleRig, gateway_id: str,
                address: str) -> GatewayProcess:
    return GatewayProcess(
        workdir=tmp_path / gateway_id, mqtt_url=broker.url, site="test", gateway_id=gateway_id,
        nodes=[NodeEntry(42, "HN-0042", "air-quality", KEY, link="ble")],
        settings={"ble": {"enabled": True, **gateway_settings(rig.central_transport(), address),
                          "max_connections": 2, "scan_interval_s": 2.0},
                  "ownership": {"enabled": True, "claim_after_s": 0.5}})


def by(gateway: str) -> Callable[[Observed], bool]:
    return lambda m: m.json().get("gateway") == gateway


async def on_radio(rig: BleRig, function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` on the radio's loop (where the node lives)."""
    return await asyncio.to_thread(rig.run, function, *args)


async def send(rig: BleRig, node: ProtocolNusNode, readings: range) -> None:
    """The node sends a reading per value and each is ACKed (by whichever gateway owns it)."""
    for value in readings:
        await on_radio(rig, node.protocol.data, value)
    await asyncio.to_thread(rig.call, node.protocol.acked.wait(), 60)


async def test_one_owner_a_silent_standby_and_a_takeover(tmp_path: Path, rig: BleRig) -> None:
    """gw-a owns the node; gw-b connects too and hears it but neither ACKs, publishes nor
    answers commands; gw-b's clean stop marks nothing of the node; gw-a SIGKILLed, gw-b takes
    over through gw-a's Will: every reading published, by one gateway at a time."""

    async def make() -> ProtocolNusNode:
        return await ProtocolNusNode(rig.radio, 42, KEY).start()

    node = rig.call(make())
    with Mosquitto() as broker:
        gw_a, gw_b = (ble_gateway(tmp_path, broker, rig, name, address) for name, address in
                      (("gw-a", "C0:00:00:00:0A:01"), ("gw-b", "C0:00:00:00:0B:01")))
        async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer:
            try:
                gw_a.start()
                await asyncio.to_thread(rig.call, node.wait_listeners(1), 40)
                await on_radio(rig, node.protocol.hello)
                await send(rig, node, range(300, 304))
                await observer.expect(f"{NODE}/state", by("gw-a"), timeout=20)
                gw_b.start()
                await asyncio.to_thread(rig.call, node.wait_listeners(2), 40)
                await send(rig, node, range(304, 309))
                await observer.expect(f"{NODE}/data", lambda m: m.json()["seq"] == 9, timeout=20)
                health_b = await observer.expect(
                    f"{gw_b.gateway_topic}/health",
                    lambda m: m.json()["session"]["standby_frames"] > 0, timeout=20)
                assert health_b.json()["session"]["acks_sent"] == 0
                acks = await on_radio(rig, dict, node.protocol.acks)
                assert len(acks) == 1  # from gw-a's connection only
                await observer.publish(f"{NODE}/cmd/time", {"id": "once"})
                await observer.expect(f"{NODE}/cmd/time/result", timeout=20)
                mark = observer.mark()
                await observer.expect(f"{gw_b.gateway_topic}/health", since=mark, timeout=20)
                await observer.expect(f"{gw_a.gateway_topic}/health", since=mark, timeout=20)
                assert len(observer.messages(f"{NODE}/cmd/time/result")) == 1
                mark = observer.mark()
                assert gw_b.stop() == 0  # a standby's clean stop marks none of the node
                gw_b.start()
                await asyncio.to_thread(rig.call, node.wait_listeners(2), 40)
                assert not [m for m in observer.messages(f"{NODE}/state", since=mark)
                            if m.json()["gateway"] == "gw-b" or m.json()["state"] != "online"]
                gw_a.kill()
                await send(rig, node, range(309, 314))
                claim = await observer.expect(f"{NODE}/state", by("gw-b"), timeout=30)
                assert claim.json()["state"] == "online"
                await observer.expect(f"{NODE}/data", lambda m: m.json()["seq"] == 14,
                                      timeout=30)
            finally:
                gw_a.close()
                gw_b.close()
                rig.call(node.stop())
    data = observer.messages(f"{NODE}/data")
    seqs = [m.json()["seq"] for m in data]
    assert sorted(set(seqs)) == list(range(1, 15))
    assert len(seqs) - len(set(seqs)) <= 1  # the reading in flight when gw-a died, at most
    owners = [m.json()["gateway"] for m in data]
    assert owners == sorted(owners)  # gw-a's readings, then gw-b's: never interleaved
