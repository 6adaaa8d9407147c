"""Commands with authority: only fresh commands signed with the site's operator key reach a
node, within limits and a rate; everything else is answered by the gateway, never signed."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from streetsense.gateway.command_auth import sign
from streetsense.hil.broker import Mosquitto, TcpProxy
from streetsense.protocol.messages import COMMAND, CONFIG
from tests.gateway.command_client import v5_client
from tests.support.gateway_rig import (
    gateway_with_node,
    node_info,
    operator_key,
    topic,
    write_registry,
)


async def test_commands_unsigned_forged_stale_replayed_and_retained_are_refused(
        tmp_path: Path, mosquitto: Mosquitto, mosquitto_proxy: TcpProxy) -> None:
    """An anonymous factory_reset, a forged mac, a command signed a minute ago, a command
    sent again as it was, a retained one delivered again after a reconnect: each answered by
    the gateway (UNAUTHORIZED, STALE, REPLAYED); only the good ones reach the node, once."""
    async with v5_client(mosquitto.url) as app, \
            gateway_with_node(tmp_path, mosquitto_proxy.url, observe=False) as rig:
        node, publisher, commands = rig.node, rig.publisher, rig.gateway.commands
        assert commands is not None
        commands.resend_after_s = 60.0  # the node never answers here: no resends meanwhile
        app.key = operator_key(rig.gateway.config)
        await node.send(node.hello())
        await publisher.connected.wait()
        await app.request("HN-0042", "factory_reset", {"id": "anon", "confirm": "HN-0042"},
                          signed=False)
        where = topic("HN-0042", "cmd/reboot")
        forged = sign(secrets.token_bytes(32), where, {"id": "forged"})
        await app.client.publish(where, json.dumps(forged), qos=1)
        await app.request("HN-0042", "reboot", {"id": "old"}, signed_at=time.time() - 60)
        good = await app.request("HN-0042", "identify", {"id": "good"})
        await node.wait_for(lambda f: f.type == COMMAND)
        await app.client.publish(topic("HN-0042", "cmd/identify"), json.dumps(good), qos=1)
        await app.request("HN-0042", "reboot", {"id": "kept"}, retain=True)
        await node.wait_count(lambda f: f.type == COMMAND, 2)  # run once, when it was sent
        codes = {i: (await app.answer(i))["code"] for i in ("anon", "forged", "old", "good")}
        mosquitto_proxy.reset_all()  # the gateway subscribes again: the retained copy comes back
        kept = await app.answer("kept", timeout=15)
    assert codes == {"anon": "UNAUTHORIZED", "forged": "UNAUTHORIZED", "old": "STALE",
                     "good": "REPLAYED"}
    assert kept["code"] == "REPLAYED" and kept["from"] == "gateway"
    assert [f.body[2] for f in node.downlinks if f.type == COMMAND] == ["identify", "reboot"]


async def test_commands_confirmation_limits_rate_and_hostile_json(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """factory_reset and identity settings need "confirm" naming the node; a 2**40 s interval,
    a 999,520 ppm offset and a 10**6 s reboot delay are refused at the gateway (BAD_ARGS);
    JSON 200,000 deep (or 5,000 deep within the size limit) gets BAD_REQUEST; beyond the
    per-node rate a command gets RATE_LIMITED. Only the acceptable ones are signed."""
    async with v5_client(mosquitto.url) as app, \
            gateway_with_node(tmp_path, mosquitto.url, observe=False) as rig:
        node, commands = rig.node, rig.gateway.commands
        assert commands is not None
        commands.resend_after_s = 60.0
        commands.per_node_per_minute = 3
        app.key = operator_key(rig.gateway.config)
        await node.send(node.hello())
        await rig.publisher.connected.wait()
        sent = {
            "reset": ("factory_reset", {}),
            "rekey": ("config", {"settings": {"key": "00" * 32}}),
            "reset-ok": ("factory_reset", {"confirm": "HN-0042"}),
            "interval": ("config", {"settings": {"report_interval_s": 2**40}}),
            "offset": ("config", {"settings": {"calibration": {"co2": 999_520}}}),
            "delay": ("reboot", {"args": {"delay_s": 10**6}}),
            "fine": ("config", {"settings": {"report_interval_s": 30}}),
        }
        for request_id, (name, payload) in sent.items():
            await app.request("HN-0042", name, {"id": request_id, **payload})
        codes = {i: (await app.answer(i))["code"] for i in sent if i not in ("reset-ok", "fine")}
        await app.publish_raw("HN-0042", "identify", b"[" * 200_000)
        await app.publish_raw("HN-0042", "identify", b"[" * 5_000)
        await node.wait_count(lambda f: f.type in (COMMAND, CONFIG), 2)
        for i in range(3):
            await app.request("HN-0042", "identify", {"id": f"burst-{i}"})
        burst = [(await app.answer(f"burst-{i}"))["code"] for i in range(1, 3)]
        await node.wait_count(lambda f: f.type in (COMMAND, CONFIG), 3)
        bad = [a for a in app.answers if a["code"] == "BAD_REQUEST"]
    assert codes == {"reset": "CONFIRM_REQUIRED", "rekey": "CONFIRM_REQUIRED",
                     "interval": "BAD_ARGS", "offset": "BAD_ARGS", "delay": "BAD_ARGS"}
    assert burst == ["RATE_LIMITED", "RATE_LIMITED"]
    assert sorted(a["message"].split(":")[0] for a in bad) == ["200000 bytes", "nested too deeply"]
    signed = [(f.type, f.body[2]) for f in node.downlinks if f.type in (COMMAND, CONFIG)]
    assert signed == [(COMMAND, "factory_reset"), (CONFIG, {"report_interval_s": 30}),
                      (COMMAND, "identify")]


async def test_commands_nothing_is_signed_for_a_disabled_or_removed_node(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Once the registry disables a node, its pending command stops with NODE_UNAVAILABLE,
    new ones are refused, and no downlink (not even TIME) is signed for it; removed, the
    same, the answer saying so."""
    async with v5_client(mosquitto.url) as app, \
            gateway_with_node(tmp_path, mosquitto.url, observe=False) as rig:
        gateway, node = rig.gateway, rig.node
        assert gateway.commands is not None and gateway.session is not None
        gateway.commands.resend_after_s = 0.3
        app.key = operator_key(gateway.config)
        await node.send(node.hello())
        await rig.publisher.connected.wait()
        await app.request("HN-0042", "identify", {"id": "pending"})
        await node.wait_for(lambda f: f.type == COMMAND)
        write_registry(gateway.config.registry_path, [node_info(42, enabled=False)])
        assert gateway.registry.reload_if_changed()
        stats = gateway.session.stats
        signed_before = stats.downlinks_sent + stats.acks_sent
        stopped = await app.answer("pending")
        await app.request("HN-0042", "reboot", {"id": "disabled"})
        disabled = await app.answer("disabled")
        state = gateway.session.nodes[42]
        await gateway.session.send_time(state)
        write_registry(gateway.config.registry_path, [node_info(43)])
        assert gateway.registry.reload_if_changed()
        await app.request("HN-0042", "reboot", {"id": "removed"})
        removed = await app.answer("removed")
        await gateway.session.send_time(state)
    assert stopped["code"] == "NODE_UNAVAILABLE" and "disabled" in stopped["message"]
    assert disabled["code"] == "NODE_UNAVAILABLE" and "disabled" in disabled["message"]
    assert removed["code"] == "NODE_UNAVAILABLE" and "not in the registry" in removed["message"]
    assert stats.downlinks_sent + stats.acks_sent == signed_before
