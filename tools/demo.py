"""The ``demo`` command: emulated nodes -> the gateway -> an MQTT broker, live on screen.

Everything is the real thing except the street: the node firmware runs under MicroPython on
emulated boards (sensors and vehicle detectors driven by a seeded Hanoi street scene), the
gateway is ``streetsense gateway run`` in its own process with a generated config, and the
broker is amqtt run in this process (or the one given with ``--broker``). What the gateway
publishes is read back with an MQTT subscription and shown as a table, or as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import click

from streetsense.hil.environment import FAST_SENSORS, Environment
from streetsense.hil.gateway_proc import GatewayError, GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.node import EmulatedNode, NodeError
from streetsense.hil.scene import StreetScene
from streetsense.loopback import free_port

from .demo_table import LiveTable

SITE = "hanoi"
PREFIX = "streetsense"
EMBEDDED_PORT = 1883  # the broker's usual port when it is free, so mosquitto_sub needs no -p
LOCATIONS = ("Tràng Tiền", "Kim Mã", "Nguyễn Trãi", "Giải Phóng", "Láng Hạ", "Xã Đàn")
# Short intervals so a newcomer sees readings within seconds (a pole reports every minute).
NODE_SETTINGS: dict[str, dict[str, Any]] = {
    "air-quality": {"report_interval_s": 5, "sample_interval_s": 1, "status_interval_s": 15,
                    "pm_warmup_s": 2},
    "traffic": {"report_interval_s": 5, "status_interval_s": 15},
}


@dataclass(frozen=True)
class Broker:
    """Where the gateway and the demo's subscriber connect."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    protocol: str = "5"

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """``mqtt://[user:password@]host[:port]`` or ``mqtts://...``."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # not a number, or beyond 65535
            port = -1
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == -1:
            raise click.BadParameter(f"{url!r}: expected mqtt://host[:port] or mqtts://host[:port]",
                                     param_hint="--broker")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, port or (8883 if tls else 1883), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)

    @property
    def url(self) -> str:
        """The URL without credentials (what the gateway config takes)."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def gateway_settings(self) -> dict[str, Any]:
        """The ``[mqtt]`` keys of the gateway config beyond ``url``."""
        settings: dict[str, Any] = {"protocol": self.protocol, "keepalive_s": 30}
        if self.username:
            settings["username"] = self.username
        if self.password:
            settings["password"] = self.password
        return settings

    def subscriber(self) -> aiomqtt.Client:
        """An MQTT client for the demo's own subscription."""
        version = aiomqtt.ProtocolVersion.V5 if self.protocol == "5" else \
            aiomqtt.ProtocolVersion.V311
        return aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password,
            protocol=version, tls_params=aiomqtt.TLSParameters() if self.tls else None,
            identifier=f"streetsense-demo-{os.getpid()}")

    def mosquitto_sub(self) -> str:
        """The command line that shows the same messages."""
        options = "" if self.port == 1883 else f" -p {self.port}"
        if self.tls:
            options += " --tls-use-os-certs"
        if self.username:
            options += f" -u {self.username} -P <password>"
        return f"mosquitto_sub -h {self.host}{options} -t '{PREFIX}/{SITE}/#' -v"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.asynccontextmanager
async def embedded_broker() -> AsyncIterator[Broker]:
    """amqtt in this process on 127.0.0.1 (port 1883 if free, else a free one); MQTT 3.1.1."""
    from amqtt.broker import Broker as AmqttBroker

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # it logs every client that leaves
    port = EMBEDDED_PORT if _port_free(EMBEDDED_PORT) else free_port()
    broker = AmqttBroker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })  # fmt: skip
    await broker.start()
    try:
        yield Broker("127.0.0.1", port, protocol="3.1.1")
    finally:
        await broker.shutdown()


