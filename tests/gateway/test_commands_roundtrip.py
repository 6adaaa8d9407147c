"""Commands: MQTT request -> signed downlink -> node RESULT -> result topic with correlation."""

from __future__ import annotations

from pathlib import Path

from streetsense.hil.broker import Mosquitto
from streetsense.protocol.messages import COMMAND, CONFIG, RESULT, TIME
from tests.gateway.command_client import v5_client
from tests.support.gateway_rig import gateway_with_node, node_info, operator_key, topic


async def test_commands_config_round_trip_with_correlation_and_resend(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """config -> signed CONFIG (next downlink seq); no RESULT -> resent with the same request;
    RESULT -> result topic with the request's correlation data and id."""
    async with v5_client(mosquitto.url) as app, \
            gateway_with_node(tmp_path, mosquitto.url, boot=5, observe=False) as rig:
        gateway, node = rig.gateway, rig.node
        assert gateway.commands is not None
        app.key = operator_key(gateway.config)
        gateway.commands.resend_after_s = 0.3
        await node.send(node.hello())
        await node.wait_for(lambda f: f.type == TIME)
        await rig.publisher.connected.wait()
        await app.request("HN-0042", "config", {"settings": {"report_interval_s": 30},
                                                "id": "req-7"}, correlation=b"corr-1")
        first = await node.wait_for(lambda f: f.type == CONFIG)
        # The node "loses" the first CONFIG: the gateway resends it in a new frame.
        second = await node.wait_for(lambda f: f.type == CONFIG and f.seq > first.seq)
        assert first.verified and first.boot == 5 and first.seq == 2
        assert second.body == first.body == {1: first.body[1], 2: {"report_interval_s": 30}}
        await node.send(node.frame(RESULT, {1: first.body[1], 2: 0,
                                            4: {"report_interval_s": 30}}))
        result_topic, result, correlation = await app.result()
        assert result_topic == topic("HN-0042", "cmd/config/result")
        assert correlation == b"corr-1"
        assert result["id"] == "req-7" and result["code"] == "OK"
        assert result["data"] == {"report_interval_s": 30}
        assert gateway.commands.sent >= 2 and gateway.commands.timeouts == 0


async def test_commands_reboot_timeout_and_unknown_node(tmp_path: Path,
                                                       mosquitto: Mosquitto) -> None:
    """A COMMAND never answered ends in a TIMEOUT result; a node never heard gets
    NODE_UNAVAILABLE from the gateway itself."""
    async with v5_client(mosquitto.url) as app, \
            gateway_with_node(tmp_path, mosquitto.url, observe=False,
                              nodes=[node_info(42), node_info(43)]) as rig:
        gateway, node = rig.gateway, rig.node
        assert gateway.commands is not None
        app.key = operator_key(gateway.config)
        gateway.commands.resend_after_s = 0.2
        await node.send(node.hello())
        await rig.publisher.connected.wait()
        await app.request("HN-0043", "identify", {"id": 1})
        result_topic, result, _ = await app.result()
        assert result_topic == topic("HN-0043", "cmd/identify/result")
        assert result["code"] == "NODE_UNAVAILABLE" and result["id"] == "1"
        await app.request("HN-0042", "reboot", {"args": {"delay_s": 1}})
        result_topic, result, _ = await app.result()
        assert result["code"] == "TIMEOUT"
        commands = [f for f in node.downlinks if f.type == COMMAND]
        assert len(commands) == gateway.commands.attempts
        assert {f.body[2] for f in commands} == {"reboot"}
        assert all(f.body[3] == {"delay_s": 1} for f in commands)
        assert len({f.body[1] for f in commands}) == 1
        assert [f.seq for f in commands] == sorted({f.seq for f in commands})
