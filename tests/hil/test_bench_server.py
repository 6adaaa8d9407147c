"""A real bench's HIL server: boards on the gateway's serial ports, their power relays on
GPIO (gpiozero's mock pins here), nodes learnt from their links, one token."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from pathlib import Path

import pytest
from gpiozero import Device

from streetsense.gateway.bench.server import MAX_UNAUTHENTICATED
from streetsense.gateway.config import load_config
from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto, free_port
from streetsense.hil.environment import Environment
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.node import EmulatedNode
from streetsense.hil.plugin import FAST_SETTINGS, node_key
from streetsense.hil.remote import RemoteLink, RemoteSession

TOKEN = "a-bench-token-of-32-characters."


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


def _memory_mb(pid: int, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of process ``pid``, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _strangers(port: int, count: int, push: int) -> int:
    """``count`` connections that never authenticate: all opened, each read until the
    server's hello or its close; then all push ``push`` bytes without a newline at once,
    and each is read to its end. Returns how many got a hello."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    hellos = 0
    try:
        for sock in sockets:  # accepted ones wait AUTH_TIMEOUT_S for their answer
            sock.settimeout(20)
            with contextlib.suppress(ConnectionError):
                hellos += sock.recv(1).startswith(b"{")
        for sock in sockets:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # as much as the kernel takes, or refused
                sock.send(b"x" * push)
        for sock in sockets:
            sock.settimeout(20)
            with contextlib.suppress(ConnectionError):
                while sock.recv(65536):
                    pass
    finally:
        for sock in sockets:
            sock.close()
    return hellos


async def test_bench_server_bounds_strangers_and_their_memory(tmp_path: Path) -> None:
    """150 connections that never authenticate, then all pushing 256 KiB without a newline:
    at most MAX_UNAUTHENTICATED get a hello, the rest are closed at once; the gateway's peak
    memory grows by less than 10 MB, it is back where it was once they are gone, and a
    tester with the token still gets in."""
    token = secrets.token_hex(16)
    (tmp_path / "token").write_text(token)
    port = free_port()
    with Mosquitto() as broker, GatewayProcess(
            workdir=tmp_path / "gw", mqtt_url=broker.url,
            settings={"hil": {"enabled": True, "listen": f"127.0.0.1:{port}",
                              "token_file": str(tmp_path / "token")}}) as gateway:
        assert gateway.pid is not None
        rss0, peak0 = (_memory_mb(gateway.pid, field) for field in ("VmRSS", "VmHWM"))
        hellos = await asyncio.to_thread(_strangers, port, 150, 256 * 1024)
        rss1, peak1 = (_memory_mb(gateway.pid, field) for field in ("VmRSS", "VmHWM"))
        session = RemoteSession(f"hil://127.0.0.1:{port}", token)
        try:
            await session.connect()
            info = await session.call("bench.info")
        finally:
            await session.close()
    assert hellos <= MAX_UNAUTHENTICATED
    assert peak1 - peak0 < 10 and rss1 - rss0 < 10, (rss0, rss1, peak0, peak1)
    assert info["gateway"] == "gw-hil"
