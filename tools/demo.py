"""The ``demo`` command: emulated nodes -> the gateway -> an MQTT broker, live on screen.

Everything is the real thing except the street: the node firmware runs under MicroPython on
emulated boards (sensors and vehicle detectors driven by a seeded Hanoi street scene, each
street with its own air), the gateway is ``streetsense gateway run`` in its own process with
a generated config, and the broker is amqtt run in this process (or the one given with
``--broker``). What the gateway publishes is read back with an MQTT subscription and shown
as a table with the street's time of day and a legend, or as JSON lines. The subscription
survives the broker's restart (it reconnects; the gateway, which reconnects by itself,
catches up from its journal meanwhile).

``--chaos`` restarts the embedded broker and SIGKILLs the gateway at seeded random moments,
counting what the nodes sent against what the broker acknowledged (`demo_chaos`); at the
end, once the gateway caught up, nothing may be missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import click

from streetsense.hil.environment import FAST_SENSORS, Environment
from streetsense.hil.gateway_proc import GatewayError, GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.node import EmulatedNode, NodeError
from streetsense.hil.scene import StreetScene
from streetsense.loopback import free_port

from .demo_broker import Broker, EmbeddedBroker
from .demo_chaos import Chaos, Tally
from .demo_table import DEMO_TOPICS, LiveTable, legend

TOPIC = DEMO_TOPICS.everything
EMBEDDED_PORT = 1883  # the broker's usual port when it is free, so mosquitto_sub needs no -p
# (street, traffic exposure of its air: see hil_tests/scene.py). A tree-lined boulevard by
# Hoàn Kiếm lake, the southern arterial with its trucks, then streets in between.
STREETS = (("Tràng Tiền", 0.6), ("Giải Phóng", 1.7), ("Kim Mã", 1.2), ("Nguyễn Trãi", 1.5),
           ("Láng Hạ", 1.0), ("Xã Đàn", 1.3))
# Short intervals so a newcomer sees readings within seconds (a pole reports every minute),
# and a short retransmission cap so nodes catch up quickly once the gateway is back.
NODE_SETTINGS: dict[str, dict[str, Any]] = {
    "air-quality": {"report_interval_s": 5, "sample_interval_s": 1, "status_interval_s": 15,
                    "pm_warmup_s": 2, "retry_max_s": 5},
    "traffic": {"report_interval_s": 5, "status_interval_s": 15, "retry_max_s": 5},
}
RECONNECT_S = (0.5, 5.0)  # the subscription's reconnect backoff: first, cap
DRAIN_S = 120.0  # after --chaos: how long the gateway may take to catch up


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.asynccontextmanager
async def embedded_broker(acknowledged: Callable[[str, bytes], None]
                          ) -> AsyncIterator[tuple[Broker, EmbeddedBroker]]:
    """amqtt in this process on 127.0.0.1 (port 1883 if free, else a free one); MQTT 3.1.1."""
    server = EmbeddedBroker(EMBEDDED_PORT if _port_free(EMBEDDED_PORT) else free_port(),
                            acknowledged)
    await server.start()
    try:
        yield Broker(server.host, server.port, protocol="3.1.1"), server
    finally:
        await server.stop()


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
    street_name, exposure = STREETS[(node_id - 1) % len(STREETS)]
    entry = NodeEntry(node_id, f"HN-{node_id:04d}", kind, key, location=street_name)
    scene = StreetScene(seed + node_id, speedup=speedup, traffic_exposure=exposure)
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


def street_time(scene: StreetScene) -> str:
    """``street time 07:42 (60x)``: the scene's hour of day and how fast it runs."""
    minutes = int(scene.hour * 60)
    return f"street time {minutes // 60:02d}:{minutes % 60:02d} ({scene.speedup:g}x)"


class Screen:
    """The table on a terminal (redrawn in place, with the legend) or, piped, a snapshot
    when it changed; ``status()`` is the line above the table (street time, broker...)."""

    def __init__(self, table: LiveTable, *, tty: bool, header: str,
                 status: Callable[[], str]) -> None:
        self.table = table
        self.tty = tty
        self.header = header
        self.status = status
        self._changed = False
        self._printed_at = 0.0

    def changed(self) -> None:
        self._changed = True

    def tick(self, *, final: bool = False) -> None:
        if self.tty:
            click.echo(f"\x1b[H\x1b[J{self.header}\n{self.status()}\n\n{self.table.render()}"
                       f"\n\n{legend()}")
        elif final or (self._changed and time.monotonic() - self._printed_at >= 5):
            click.echo(f"\n[{time.strftime('%H:%M:%S')}] {self.status()}\n{self.table.render()}")
            if final:
                click.echo(f"\n{legend()}")
            self._printed_at = time.monotonic()
            self._changed = False


def decode_payload(payload: bytes | bytearray) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


