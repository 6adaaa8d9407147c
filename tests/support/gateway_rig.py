"""Test parts for the gateway's data path: gateway configs and registries, a running gateway
with a fake node on a PTY port (``gateway_with_node``), log and MQTT waiters.

The node is a `PtyNode` (tests/support/fake_node.py) on the master side of a real PTY; the
gateway opens the slave through a symlink (as it would ``/dev/serial/by-id/...``), so a test
can unplug the port and plug a new PTY in at the same path (`streetsense.hil.pty.PtyPort`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streetsense.gateway.command_auth import load_operator_key, make_operator_key
from streetsense.gateway.config import (
    AvailabilitySection,
    CommandsSection,
    GatewayConfig,
    GatewaySection,
    HealthSection,
    HttpSection,
    JournalSection,
    MqttSection,
    SerialPort,
)
from streetsense.gateway.journal import Batch, Journal, JournalFull, Message
from streetsense.gateway.publisher import Publisher
from streetsense.gateway.registry import NodeInfo
from streetsense.gateway.service import Gateway
from streetsense.gateway.session import Deriver
from streetsense.gateway.topics import Topics
from streetsense.hil.keys import numbered_key
from streetsense.hil.observer import MqttObserver
from streetsense.hil.pty import PtyPort

from .fake_node import PtyNode

SITE = "test"
GATEWAY_ID = "gw-test"
PREFIX = "streetsense"


def node_info(node_id: int, kind: str = "air-quality", **changes: Any) -> NodeInfo:
    return replace(NodeInfo(id=node_id, name=f"HN-{node_id:04d}", kind=kind,
                            key=numbered_key(node_id), location="pole test"), **changes)


def write_registry(path: Path, nodes: Sequence[NodeInfo]) -> Path:
    lines = []
    for node in nodes:
        lines += ["[[node]]", f"id = {node.id}", f'name = "{node.name}"',
                  f'kind = "{node.kind}"', f'key = "{node.key.hex()}"', f'link = "{node.link}"',
                  f'location = "{node.location}"', f"enabled = {str(node.enabled).lower()}", ""]
    path.write_text("\n".join(lines))
    return path


def make_config(tmp_path: Path, broker_url: str, ports: Sequence[Path],
                nodes: Sequence[NodeInfo], **sections: Any) -> GatewayConfig:
    """A gateway config for a test: its journal, registry and operator key in ``tmp_path``."""
    data = tmp_path / "data"
    key_file = tmp_path / "operator.key"
    if not key_file.exists():
        make_operator_key(key_file)
    config = GatewayConfig(
        gateway=GatewaySection(id=GATEWAY_ID, site=SITE, data_dir=data),
        mqtt=MqttSection(url=broker_url, client_id=f"streetsense-{GATEWAY_ID}", keepalive_s=2),
        registry_path=write_registry(tmp_path / "registry.toml", nodes),
        journal=JournalSection(path=data / "journal.sqlite"),
        serial=tuple(SerialPort(path=str(p), name=p.name) for p in ports),
        availability=AvailabilitySection(offline_after_s=60.0),
        health=HealthSection(interval_s=60.0),
        http=HttpSection(listen=None),
        commands=CommandsSection(operator_key_file=key_file),
    )
    return replace(config, **sections)


def operator_key(config: GatewayConfig) -> bytes:
    """The operator key a test's gateway checks commands with."""
    assert config.commands.operator_key_file is not None
    return load_operator_key(config.commands.operator_key_file)


TOPICS = Topics(PREFIX, SITE, GATEWAY_ID)


def topic(node: str, sub: str) -> str:
    return TOPICS.node(node, sub)


FILLER = topic("filler", "data")


def fill_journal(journal: Journal) -> list[int]:
    """Commit undelivered rows (of node 7, on ``FILLER``) until ``journal`` refuses more;
    returns their ids."""
    ids: list[int] = []
    for size in (20, 1):  # big batches first, then single rows into the last gaps
        while True:
            batch = Batch()
            for seq in range(len(ids), len(ids) + size):
                payload = json.dumps({"seq": seq, "pad": "x" * 400}).encode()
                batch.frames.append((7, 1, seq, 1000.0, [Message(FILLER, payload)]))
            batch.replay[7] = {1: len(ids) + size - 1}
            try:
                ids += [row.id for row in journal.commit(batch)]
            except JournalFull:
                break
    return ids


