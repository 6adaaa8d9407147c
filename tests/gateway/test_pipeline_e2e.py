"""End to end through real parts: fake node on a PTY -> gateway -> mosquitto -> subscriber."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streetsense.gateway.config import HomeAssistantSection
from streetsense.gateway.journal import Journal
from streetsense.gateway.payloads import iso_utc
from streetsense.gateway.registry import NodeInfo
from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.hil.observer import MqttObserver, Observed
from streetsense.hil.pty import PtyPort
from streetsense.protocol.messages import TIME
from tests.support.fake_node import PtyNode
from tests.support.gateway_rig import gateway_with_node, links_up, make_config, node_info, topic


async def test_pipeline_reading_reaches_mqtt_with_units_and_meta(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """HELLO gives a retained online state with birth info and a TIME; DATA becomes `data` JSON."""
    async with gateway_with_node(tmp_path, mosquitto.url, boot=7, port_name="ttyNODE42") as rig:
        observer, node = rig.observer, rig.node
        assert rig.gateway.publisher is not None
        await node.send(node.hello(uptime_ms=2000))
        state = await observer.expect(topic("HN-0042", "state"),
                                      lambda m: m.json()["state"] == "online"
                                      and "birth" in m.json())
        birth = state.json()["birth"]
        assert birth["boot"] == 7 and birth["firmware"] == "0.1.0"
        assert birth["sensors"] == ["pms5003", "scd41"]
        assert birth["kind"] == "streetsense-node" and "device" not in birth  # HELLO kind
        time_frame = await node.wait_for(lambda f: f.type == TIME)
        assert time_frame.boot == 7 and time_frame.seq == 1
        assert abs(time_frame.body[1] / 1000 - time.time()) < 5
        now = int(time.time())
        seq = await node.send(node.data(312, ts=now))
        data = (await observer.expect(topic("HN-0042", "data"))).json()
        assert data["node"] == "HN-0042" and data["node_id"] == 42
        assert data["kind"] == "air-quality" and data["site"] == "test"
        assert data["gateway"] == "gw-test"
        assert (data["boot"], data["seq"]) == (7, seq)
        assert data["ts"] == iso_utc(now) and data["clock"] == "utc"
        assert data["interval_s"] == 60 and data["delayed"] is False
        assert data["readings"]["pm2_5"] == {"value": 31.2, "unit": "ug/m3", "min": 30.7,
                                             "max": 31.7, "count": 12}
        assert data["readings"]["co2"] == {"value": 415, "unit": "ppm"}
        assert data["received_at"].endswith("Z")
        async with MqttObserver(mosquitto.url, topics=["streetsense/#"]) as late:
            # A new subscriber gets the retained states: the node's and the gateway's own.
            node_state = await late.expect(topic("HN-0042", "state"))
            assert node_state.retain and node_state.json()["birth"]["boot"] == 7
            gateway_state = await late.expect("streetsense/test/_gateway/gw-test/state")
            assert gateway_state.retain and gateway_state.json()["state"] == "online"


class CountingDeriver:
    """A derived-value hook: counts a node's readings in the journal's state store."""

    name = "count"

    def on_data(self, node: NodeInfo, message: dict[str, Any],
                journal: Journal) -> list[tuple[str, dict[str, Any]]]:
        state = journal.load_state(f"count/{node.name}") or {"n": 0}
        state["n"] += 1
        journal.save_state(f"count/{node.name}", state)
        return [("count", {"node": node.name, "n": state["n"], "seq": message["seq"]})]


def _count_is(n: int) -> Callable[[Observed], bool]:
    return lambda message: bool(message.json()["n"] == n)


async def test_pipeline_derivers_discovery_and_health(tmp_path: Path,
                                                      mosquitto: Mosquitto) -> None:
    """A deriver's output is published on `<node>/<subtopic>` with state kept in the journal
    across a restart; HA discovery configs are retained; health is published."""
    port = PtyPort(tmp_path / "tty0")
    node = PtyNode(port, 42)
    config = make_config(tmp_path, mosquitto.url, [port.path], [node_info(42)],
                         homeassistant=HomeAssistantSection(discovery=True))
    now = int(time.time())
    async with MqttObserver(mosquitto.url, topics=["#"]) as observer:
        for run in range(2):
            async with Gateway(config, derivers=[CountingDeriver()]).running() as gateway:
                await links_up(gateway, port)
                node.attach()
                await node.send(node.data(300 + run, ts=now))
                count = await observer.expect(topic("HN-0042", "count"), _count_is(run + 1))
                assert count.json()["seq"] == run
                health = await observer.expect("streetsense/test/_gateway/gw-test/health")
                assert health.json()["status"] in ("ok", "degraded")
            node.detach()
        configs = observer.messages("homeassistant/sensor/+/config")
        assert {json.loads(m.payload)["value_template"].split("'")[1] for m in configs} == \
            {"pm2_5", "co2"}
    port.close()