class Subscription:
    """The demo's own subscription: every message into the table, or (JSON mode) one line per
    message on stdout. When the broker goes away it says so and reconnects (capped backoff),
    so a broker restart does not end the demo."""

    def __init__(self, broker: Broker, table: LiveTable, screen: Screen | None,
                 say: Callable[[str], None]) -> None:
        self.broker, self.table, self.screen, self.say = broker, table, screen, say
        self.state = "connecting"

    async def connect(self) -> aiomqtt.Client:
        """A connected, subscribed client; `aiomqtt.MqttError` if the broker cannot be
        reached. `run` disconnects it."""
        client = self.broker.subscriber()
        await client.__aenter__()
        try:
            await client.subscribe(TOPIC, qos=1)
        except BaseException:
            await self._close(client)
            raise
        self.state = "broker connected"
        return client

    @staticmethod
    async def _close(client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # a broker that is gone needs no goodbye
            await client.__aexit__(None, None, None)

    async def run(self, client: aiomqtt.Client) -> None:
        """Follow ``client`` (from `connect`), then its successors, until cancelled."""
        while True:
            try:
                async for message in client.messages:
                    self._show(message)
            except aiomqtt.MqttError as exc:
                self.state = "broker unreachable: reconnecting"
                self.say(f"broker connection lost ({exc}): reconnecting")
            finally:
                await self._close(client)
            client = await self._reconnect()

    async def _reconnect(self) -> aiomqtt.Client:
        delay_s = RECONNECT_S[0]
        while True:
            await asyncio.sleep(delay_s)  # reconnect pacing while the broker is away
            delay_s = min(delay_s * 2, RECONNECT_S[1])
            with contextlib.suppress(aiomqtt.MqttError):
                client = await self.connect()
                self.say("broker connection back: subscribed again")
                return client

    def _show(self, message: aiomqtt.Message) -> None:
        raw = message.payload
        payload = decode_payload(raw if isinstance(raw, bytes | bytearray) else str(raw).encode())
        self.table.update(message.topic.value, payload)
        if self.screen is None:
            line = {"topic": message.topic.value, "retain": message.retain, "payload": payload}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            self.screen.changed()


def _check_alive(gateway: GatewayProcess | None, nodes: list[DemoNode]) -> None:
    """Raise if the gateway (None: chaos has it down) or a node's firmware stopped on its own."""
    if gateway is not None and not gateway.running:
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


@dataclass
class Options:
    """The command's options, as given."""

    broker_url: str | None
    duration: float | None
    as_json: bool
    air_quality: int
    traffic: int
    seed: int
    speedup: float
    chaos: bool


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether ``event`` was set within ``timeout_s``."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(0.0, timeout_s))
    return event.is_set()


async def _run(options: Options) -> LiveTable:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # HUP: the terminal closed
        loop.add_signal_handler(signum, stop.set)
    counted = asyncio.Event()

    def say(text: str) -> None:
        _say(text, options.as_json)

    def changed() -> None:  # from the link relays' threads
        loop.call_soon_threadsafe(counted.set)

    tally = Tally(changed=changed)
    async with contextlib.AsyncExitStack() as stack:
        embedded: EmbeddedBroker | None = None
        if options.broker_url is None:
            broker, embedded = await stack.enter_async_context(
                embedded_broker(tally.acknowledged))
            say(f"broker: amqtt in this process at {broker.url} (MQTT 3.1.1)")
        else:
            broker = Broker.from_url(options.broker_url)
            say(f"broker: {broker.url}")
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssdemo-")))
        nodes = stack.enter_context(street(options.air_quality, options.traffic, options.seed,
                                           options.speedup))
        table = LiveTable([n.entry.name for n in nodes])
        chaos: Chaos | None = None
        screen: Screen | None = None
        subscription = Subscription(broker, table, None, say)

        def status() -> str:
            line = f"{street_time(nodes[0].scene)}   {subscription.state}"
            if chaos is not None:
                line += f"\nchaos: {tally.counts().line()}" + \
                    (f"  | now: {chaos.down}" if chaos.down else "")
            return line

        if not options.as_json:
            screen = Screen(table, tty=sys.stdout.isatty(), status=status,
                            header=f"StreetSense demo: {broker.mosquitto_sub(TOPIC)}   "
                                   f"(Ctrl-C ends it)")
            subscription.screen = screen
        client = await subscription.connect()  # an unreachable broker is an error here
        follower = asyncio.create_task(subscription.run(client))
        stack.push_async_callback(_ended, follower)
        gateway = GatewayProcess(
            workdir=workdir / "gateway", mqtt_url=broker.url, site=DEMO_TOPICS.site,
            gateway_id=DEMO_TOPICS.gateway_id, prefix=DEMO_TOPICS.prefix,
            nodes=[n.entry for n in nodes],
            serial=[SerialEntry(n.board.port, f"serial-{n.entry.id}") for n in nodes],
            settings={"mqtt": {**broker.gateway_settings(),
                               "client_id": f"streetsense-demo-gw-{os.getpid()}"},
                      "health": {"interval_s": 15}},
        )  # fmt: skip
        # Off the event loop: the embedded broker runs on it and must ack the gateway's goodbye.
        stack.push_async_callback(asyncio.to_thread, gateway.close)
        await asyncio.to_thread(gateway.start)
        for node in nodes:
            node.board.link.tap = tally.link_tap()
            node.board.start()
        summary = ", ".join(f"{n.entry.name} ({n.entry.kind}, {n.entry.location})" for n in nodes)
        say(f"nodes: {summary}")
        say(f"gateway: {DEMO_TOPICS.gateway_id}, site {DEMO_TOPICS.site}; "
            f"see it all with: {broker.mosquitto_sub(TOPIC)}")
        end = None if options.duration is None else loop.time() + options.duration
        faults: asyncio.Task[None] | None = None
        drained = False
        if options.chaos and embedded is not None:
            chaos = Chaos(options.seed, embedded, gateway, tally, say)
            say(f"chaos: broker restarts and gateway SIGKILLs at seeded moments (seed "
                f"{options.seed}); counting frames by (node, boot, seq)")
            faults = asyncio.create_task(chaos.run(end if end is not None else float("inf")))
            stack.push_async_callback(_ended, faults)
        while not stop.is_set():
            timeout = 1.0 if end is None else min(1.0, end - loop.time())
            if timeout <= 0:
                break
            await _wait(stop, timeout)
            for task in (follower, faults):
                if task is not None and task.done():
                    task.result()  # what ended it is raised (a finished chaos: nothing)
            if screen is not None:
                screen.tick()
            _check_alive(None if chaos is not None and chaos.down else gateway, nodes)
        if faults is not None:
            await _cancelled(faults)  # its clean-up brings the broker and gateway back up
            drained = await _drain(tally, counted, stop, say)
        if screen is not None:
            screen.tick(final=True)
        say(f"demo ended: {table.messages} messages from {len(table.rows)} nodes")
        if chaos is not None:
            _verdict(tally, drained, gateway.log(), say)
    return table


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; what it raised, other than the cancel, is raised."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _ended(task: asyncio.Task[None]) -> None:
    """On the way out (an error may be on its way up): cancel ``task`` and let it finish."""
    if not task.done():
        task.cancel()
        await asyncio.wait([task])


async def _drain(tally: Tally, counted: asyncio.Event, stop: asyncio.Event,
                 say: Callable[[str], None]) -> bool:
    """Wait until every frame sent so far is published (or `DRAIN_S`); False if Ctrl-C
    ended the wait first."""
    tally.close()
    say(f"chaos over: waiting up to {DRAIN_S:g} s until every frame sent is published "
        f"({len(tally.missing())} to go; Ctrl-C skips)")
    stop.clear()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_S
    while tally.missing() and not stop.is_set() and loop.time() < deadline:
        counted.clear()
        await _wait(counted, min(1.0, deadline - loop.time()))
    return not stop.is_set()


class Stopped(click.ClickException):
    """Ctrl-C before the chaos result was in."""

    exit_code = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _verdict(tally: Tally, drained: bool, gateway_log: str, say: Callable[[str], None]) -> None:
    """The chaos result; an error (exit 1) if a frame is missing or a duplicate has no fault
    between its copies, with the gateway's last log lines (its folder is removed at exit)."""
    counts = tally.counts()
    line = f"chaos result: {counts.line()}"
    if counts.missing and not drained:
        raise Stopped(f"{line}. Stopped while {counts.missing} frames were still on their way "
                      f"to the broker: no result. Let the wait finish to get one.")
    if counts.missing or counts.unexplained:
        tail = "\n".join(gateway_log.splitlines()[-20:])
        raise click.ClickException(
            f"{line}. Frames the nodes sent never reached the broker, or came twice with no "
            f"fault between: that is a bug; please report it with this output. The gateway's "
            f"last log lines:\n{tail}")
    say(f"{line}: nothing lost; duplicates only across a fault, as at-least-once allows.")


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
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the street scenes (and of --chaos).")
@click.option("--speedup", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Street seconds per real second (60: an hour of the street's day each minute).")
@click.option("--chaos", is_flag=True,
              help="Restart the embedded broker and SIGKILL the gateway at seeded random "
                   "moments; count frames sent, published, missing and duplicated. Exits 1 "
                   "if anything is missing at the end.")
def demo(broker_url: str | None, duration: float | None, as_json: bool, air_quality: int,
         traffic: int, seed: int, speedup: float, chaos: bool) -> None:
    """Run the main job with nothing installed: emulated nodes (real firmware on emulated
    boards) -> the gateway -> an MQTT broker, with a live table of what is published."""
    if air_quality + traffic == 0:
        raise click.UsageError("no nodes: give --air-quality or --traffic at least 1")
    if broker_url is not None:
        Broker.from_url(broker_url)  # a bad URL is a usage error before anything starts
        if chaos:
            raise click.UsageError("--chaos restarts the broker, so it runs with the embedded "
                                   "one: leave out --broker.")
    options = Options(broker_url, duration, as_json, air_quality, traffic, seed, speedup, chaos)
    try:
        asyncio.run(_run(options))
    except (GatewayError, NodeError) as exc:
        raise click.ClickException(str(exc)) from None
    except aiomqtt.MqttError as exc:
        raise click.ClickException(f"MQTT broker: {exc}") from None


if __name__ == "__main__":
    demo()