@dataclass
class DemoNode:
    """One emulated pole: its street, its sensors and its board."""

    entry: NodeEntry
    scene: StreetScene
    environment: Environment
    board: EmulatedNode

    def close(self) -> None:
        self.board.close()
        self.scene.stop()
        self.environment.close()


def _make_node(node_id: int, kind: str, seed: int, speedup: float) -> DemoNode:
    key = os.urandom(32)  # generated per run, never stored in the repo
    entry = NodeEntry(node_id, f"HN-{node_id:04d}", kind, key,
                      location=LOCATIONS[(node_id - 1) % len(LOCATIONS)])
    scene = StreetScene(seed + node_id, speedup=speedup)
    environment = Environment(kind, sensor_speedup=FAST_SENSORS)  # for the short PM warm-up
    try:
        board = EmulatedNode(kind, environment=environment, node_id=node_id, key=key,
                             seed=seed + node_id, extra_config=NODE_SETTINGS[kind])
    except BaseException:
        environment.close()
        raise
    return DemoNode(entry, scene.start(environment), environment, board)


@contextlib.contextmanager
def street(air_quality: int, traffic: int, seed: int, speedup: float) -> Iterator[list[DemoNode]]:
    """The emulated nodes (not started yet), closed on exit."""
    nodes: list[DemoNode] = []
    try:
        kinds = ["air-quality"] * air_quality + ["traffic"] * traffic
        for node_id, kind in enumerate(kinds, start=1):
            nodes.append(_make_node(node_id, kind, seed, speedup))
        yield nodes
    finally:
        for node in nodes:
            node.close()


class Screen:
    """The table on a terminal (redrawn in place) or, piped, a snapshot when it changed."""

    def __init__(self, table: LiveTable, *, tty: bool, header: str) -> None:
        self.table = table
        self.tty = tty
        self.header = header
        self._changed = False
        self._printed_at = 0.0

    def changed(self) -> None:
        self._changed = True

    def tick(self, *, final: bool = False) -> None:
        if self.tty:
            click.echo("\x1b[H\x1b[J" + self.header + "\n\n" + self.table.render())
        elif final or (self._changed and time.monotonic() - self._printed_at >= 5):
            click.echo(f"\n[{time.strftime('%H:%M:%S')}]\n{self.table.render()}")
            self._printed_at = time.monotonic()
            self._changed = False


def decode_payload(payload: bytes | bytearray) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


async def _follow(client: aiomqtt.Client, table: LiveTable, screen: Screen | None) -> None:
    """Every message into the table, or (JSON mode) one line per message on stdout."""
    async for message in client.messages:
        payload = decode_payload(message.payload if isinstance(message.payload, bytes | bytearray)
                          else str(message.payload).encode())
        table.update(message.topic.value, payload)
        if screen is None:
            line = {"topic": message.topic.value, "retain": message.retain, "payload": payload}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            screen.changed()


def _check_alive(gateway: GatewayProcess, nodes: list[DemoNode]) -> None:
    """Raise if the gateway or a node's firmware has stopped on its own."""
    if not gateway.running:
        tail = "\n".join(gateway.log().splitlines()[-20:])
        raise GatewayError(f"the gateway exited with status {gateway.returncode}:\n{tail}")
    for node in nodes:
        if node.board.exit_status is not None:
            console = "\n".join(list(node.board.console)[-20:])
            raise NodeError(f"node {node.entry.name}: the firmware exited with status "
                            f"{node.board.exit_status}:\n{console}")


def _say(text: str, as_json: bool) -> None:
    """Progress lines: on stderr in JSON mode, so stdout stays one JSON object per line."""
    click.echo(text, err=as_json)


