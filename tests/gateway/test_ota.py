"""Firmware updates through the gateway (issue 22): cmd/ota, the bundle topic, progress on
``<node>/ota``, and a gateway SIGKILLed mid-transfer that resumes from the node's offset."""

from __future__ import annotations

from pathlib import Path

import pytest

from streetsense.hil.broker import Mosquitto
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.keys import numbered_key as node_key
from streetsense.hil.node import EmulatedNode
from streetsense.hil.observer import MqttObserver
from tests.firmware.ota_harness import make_bundle

pytestmark = pytest.mark.micropython

SITE = "test"


def ota_topic(node: str) -> str:
    return f"streetsense/{SITE}/{node}/ota"


async def test_cmd_ota_updates_a_node_through_a_gateway_sigkill(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A bundle published on the site's bundle topic and a signed cmd/ota: the gateway sends
    it in chunks, publishes progress, is SIGKILLed after a third and restarted on the same
    journal, resumes from the node's offset (never from 0), and the node comes back with the
    new version, confirmed; a cmd/ota for an unknown bundle is refused with the reason."""
    bundle = make_bundle(tmp_path, "0.2.0")
    sha = bundle.sha256.hex()
    node = EmulatedNode("air-quality", flash_dir=tmp_path / "flash", node_id=42,
                        key=node_key(42), extra_config={"report_interval_s": 5})
    with node:
        gateway = GatewayProcess(
            workdir=tmp_path / "gw", mqtt_url=mosquitto.url, site=SITE,
            serial=[SerialEntry(path=node.port, name="tty0")],
            nodes=[NodeEntry(id=42, name="HN-0042", kind="air-quality", key=node_key(42))])
        async with MqttObserver(mosquitto.url, topics=["streetsense/#"]) as observer:
            try:
                await _update(gateway, observer, bundle.image, sha, len(bundle.image))
            finally:
                gateway.close()
    progress = [m.json() for m in observer.messages(ota_topic("HN-0042"))]
    receiving = [p["bytes"] for p in progress if p["state"] == "receiving"]
    restart = receiving.index(min(receiving[1:]), 1)  # where the restarted gateway began
    assert min(receiving[restart:]) > 0  # resumed, not from the start
    assert progress[-1]["state"] == "confirmed" and progress[-1]["version"] == "0.2.0"
    assert gateway.starts == 2


async def _update(gateway: GatewayProcess, observer: MqttObserver, image: bytes, sha: str,
                  total: int) -> None:
    await _start(gateway)
    await observer.expect(f"streetsense/{SITE}/HN-0042/state",
                          lambda m: "birth" in m.json(), timeout=30)
    missing = await _command(gateway, observer, {"id": "ota-0", "sha256": "ab" * 32})
    assert missing["code"] == "NO_BUNDLE" and "_bundles" in missing["message"]
    await observer.publish(f"streetsense/{SITE}/_bundles/{sha}", image)
    started = await _command(gateway, observer, {"id": "ota-1", "sha256": sha})
    assert started["code"] == "OK", started
    await observer.expect(ota_topic("HN-0042"),
                          lambda m: m.json()["bytes"] > total // 3, timeout=60)
    gateway.kill()
    await _start(gateway)
    await observer.expect(ota_topic("HN-0042"),
                          lambda m: m.json()["state"] == "confirmed", timeout=90)
    await observer.expect(f"streetsense/{SITE}/HN-0042/state",
                          lambda m: m.json().get("birth", {}).get("firmware") == "0.2.0",
                          timeout=30)


async def _start(gateway: GatewayProcess) -> None:
    import asyncio

    await asyncio.to_thread(gateway.start)


async def _command(gateway: GatewayProcess, observer: MqttObserver,
                   request: dict[str, object]) -> dict[str, object]:
    topic, payload = gateway.sign_command("HN-0042", "ota", request)
    mark = observer.mark()
    await observer.publish(topic, payload)
    result = await observer.expect(f"{topic}/result",
                                   lambda m: m.json().get("id") == request["id"],
                                   timeout=20, since=mark)
    answer: dict[str, object] = result.json()
    return answer
