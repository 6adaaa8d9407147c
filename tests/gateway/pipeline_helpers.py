"""Test parts for the gateway's data path: PTY ports, a CPython fake node, gateway configs.

The fake node speaks protocol v1 with ``streetsense.protocol`` on the master side of a real
PTY; the gateway opens the slave through a symlink (as it would ``/dev/serial/by-id/...``),
so a test can unplug the port and plug a new PTY in at the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import tty
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
from streetsense.hil.observer import MqttObserver
from streetsense.protocol import Deframer, Frame, ProtocolError, parse_frame
from streetsense.protocol.messages import ACK, DATA, HELLO

SITE = "test"
GATEWAY_ID = "gw-test"
PREFIX = "streetsense"


def node_key(node_id: int) -> bytes:
    """A deterministic 32-byte key per node id."""
    return bytes((node_id * 7 + i) & 0xFF for i in range(32))


def node_info(node_id: int, kind: str = "air-quality", **changes: Any) -> NodeInfo:
    return replace(NodeInfo(id=node_id, name=f"HN-{node_id:04d}", kind=kind,
                            key=node_key(node_id), location="pole test"), **changes)


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


class PtyPort:
    """A PTY whose slave the gateway opens through the symlink ``path``; replug = a new PTY."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.master = -1
        self._slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes as they are
        tty.setraw(self.master)
        staging = self.path.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        staging.symlink_to(os.ttyname(self._slave))
        staging.replace(self.path)

    def unplug(self) -> None:
        """Close both ends (the gateway's reads fail) and remove the path."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        for fd in (self.master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = -1


class FakeNode:
    """A provisioned node in CPython: builds signed frames, reads the gateway's downlinks."""

    def __init__(self, port: PtyPort, node_id: int, *, boot: int = 1,
                 key: bytes | None = None) -> None:
        self.port = port
        self.node_id = node_id
        self.key = key if key is not None else node_key(node_id)
        self.boot = boot
        self.seq = 0
        self.downlinks: list[Frame] = []
        self.errors: list[ProtocolError] = []
        self._deframer = Deframer()
        self._changed = asyncio.Condition()
        self._reading_fd = -1

    def attach(self) -> None:
        """Start reading downlinks from the port's current PTY."""
        self._reading_fd = self.port.master
        self._deframer = Deframer()
        asyncio.get_running_loop().add_reader(self._reading_fd, self._readable)

    def detach(self) -> None:
        if self._reading_fd >= 0:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._reading_fd)
        self._reading_fd = -1

    def _readable(self) -> None:
        try:
            data = os.read(self._reading_fd, 4096)
        except OSError:
            self.detach()
            return
        for item in self._deframer.feed(data):
            if isinstance(item, ProtocolError):
                self.errors.append(item)
                continue
            try:
                self.downlinks.append(parse_frame(bytes(item), self.key))
            except ProtocolError as exc:
                self.errors.append(exc)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def reboot(self) -> None:
        self.boot += 1
        self.seq = 0

    def frame(self, mtype: int, body: Any, *, seq: int | None = None, boot: int | None = None,
              ack: bool = True, key: bytes | None = None) -> tuple[bytes, int]:
        """(wire bytes, seq) of a new uplink; the node's seq advances unless ``seq`` is given."""
        if seq is None:
            seq = self.seq
            self.seq += 1
        flags = 0x01 if ack else 0
        frame = Frame(mtype, self.node_id, self.boot if boot is None else boot, seq, body, flags)
        return frame.encode(key if key is not None else self.key), seq

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.port.master, view)
            view = view[written:]

    def hello(self, uptime_ms: int = 1500) -> tuple[bytes, int]:
        return self.frame(HELLO, {1: "streetsense-node", 2: "0.1.0", 3: [1, 0],
                                  4: ["pms5003", "scd41"], 5: 1, 6: self.boot, 8: uptime_ms})

    def data(self, pm2_5_tenths: int, ts: int = 1_764_115_200, clock: int = 0
             ) -> tuple[bytes, int]:
        return self.frame(DATA, {1: ts, 2: clock, 3: 60,
                                 4: [[2, -1, pm2_5_tenths, pm2_5_tenths - 5, pm2_5_tenths + 5, 12],
                                     [4, 0, 415]]})

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """The first downlink received that matches ``predicate`` (waits for it)."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for frame in self.downlinks:
                    if predicate(frame):
                        return frame
                await self._changed.wait()

    async def wait_count(self, predicate: Callable[[Frame], bool], count: int,
                         timeout: float = 5.0) -> list[Frame]:
        """Until ``count`` downlinks match ``predicate``; returns them."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                found = [frame for frame in self.downlinks if predicate(frame)]
                if len(found) >= count:
                    return found
                await self._changed.wait()

    async def wait_ack(self, seq: int, *, boot: int | None = None, timeout: float = 5.0) -> Frame:
        boot = self.boot if boot is None else boot
        return await self.wait_for(
            lambda f: f.type == ACK and f.body[1] == boot and f.body[2] >= seq, timeout)

    async def send(self, wire_and_seq: tuple[bytes, int], *, boot: int | None = None,
                   timeout: float = 5.0, retry_s: float = 1.0) -> int:
        """Stop-and-wait: write, retransmit the same bytes until ACKed; returns the seq."""
        wire, seq = wire_and_seq
        async with asyncio.timeout(timeout):
            while True:
                self.write(wire)
                with contextlib.suppress(TimeoutError):
                    await self.wait_ack(seq, boot=boot, timeout=retry_s)
                    return seq


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
    node: FakeNode
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
    node = FakeNode(port, 42, boot=boot)
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
