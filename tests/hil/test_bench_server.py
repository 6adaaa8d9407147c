"""A real bench's HIL server: boards on the gateway's serial ports, their power relays on
GPIO (gpiozero's mock pins here), nodes learnt from their links, one token."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero import Device

from streetsense.gateway.config import load_config
from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.hil.environment import Environment
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.node import EmulatedNode
from streetsense.hil.plugin import FAST_SETTINGS, node_key
from streetsense.hil.remote import RemoteLink, RemoteSession

TOKEN = "a-bench-token"


async def test_real_bench_serves_ports_relays_and_learnt_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[hil] enabled`: the gateway serves its bench. The board on port bench-a is named by
    its node's frames; power.cycle drives the relay off then on; the link tap streams the
    node's frames."""
    (tmp_path / "token").write_text(TOKEN)
    key = node_key(3, 43)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")  # gpiozero's own mock pins
    with Mosquitto() as broker, Environment("traffic") as environment, EmulatedNode(
            "traffic", flash_dir=tmp_path / "flash", environment=environment, node_id=43,
            key=key, extra_config=FAST_SETTINGS) as node:
        files = GatewayProcess(  # only writes gateway.toml and registry.toml
            workdir=tmp_path / "gw", mqtt_url=broker.url,
            serial=[SerialEntry(node.port, "bench-a")],
            nodes=[NodeEntry(43, "HN-0043", "traffic", key)],
            settings={"hil": {"enabled": True, "listen": "127.0.0.1:0",
                              "token_file": str(tmp_path / "token"),
                              "relays": {"bench-a": {"power": {"pin": 17}}}}})
        gateway = Gateway(load_config(files.config_path))
        async with gateway.running():
            server = gateway.hil
            assert server is not None
            pins = Device.pin_factory
            session = RemoteSession(f"hil://127.0.0.1:{server.port}", TOKEN)
            try:
                await session.connect()
                link = RemoteLink(session, "bench-a")
                await session.call("link.tap", board="bench-a")
                await link.frames.wait(lambda f: f.direction == "up", timeout=15)
                info = await session.call("bench.info")
                assert [(b["name"], b["node"], b["node_id"], b["kind"], b["capabilities"])
                        for b in info["boards"]] == \
                    [("bench-a", "HN-0043", 43, "traffic", ["link", "power"])]
                assert info["mqtt_url"] == broker.url
                await session.call("power.cycle", board="bench-a")
                assert [state.state for state in pins.pin(17).states][-2:] == [False, True]
            finally:
                await session.close()
                files.close()
    assert gateway.hil is None  # closed with the gateway
    Device.pin_factory.close()
    Device.pin_factory = None
