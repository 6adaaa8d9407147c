"""The broker ACL of docs/gateway.md, run: the gateway, an operator with `streetsense command`
and `streetsense bridge`, a read-only consumer and an anonymous client, each allowed exactly
what the ACL says."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import aiomqtt
import pytest

from streetsense.gateway.command_auth import load_operator_key, make_operator_key, sign
from streetsense.gateway.config import GatewaySection
from streetsense.hil.broker import Mosquitto
from streetsense.protocol.messages import COMMAND, RESULT
from tests.support.gateway_rig import gateway_with_node, make_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
PASSWORDS = {"gw-01": "gw-secret", "operator-1": "op-secret", "dashboard": "dash-secret"}
SITE = "hanoi"


def _documented_acl() -> str:
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", DOCS.read_text(), re.S | re.M)
    (acl,) = [b for b in blocks if b.startswith("# mosquitto ACL for StreetSense")]
    return acl


@pytest.fixture
def acl_broker(tmp_path: Path) -> Mosquitto:
    """mosquitto with the documented ACL and a password for each of its users."""
    acl = tmp_path / "streetsense.acl"
    acl.write_text(_documented_acl())
    passwords = tmp_path / "streetsense.passwd"
    for index, (user, password) in enumerate(PASSWORDS.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if index == 0 else []),
                        str(passwords), user, password], check=True, capture_output=True)
    # "user root": mosquitto would drop to its own user, which cannot read pytest's tmp dir.
    with Mosquitto(extra_config=["user root", "allow_anonymous false",
                                 f"password_file {passwords}", f"acl_file {acl}"]) as broker:
        yield broker


@asynccontextmanager
async def _client(broker: Mosquitto, user: str | None) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port, username=user,
                              password=PASSWORDS.get(user or "")) as client:
        yield client


async def _cli(tmp_path: Path, broker: Mosquitto, *args: str) -> tuple[int, str, str]:
    """``streetsense <args>`` as operator-1, in a subprocess: (status, stdout, stderr)."""
    password = tmp_path / "operator-password"
    password.write_text(PASSWORDS["operator-1"] + "\n")
    env = {**os.environ, "STREETSENSE_MQTT_URL": broker.url, "STREETSENSE_SITE": SITE,
           "STREETSENSE_MQTT_USERNAME": "operator-1",
           "STREETSENSE_MQTT_PASSWORD_FILE": str(password)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streetsense.tools.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, out.decode(), err.decode()


async def test_gateway_operator_and_consumer_under_the_documented_acl(
        tmp_path: Path, acl_broker: Mosquitto) -> None:
    """Under the documented ACL the gateway publishes and takes commands; an operator's
    `streetsense command` gets the node's result (exit 0), a wrong key gets UNAUTHORIZED
    (exit 1); the consumer's command, the operator's fake reading and an anonymous client
    go nowhere."""
    base = make_config(tmp_path, acl_broker.url, [], [])
    assert base.commands.operator_key_file is not None
    key_file = base.commands.operator_key_file
    other_key = tmp_path / "other.key"
    make_operator_key(other_key)
    data_topic = f"streetsense/{SITE}/HN-0042/data"
    with pytest.raises(aiomqtt.MqttError):
        async with _client(acl_broker, None):
            pass
    async with _client(acl_broker, "dashboard") as dashboard, \
            gateway_with_node(tmp_path, acl_broker.url, observe=False,
                              gateway=GatewaySection(id="gw-01", site=SITE,
                                                     data_dir=tmp_path / "data"),
                              mqtt=replace(base.mqtt, username="gw-01",
                                           password=PASSWORDS["gw-01"])) as rig:
        await dashboard.subscribe(f"streetsense/{SITE}/#", qos=1)
        seen: list[tuple[str, bytes]] = []
        got_data = asyncio.Event()
        collector = asyncio.create_task(_collect(dashboard, seen, data_topic, got_data))
        node, commands = rig.node, rig.gateway.commands
        assert commands is not None
        await node.send(node.hello())
        await node.send(node.data(300, ts=int(time.time())))
        await asyncio.wait_for(got_data.wait(), 10)
        where = f"streetsense/{SITE}/HN-0042/cmd/reboot"
        await dashboard.publish(where, json.dumps(sign(load_operator_key(key_file), where, {})),
                                qos=1)
        async with _client(acl_broker, "operator-1") as operator:
            await operator.publish(data_topic, b'{"fake": true}', qos=1)
        cli = asyncio.create_task(_cli(tmp_path, acl_broker, "command", "HN-0042", "identify",
                                       "seconds=2", "--key-file", str(key_file)))
        request = await node.wait_for(lambda f: f.type == COMMAND, timeout=20)
        await node.send(node.frame(RESULT, {1: request.body[1], 2: 0}))
        status, out, err = await cli
        refused = await _cli(tmp_path, acl_broker, "command", "HN-0042", "identify",
                             "--key-file", str(other_key))
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())  # left as it is
        bridged = await _cli(tmp_path, acl_broker, "bridge", "log_level", f"level={level}",
                             "--gateway", "gw-01", "--key-file", str(key_file))
        received = commands.received
        collector.cancel()
    assert status == 0, err
    assert json.loads(out)["code"] == "OK"
    assert refused[0] == 1 and "UNAUTHORIZED: bad signature" in refused[2]
    assert bridged[0] == 0 and json.loads(bridged[1])["code"] == "OK", bridged[2]
    assert received == 2  # the CLI's two; the consumer's never reached the gateway
    assert [f.body[2] for f in node.downlinks if f.type == COMMAND] == ["identify"]
    results = [t for t, _ in seen if t.endswith("/cmd/identify/result")]
    assert len(results) == 2 and not [p for _, p in seen if b"fake" in p]


async def _collect(client: aiomqtt.Client, seen: list[tuple[str, bytes]], data_topic: str,
                   got_data: asyncio.Event) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes)
        seen.append((message.topic.value, message.payload))
        if message.topic.value == data_topic:
            got_data.set()