async def _run(broker_url: str | None, duration: float | None, as_json: bool,
               air_quality: int, traffic: int, seed: int, speedup: float) -> LiveTable:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # HUP: the terminal closed
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        if broker_url is None:
            broker = await stack.enter_async_context(embedded_broker())
            _say(f"broker: amqtt in this process at {broker.url} (MQTT 3.1.1)", as_json)
        else:
            broker = Broker.from_url(broker_url)
            _say(f"broker: {broker.url}", as_json)
        client = await stack.enter_async_context(broker.subscriber())
        await client.subscribe(f"{PREFIX}/{SITE}/#", qos=1)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssdemo-")))
        nodes = stack.enter_context(street(air_quality, traffic, seed, speedup))
        table = LiveTable([n.entry.name for n in nodes])
        gateway = GatewayProcess(
            workdir=workdir / "gateway", mqtt_url=broker.url, site=SITE, gateway_id="demo-gw",
            prefix=PREFIX, nodes=[n.entry for n in nodes],
            serial=[SerialEntry(n.board.port, f"serial-{n.entry.id}") for n in nodes],
            settings={"mqtt": {**broker.gateway_settings(),
                               "client_id": f"streetsense-demo-gw-{os.getpid()}"},
                      "health": {"interval_s": 15}},
        )  # fmt: skip
        # Off the event loop: the embedded broker runs on it and must ack the gateway's goodbye.
        stack.push_async_callback(asyncio.to_thread, gateway.close)
        await asyncio.to_thread(gateway.start)
        for node in nodes:
            node.board.start()
        summary = ", ".join(f"{n.entry.name} ({n.entry.kind}, {n.entry.location})" for n in nodes)
        _say(f"nodes: {summary}", as_json)
        _say(f"gateway: demo-gw, site {SITE}; see it all with: {broker.mosquitto_sub()}", as_json)
        screen = None if as_json else Screen(
            table, tty=sys.stdout.isatty(),
            header=f"StreetSense demo: {broker.mosquitto_sub()}   (Ctrl-C ends it)")  # fmt: skip
        follower = asyncio.create_task(_follow(client, table, screen))
        deadline = None if duration is None else loop.time() + duration
        while not stop.is_set() and not follower.done():
            timeout = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if timeout <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
            if screen is not None:
                screen.tick()
            _check_alive(gateway, nodes)
        if follower.done():
            follower.result()  # the subscription ended: raise what ended it
        follower.cancel()
        if screen is not None:
            screen.tick(final=True)
        _say(f"demo ended: {table.messages} messages from {len(table.rows)} nodes", as_json)
    return table


@click.command()
@click.option("--broker", "broker_url", default=None, metavar="URL",
              help="Use this MQTT broker (mqtt://[user:pass@]host[:port], mqtts://...) instead "
                   "of the embedded one.")
@click.option("--duration", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="End after this many seconds [default: run until Ctrl-C].")
@click.option("--json", "as_json", is_flag=True,
              help="Print each published message as a JSON line instead of the table.")
@click.option("--air-quality", type=click.IntRange(0, 6), default=2, show_default=True,
              help="Air-quality nodes.")
@click.option("--traffic", type=click.IntRange(0, 6), default=1, show_default=True,
              help="Traffic-count nodes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the street scenes.")
@click.option("--speedup", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Street seconds per real second (60: an hour of the street's day each minute).")
def demo(broker_url: str | None, duration: float | None, as_json: bool, air_quality: int,
         traffic: int, seed: int, speedup: float) -> None:
    """Run the main job with nothing installed: emulated nodes (real firmware on emulated
    boards) -> the gateway -> an MQTT broker, with a live table of what is published."""
    if air_quality + traffic == 0:
        raise click.UsageError("no nodes: give --air-quality or --traffic at least 1")
    if broker_url is not None:
        Broker.from_url(broker_url)  # a bad URL is a usage error before anything starts
    try:
        asyncio.run(_run(broker_url, duration, as_json, air_quality, traffic, seed, speedup))
    except (GatewayError, NodeError) as exc:
        raise click.ClickException(str(exc)) from None
    except aiomqtt.MqttError as exc:
        raise click.ClickException(f"MQTT broker: {exc}") from None


if __name__ == "__main__":
    demo()