def fill_disk(path: Path) -> int:
    """Write ``path`` until the disk it is on refuses (ENOSPC); returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 4096, 512):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def seqs(messages: Sequence[Any]) -> list[tuple[int, int]]:
    """(boot, seq) of observed data/event messages, in arrival order."""
    return [(m.json()["boot"], m.json()["seq"]) for m in messages]


async def links_up(gateway: Any, *ports: PtyPort, timeout: float = 5.0) -> None:
    """Until the gateway has opened every port (bytes written earlier are flushed on open)."""
    async with asyncio.timeout(timeout):
        for port in ports:
            await gateway.framing.wait_link(port.path.name)


@dataclass
class GatewayRig:
    """What ``gateway_with_node`` yields: the PTY, node 42 on it, the running gateway and
    (unless ``observe=False``) the observer."""

    port: PtyPort
    node: PtyNode
    gateway: Gateway
    _observer: MqttObserver | None = None

    @property
    def observer(self) -> MqttObserver:
        assert self._observer is not None, "gateway_with_node(observe=False) has no observer"
        return self._observer

    @property
    def publisher(self) -> Publisher:
        publisher = self.gateway.publisher
        assert publisher is not None
        return publisher


@contextlib.asynccontextmanager
async def gateway_with_node(tmp_path: Path, broker_url: str, *, observer_url: str | None = None,
                            observe: bool = True, boot: int = 1, port_name: str = "tty0",
                            nodes: Sequence[NodeInfo] | None = None,
                            derivers: Sequence[Deriver] = (),
                            **sections: Any) -> AsyncIterator[GatewayRig]:
    """A running gateway (``make_config`` with ``sections``, ``derivers``) publishing to
    ``broker_url``, its link to the PTY ``port_name`` up and node 42 (``boot``) attached there.

    An ``MqttObserver`` on ``streetsense/#`` at ``observer_url`` (default: ``broker_url``) is
    entered before the gateway, unless ``observe`` is false. ``nodes`` is the registry (default:
    node 42 only). On exit the gateway stops, then the observer; then the node stops reading
    and the port is closed (a reader left on the closed fd would break the next socket that
    reuses its number).
    """
    port = PtyPort(tmp_path / port_name)
    node = PtyNode(port, 42, boot=boot)
    try:
        config = make_config(tmp_path, broker_url, [port.path],
                             [node_info(42)] if nodes is None else nodes, **sections)
        async with contextlib.AsyncExitStack() as stack:
            observer = None
            if observe:
                observer = await stack.enter_async_context(
                    MqttObserver(observer_url or broker_url, topics=["streetsense/#"]))
            gateway = await stack.enter_async_context(Gateway(config, derivers=derivers).running())
            await links_up(gateway, port)
            node.attach()
            yield GatewayRig(port, node, gateway, observer)
    finally:
        node.detach()
        port.close()


class LogWaiter(logging.Handler):
    """``async with LogWaiter(text) as seen: await seen.wait()``: until a record holding
    ``text`` is logged, from any thread."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.records: list[str] = []
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.text in message:
            self.records.append(message)
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._event.wait()

    async def __aenter__(self) -> LogWaiter:
        logging.getLogger("streetsense").addHandler(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        logging.getLogger("streetsense").removeHandler(self)


class PersistentSubscriber:
    """A QoS 1 subscriber with a persistent session (clean_session false): with a broker that
    persists sessions, it gets what was published while it was away, as a real consumer does."""

    def __init__(self, url: str, topic_filter: str, client_id: str) -> None:
        from streetsense.hil.observer import parse_mqtt_url

        self.host, self.port = parse_mqtt_url(url)
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.connections = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PersistentSubscriber:
        self._task = asyncio.create_task(self._run())
        await self.wait(lambda: self.connections > 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        import aiomqtt

        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                          clean_session=False, keepalive=5) as client:
                    await client.subscribe(self.topic_filter, qos=1)
                    async with self._changed:
                        self.connections += 1
                        self._changed.notify_all()
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        async with self._changed:
                            self.received.append((message.topic.value,
                                                  json.loads(message.payload)))
                            self._changed.notify_all()
            except aiomqtt.MqttError:
                # Reconnect pacing while the broker is away (not a synchronisation wait).
                await asyncio.sleep(0.2)

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def data(self) -> list[dict[str, Any]]:
        return [payload for t, payload in self.received if t.endswith("/data")]
