"""The bridge API over MQTT: a retained node list, and signed requests to rename or remove a
node and to set the log level, answered on .../response/<action>."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from streetsense.gateway.command_auth import load_operator_key, make_operator_key, sign
from streetsense.hil.broker import Mosquitto
from streetsense.hil.observer import Observed, parse_mqtt_url
from tests.support.gateway_rig import (
    GatewayRig,
    LogWaiter,
    gateway_with_node,
    node_info,
    operator_key,
    topic,
    write_registry,
)

BRIDGE = "streetsense/test/_gateway/gw-test"


@pytest.fixture
def root_level() -> Iterator[None]:
    """The root logger's level is put back after the test (log_level changes it)."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


async def ask(rig: GatewayRig, action: str, request: dict[str, Any], *,
              signed: bool = True) -> dict[str, Any]:
    """Publish a request (signed with the site's key unless told otherwise) and return the
    gateway's answer to it."""
    where = f"{BRIDGE}/request/{action}"
    request = {"id": secrets.token_hex(4), **request}
    since = rig.observer.mark()
    payload = sign(operator_key(rig.gateway.config), where, request) if signed else request
    await rig.observer.publish(where, payload)
    answer = await rig.observer.expect(f"{BRIDGE}/response/{action}",
                                       lambda m: m.json().get("id") == request["id"],
                                       since=since)
    result: dict[str, Any] = answer.json()
    return result


def node_list(message: Observed) -> list[str]:
    return [node["name"] for node in message.json()["nodes"]]


async def retained_nodes(url: str) -> list[str]:
    """The node list a new subscriber gets (it must be retained)."""
    host, port = parse_mqtt_url(url)
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{BRIDGE}/nodes", qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert message.retain and isinstance(message.payload, bytes)
                return [node["name"] for node in json.loads(message.payload)["nodes"]]
    raise AssertionError("no node list")


