"""The publisher against a broker that wants TLS with a client certificate (custom CA, MQTT
3.1.1) or a username and password (MQTT 5)."""

from __future__ import annotations

import ssl
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.hil.pty import PtyPort
from tests.support.fake_node import PtyNode
from tests.support.gateway_rig import links_up, make_config, node_info, topic


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all from the CA."""
    p = {name: folder / name for name in ("ca.key", "ca.crt", "server.key", "server.crt",
                                          "client.key", "client.crt")}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=StreetSense test CA", "-keyout", str(p["ca.key"]), "-out", str(p["ca.crt"]))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    for who in ("server", "client"):
        csr = folder / f"{who}.csr"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=gw-{who}",
                 "-keyout", str(p[f"{who}.key"]), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(p["ca.crt"]), "-CAkey",
                 str(p["ca.key"]), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                 "-out", str(p[f"{who}.crt"]))
    return p


async def _one_reading_arrives(config_url: str, tmp_path: Path, broker: Mosquitto,
                               subscriber: aiomqtt.Client, **mqtt: Any) -> None:
    port = PtyPort(tmp_path / "tty0")
    node = PtyNode(port, 42)
    config = make_config(tmp_path, config_url, [port.path], [node_info(42)])
    config = replace(config, mqtt=replace(config.mqtt, url=config_url, **mqtt))
    await subscriber.subscribe(topic("HN-0042", "data"), qos=1)
    async with Gateway(config, derivers=[]).running() as gateway:
        await links_up(gateway, port)
        node.attach()
        await node.send(node.data(300, ts=int(time.time())))
        async for message in subscriber.messages:
            assert message.topic.value == topic("HN-0042", "data")
            break
    port.close()


async def test_publisher_tls_with_custom_ca_and_client_certificate(tmp_path: Path) -> None:
    """mqtts with the broker's CA and a client certificate (required), over MQTT 3.1.1."""
    pki = _pki(tmp_path)
    # "user root": mosquitto would drop to its own user, which cannot read pytest's tmp dir.
    tls = ["user root", f"cafile {pki['ca.crt']}", f"certfile {pki['server.crt']}",
           f"keyfile {pki['server.key']}", "require_certificate true"]
    with Mosquitto(extra_config=tls) as broker:
        context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        context.load_cert_chain(str(pki["client.crt"]), str(pki["client.key"]))
        async with aiomqtt.Client(broker.host, broker.port, tls_context=context) as subscriber:
            await _one_reading_arrives(
                f"mqtts://127.0.0.1:{broker.port}", tmp_path, broker, subscriber,
                protocol="3.1.1", ca_file=pki["ca.crt"], cert_file=pki["client.crt"],
                key_file=pki["client.key"])


async def test_publisher_username_password_and_refusal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With the right password the gateway publishes; with a wrong one it logs the refusal
    and keeps retrying (no crash)."""
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "gw-01", "s3cret"],
                   check=True, capture_output=True)
    auth = ["user root", "allow_anonymous false", f"password_file {passwords}"]
    with Mosquitto(extra_config=auth) as broker:
        async with aiomqtt.Client(broker.host, broker.port, username="gw-01",
                                  password="s3cret") as subscriber:
            await _one_reading_arrives(broker.url, tmp_path, broker, subscriber,
                                       username="gw-01", password="s3cret")
        (tmp_path / "bad").mkdir()
        config = make_config(tmp_path / "bad", broker.url, [], [node_info(42)])
        config = replace(config, mqtt=replace(config.mqtt, username="gw-01", password="nope"))
        async with Gateway(config, derivers=[]).running() as gateway:
            publisher = gateway.publisher
            assert publisher is not None
            while publisher.failures < 2:
                await publisher.attempted()
            assert not publisher.connected.is_set() and not gateway.failed.is_set()
    assert "unreachable" in caplog.text and "authorized" in caplog.text.lower()