async def test_bridge_rename_publishes_under_the_new_name_and_updates_the_list(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The retained node list names every registry node (no key); a signed node/rename
    edits the registry file, the list is published again with the new name, the old name's
    retained state is cleared, and the node's next reading goes out under the new name."""
    async with gateway_with_node(tmp_path, mosquitto.url,
                                 nodes=[node_info(42), node_info(43)]) as rig:
        listed = await rig.observer.expect(f"{BRIDGE}/nodes")
        assert node_list(listed) == ["HN-0042", "HN-0043"]
        assert "key" not in listed.json()["nodes"][0]
        assert await retained_nodes(mosquitto.url) == ["HN-0042", "HN-0043"]
        await rig.node.send(rig.node.hello())
        await rig.observer.expect(topic("HN-0042", "state"))
        since = rig.observer.mark()
        answer = await ask(rig, "node/rename", {"from": "HN-0042", "to": "HN-0099"})
        assert (answer["code"], answer["data"]) == ("OK", {"from": "HN-0042", "to": "HN-0099",
                                                            "id": 42})
        relisted = await rig.observer.expect(f"{BRIDGE}/nodes", since=since)
        assert node_list(relisted) == ["HN-0099", "HN-0043"]
        assert await retained_nodes(mosquitto.url) == ["HN-0099", "HN-0043"]
        assert 'name = "HN-0099"' in rig.gateway.config.registry_path.read_text()
        cleared = await rig.observer.expect(topic("HN-0042", "state"), since=since)
        assert cleared.payload == b""
        await rig.observer.expect(topic("HN-0099", "state"), since=since)
        await rig.node.send(rig.node.data(300))
        data = await rig.observer.expect(topic("+", "data"), since=since)
        assert data.topic == topic("HN-0099", "data") and data.json()["node"] == "HN-0099"


async def test_bridge_requests_need_authority_confirmation_and_valid_values(
        tmp_path: Path, mosquitto: Mosquitto, root_level: None) -> None:
    """Unsigned, forged and retained (waiting on the broker when the gateway subscribes)
    requests are refused (UNAUTHORIZED, REPLAYED) and change nothing; remove needs "confirm";
    a rename to a taken or invalid name is BAD_ARGS with the registry untouched; an unknown
    node is NOT_FOUND; remove drops the node (its frames are then rejected as from an
    unknown node); log_level sets the level or says which levels there are."""
    rename = {"from": "HN-0042", "to": "HN-0099"}
    where = f"{BRIDGE}/request/node/rename"
    make_operator_key(tmp_path / "operator.key")  # the key the rig's gateway will check with
    host, port = parse_mqtt_url(mosquitto.url)
    async with aiomqtt.Client(host, port) as client:  # a retained request, waiting for it
        kept = sign(load_operator_key(tmp_path / "operator.key"), where, {**rename, "id": "kept"})
        await client.publish(where, json.dumps(kept), qos=1, retain=True)
    async with gateway_with_node(tmp_path, mosquitto.url,
                                 nodes=[node_info(42), node_info(43)]) as rig:
        registry = rig.gateway.config.registry_path
        before = registry.read_text()
        await rig.publisher.connected.wait()
        retained = await rig.observer.expect(f"{BRIDGE}/response/node/rename",
                                             lambda m: m.json().get("id") == "kept")
        unsigned = await ask(rig, "node/rename", rename, signed=False)
        forged = sign(secrets.token_bytes(32), where, {**rename, "id": "forged"})
        await rig.observer.publish(where, forged)
        forged_answer = await rig.observer.expect(f"{BRIDGE}/response/node/rename",
                                                  lambda m: m.json().get("id") == "forged")
        answers = {
            "taken": await ask(rig, "node/rename", {"from": "HN-0042", "to": "HN-0043"}),
            "invalid": await ask(rig, "node/rename", {"from": "HN-0042", "to": "a/b"}),
            "unknown": await ask(rig, "node/remove", {"node": "HN-7777",
                                                     "confirm": "HN-7777"}),
            "unconfirmed": await ask(rig, "node/remove", {"node": "HN-0043"}),
        }
        assert registry.read_text() == before
        removed = await ask(rig, "node/remove", {"node": "HN-0042", "confirm": "HN-0042"})
        level = await ask(rig, "log_level", {"level": "debug"})
        bad_level = await ask(rig, "log_level", {"level": "LOUD"})
        async with LogWaiter("node 42 on tty0 is not in the registry") as rejected:
            rig.node.write(rig.node.hello()[0])
            await rejected.wait()
        assert await retained_nodes(mosquitto.url) == ["HN-0043"]
    assert (unsigned["code"], forged_answer.json()["code"]) == ("UNAUTHORIZED", "UNAUTHORIZED")
    assert retained.json()["code"] == "REPLAYED"
    assert {k: a["code"] for k, a in answers.items()} == {
        "taken": "BAD_ARGS", "invalid": "BAD_ARGS", "unknown": "NOT_FOUND",
        "unconfirmed": "CONFIRM_REQUIRED"}
    assert "already used by node HN-0043" in answers["taken"]["message"]
    assert removed["code"] == "OK" and "HN-0042" not in registry.read_text()
    assert level["code"] == "OK" and logging.getLogger().level == logging.DEBUG
    assert bad_level["code"] == "BAD_ARGS"


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """A folder this process may not create files in: mode 0555, or for root (whom modes do
    not stop) the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("run as root where chattr +i does not work: no folder root cannot write")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


async def test_bridge_a_registry_the_gateway_may_not_write_is_failed_naming_it(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The installed layout (/etc/streetsense not writable by the gateway's user): rename and
    remove answer FAILED naming the registry, its folder and what to do, never a temporary
    file (a rename answered BAD_ARGS, "cannot write .../.registry.toml.k2j3: Permission
    denied"); the file is unchanged."""
    folder = tmp_path / "etc"
    folder.mkdir()
    registry = write_registry(folder / "registry.toml", [node_info(42)])
    async with gateway_with_node(tmp_path, mosquitto.url, registry_path=registry) as rig:
        await rig.observer.expect(f"{BRIDGE}/nodes")  # subscribed to its requests by then
        before = registry.read_text()
        with read_only(folder):
            renamed = await ask(rig, "node/rename", {"from": "HN-0042", "to": "HN-0099"})
            removed = await ask(rig, "node/remove", {"node": "HN-0042", "confirm": "HN-0042"})
        assert registry.read_text() == before
    for answer in (renamed, removed):
        assert answer["code"] == "FAILED", answer
        assert f"cannot write the registry {registry}" in answer["message"]
        assert f"write access to its folder {folder}" in answer["message"]
        assert ".registry.toml." not in answer["message"]
