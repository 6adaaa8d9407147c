"""The gateway service: wires transports → framing → session → journal → publisher, runs them.

``Gateway(config)`` builds every layer from a ``GatewayConfig``; ``async with
gateway.running():`` opens the journal, restores the replay state, starts the named tasks
(transports, committer, publisher, housekeeping, health) and stops them cleanly on exit
(nodes and gateway reported offline, journal closed). Data flows one way; commands come back
down through ``commands`` → ``session`` → the node's link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import payloads
from .bridge import Bridge
from .bundles import BundleStore
from .command_auth import CommandAuth, load_operator_key
from .commands import Commands
from .config import GatewayConfig
from .discovery import HomeAssistantDiscovery
from .framing import Framing, Rejections
from .journal import Journal, Row
from .metrics import Metrics
from .mqtt_wire import topic_matches
from .node_state import NodeState
from .ota import Ota
from .ownership import Ownership
from .publisher import BrokerSettings, Message, Publisher
from .registry import NodeInfo, Registry
from .runlock import RunLock
from .session import Deriver, Session
from .topics import Topics
from .transports.base import LinkCallbacks, Transport
from .transports.serial import PortSpec, SerialTransport
from .version import gateway_version
from .web import HttpServer, StatusBoard, serve_http

if TYPE_CHECKING:
    from .bench.server import BenchLinks, HilServer

__all__ = ["Gateway"]

log = logging.getLogger("streetsense.gateway")

HOUSEKEEPING_S = 1.0
REGISTRY_CHECK_S = 5.0
TIME_PUSH_S = 6 * 3600.0  # nodes get the time again this often (their clocks drift)
CANCEL_AGAIN_S = 0.5  # a task still running this long after its cancellation gets another


class Gateway:
    """One gateway: ``async with Gateway(config).running() as gw: ...``.

    ``derivers`` are the derived-value hooks (default: those the ``[derived]`` section asks
    for); ``transports`` are extra transports beside the configured serial ports and BLE;
    ``link_filter`` wraps the framing layer's link callbacks before the transports get them
    (the HIL bench's taps and fault injection: ``BenchLinks.wrap``).
    """

    def __init__(self, config: GatewayConfig, *, derivers: Sequence[Deriver] | None = None,
                 transports: Sequence[Transport] = (), registry: Registry | None = None,
                 link_filter: Callable[[LinkCallbacks], LinkCallbacks] | None = None) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.prefix, config.gateway.site, config.gateway.id)
        self.registry = registry or Registry.load(config.registry_path)
        from .derived import PmCorrection, build_derivers

        if derivers is None:
            derivers = build_derivers(aqi=config.derived.aqi, traffic=config.derived.traffic,
                                      pcu=config.derived.pcu,
                                      pm_correction=config.derived.pm_correction)
        self._derivers = list(derivers)
        # The `data` message carries the corrected PM beside the raw (docs/mqtt.md).
        self._amenders = [PmCorrection(config.derived.pm_correction)]
        self._extra_transports = list(transports)
        self.hil: HilServer | None = None
        self._bench_links: BenchLinks | None = None
        if config.hil.enabled and link_filter is None:
            from .bench.server import BenchLinks

            self._bench_links = BenchLinks()  # the bench's taps and fault injection
            link_filter = self._bench_links.wrap
        self._link_filter = link_filter
        self.metrics = Metrics()
        self.metrics.watch_nodes(self._nodes_online)
        self.status = StatusBoard(self.metrics, topics=self.topics, nodes=self._status_nodes,
                                  broker=self._broker_state)
        self.http_server: HttpServer | None = None
        self.journal: Journal | None = None
        self.framing: Framing | None = None
        self.session: Session | None = None
        self.publisher: Publisher | None = None
        self.commands: Commands | None = None
        self.ota: Ota | None = None
        self.command_auth: CommandAuth | None = None
        self.bridge: Bridge | None = None
        self.ownership: Ownership | None = None
        self.transports: list[Transport] = []
        self.started_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()  # of MQTT messages
        self.failed = asyncio.Event()
        self.stop_step = ""  # the step of stop() under way
        self._run_lock = RunLock(config.journal.path)

    # ---- wiring -------------------------------------------------------------------------

    def _lookup(self, node_id: int) -> NodeInfo | None:
        return self.registry.lookup(node_id)

    def _build(self) -> None:
        cfg = self.config
        self.ownership = Ownership(cfg.gateway.id, prefix=cfg.mqtt.prefix,
                                   site=cfg.gateway.site,
                                   claim_after_s=cfg.ownership.claim_after_s) \
            if cfg.ownership.enabled else None
        journal = Journal(cfg.journal.path, max_bytes=cfg.journal.max_bytes,
                          when_full=cfg.journal.when_full)
        self.journal = journal
        publisher = Publisher(
            BrokerSettings.from_config(cfg.mqtt), journal,
            state_topic=self.topics.gateway("state"), online_payload=self._online_payload,
            offline_payload=payloads.encode(self._gateway_state(online=False)),
            subscriptions=[self.topics.command("+", "+"), self.topics.gateway("request/#"),
                           self.topics.node("_bundles", "+"),
                           *(self.ownership.subscriptions if self.ownership else [])],
            metrics=self.metrics)
        self.publisher = publisher
        rejections = Rejections(self.metrics)
        session = Session(lookup=self._lookup, journal=journal, topics=self.topics,
                          states=publisher, on_committed=self._committed,
                          match_result=self._match_result,
                          derivers=self._derivers, amenders=self._amenders,
                          rejections=rejections,
                          announce=HomeAssistantDiscovery.from_config(cfg).on_data
                          if cfg.homeassistant.discovery else None,
                          ownership=self.ownership)
        self.session = session
        key_file = cfg.commands.operator_key_file
        self.command_auth = CommandAuth(None if key_file is None else load_operator_key(key_file),
                                        max_age_s=cfg.commands.max_age_s)
        commands = Commands(
            session, publisher, self.topics, auth=self.command_auth,
            lookup_name=self.registry.by_name,
            per_node_per_minute=cfg.commands.per_node_per_minute)
        self.commands = commands
        self.ota = Ota(session, publisher, self.topics, journal,
                       BundleStore(Path(f"{cfg.journal.path}.bundles")))
        session.ota = commands.ota = self.ota
        self.bridge = Bridge(self.topics, self.registry, publisher, auth=self.command_auth,
                             reload_registry=self._reload_registry, renamed=self._node_renamed,
                             removed=self._node_removed, clock=time.time)
        self.bridge.publish_nodes()
        self.framing = Framing(lookup=self._lookup, on_frame=session.on_frame,
                               rejections=rejections)
        callbacks: LinkCallbacks = self.framing
        if self._link_filter is not None:
            callbacks = self._link_filter(self.framing)
        ports = [PortSpec(p.path, p.baud, p.name) for p in cfg.serial]
        for port in ports:  # down until it opens: a port that never does is not healthy
            self.metrics.set_port(port.link_name, False)
        self.transports = [SerialTransport(ports, callbacks)] if ports else []
        if cfg.ble.enabled:
            from .transports.ble import BleTransport  # bleak only when BLE is on

            self.transports.append(BleTransport.from_config(cfg.ble, callbacks,
                                                            self.registry.lookup))
        self.transports += self._extra_transports

    def _match_result(self, node_id: int,
                      request: int) -> tuple[str, bytes | None, str | None] | None:
        assert self.commands is not None
        return self.commands.match_result(node_id, request)

    async def _messages(self) -> None:
        """Messages of the subscriptions, from the publisher's iterator: bridge requests and
        commands for nodes (each handled in its own task: it may wait for the broker or the
        node), and (ownership) the site's states."""
        assert self.publisher is not None and self.session is not None
        async for message in self.publisher.messages():
            if self.ownership is not None and any(
                    topic_matches(sub, message.topic) for sub in self.ownership.subscriptions):
                self.session.on_state(message.topic, message.payload)
            else:
                task = asyncio.create_task(self._handle(message))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)

    async def _handle(self, message: Message) -> None:
        assert self.bridge is not None and self.commands is not None
        if self.bridge.handles(message.topic):
            await self.bridge.on_message(message)
        elif self.ota is not None and self.ota.handles(message.topic):
            self.ota.on_bundle(message.topic, message.payload)
        else:
            await self.commands.on_message(message)

    async def _ownership_sync(self, ownership: Ownership) -> None:
        """Claims may start once the subscriptions of a first connection are in place."""
        assert self.publisher is not None
        await self.publisher.connected.wait()
        ownership.subscribed()

    def _reload_registry(self) -> None:
        if self.registry.reload_if_changed():
            self.registry_changed()

    def _node_renamed(self, old_name: str, info: NodeInfo) -> None:
        """A bridge rename: the old name's retained state cleared, its series dropped, the
        state published under the new name."""
        assert self.publisher is not None and self.session is not None
        self.publisher.set_retained(self.topics.node(old_name, "state"), b"")
        self.metrics.forget_node(old_name)
        self.session.refresh(info.id)

    def _node_removed(self, info: NodeInfo) -> None:
        """A bridge removal: the node's retained state cleared, its series and session gone
        (its frames are now rejected as from an unknown node)."""
        assert self.publisher is not None and self.session is not None
        self.publisher.set_retained(self.topics.node(info.name, "state"), b"")
        self.metrics.forget_node(info.name)
        self.session.nodes.pop(info.id, None)

    def _committed(self, rows: list[Row]) -> None:
        assert self.publisher is not None
        self.publisher.offer(rows)
        self.status.on_rows(rows)

    def _status_nodes(self) -> list[tuple[NodeInfo, NodeState | None]]:
        nodes = {} if self.session is None else self.session.nodes
        return [(info, nodes.get(info.id)) for info in self.registry]

    def _nodes_online(self) -> dict[str, bool]:
        return {info.name: state is not None and state.online
                for info, state in self._status_nodes()}

    def _broker_state(self) -> dict[str, Any]:
        publisher = self.publisher
        if publisher is None:
            return {}
        return {"url": publisher.member_url, "last_error": publisher.last_error}

    def _gateway_state(self, *, online: bool) -> dict[str, Any]:
        state: dict[str, Any] = {"state": "online" if online else "offline",
                                 "gateway": self.config.gateway.id,
                                 "site": self.config.gateway.site, "version": gateway_version()}
        if online:
            state["since"] = payloads.iso_utc(time.time(), ms=True)
            state["links"] = [p.name for p in self.config.serial]
        return state

    def _online_payload(self) -> bytes:
        return payloads.encode(self._gateway_state(online=True))

    # ---- lifecycle ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Run the gateway for the body of the ``async with``."""
        await self.start()
        try:
            if self.config.http.listen is None:
                yield self
            else:
                async with serve_http(self.metrics, self.config.http.listen,
                                      self.status) as server:
                    self.http_server = server
                    yield self
        finally:
            self.http_server = None
            await self.stop()

    async def start(self) -> None:
        """Take the journal's run lock (`GatewayRunning` if another gateway has it), build
        the layers, start the tasks."""
        self._run_lock.acquire()
        try:
            self._build()
        except BaseException:
            self._run_lock.release()
            raise
        assert self.session is not None and self.publisher is not None
        self.session.restore()
        if self.ota is not None:
            self.ota.restore()
            self._spawn(self.ota.run(), "ota")
        self.started_at = time.time()
        self._spawn(self.session.run(), "session:commit")
        self._spawn(self.publisher.run(), "mqtt")
        self._spawn(self._messages(), "mqtt:messages")
        for index, transport in enumerate(self.transports):
            self._spawn(transport.run(), f"transport:{index}")
        self._spawn(self._housekeeping(), "housekeeping")
        self._spawn(self._health_loop(), "health")
        if self.ownership is not None:
            self._spawn(self._ownership_sync(self.ownership), "ownership")
        if self._bench_links is not None:
            from .bench.server import bench_server

            self.hil = bench_server(self.config, self._bench_links, self.registry.lookup)
            await self.hil.start()
            log.info("HIL bench served on %s:%d", self.hil.host, self.hil.port)
        log.info("gateway %s (site %s) started: %d serial ports, broker %s",
                 self.config.gateway.id, self.config.gateway.site, len(self.config.serial),
                 self.publisher.settings.url)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s crashed: %r", task.get_name(), exc, exc_info=exc)
            self.failed.set()

    async def stop(self) -> None:
        """Report nodes and gateway offline (best effort), stop every task, close the journal.

        ``stop_step`` names the step under way (for a stop that overruns its deadline)."""
        self.stop_step = "closing the HIL bench server"
        if self.hil is not None:
            await self.hil.close()
            self.hil = None
        session, publisher = self.session, self.publisher
        self.stop_step = "reporting offline on MQTT"
        if publisher is not None and session is not None:
            offline = []
            for node in session.nodes.values():
                if node.online:
                    node.online = False
                    offline.append((self.topics.node(node.info.name, "state"),
                                    session.state_message(node, online=False,
                                                          reason="gateway stopped")))
            await publisher.goodbye(offline)
        self.stop_step = f"ending tasks ({', '.join(t.get_name() for t in self._tasks)})"
        pending = set(self._tasks)
        while pending:
            # Cancelled again until done: Python 3.11's asyncio.wait_for (under aiomqtt's
            # publish) returns a result that completes as the cancellation arrives and drops
            # the cancellation, and the task would go on (the health loop, for ever).
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_S)
        self._tasks.clear()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for closer in (self.commands, self.ota, session, publisher):
            if closer is not None:
                self.stop_step = f"closing the {type(closer).__name__.lower()}"
                await closer.close()
        self.stop_step = "closing the journal (a commit under way ends first)"
        if self.journal is not None:
            self.journal.close()
        self._run_lock.release()
        log.info("gateway %s stopped", self.config.gateway.id)

    async def wait(self) -> None:
        """Until a task crashes (the CLI then exits non-zero)."""
        await self.failed.wait()

    # ---- periodic work ------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        assert self.session is not None
        last_registry_check = time.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.session.check_silence(self.config.availability.offline_after_s)
            now = time.monotonic()
            if now - last_registry_check >= REGISTRY_CHECK_S:
                last_registry_check = now
                self._reload_registry()
            for node in list(self.session.nodes.values()):
                if node.online and now - node.time_sent_at >= TIME_PUSH_S:
                    await self.session.send_time(node)

    def registry_changed(self) -> None:
        """The registry was read again (a change on disk, SIGHUP): nodes gone from it
        leave the status page; the retained node list is published again."""
        self.status.forget(info.name for info in self.registry)
        if self.bridge is not None:
            self.bridge.publish_nodes()

    def health(self) -> dict[str, Any]:
        """The health document: the metrics snapshot and verdict, session and node counts."""
        assert self.session is not None and self.commands is not None
        stats = self.session.stats
        return {
            "gateway": self.config.gateway.id, "site": self.config.gateway.site,
            "at": payloads.iso_utc(time.time(), ms=True),
            "uptime_s": round(time.time() - self.started_at, 1),
            **self.metrics.health(), **self.metrics.snapshot(),
            "session": {"frames_in": stats.frames_in, "frames_new": stats.frames_new,
                        "duplicates": stats.duplicates, "acks_sent": stats.acks_sent,
                        "unknown_types": stats.unknown_types, "commits": stats.commits,
                        "standby_frames": stats.standby_frames},
            "links": {name: link for t in self.transports for name, link in t.stats().items()},
            "nodes": {"known": len(self.session.nodes),
                      "online": sum(n.online for n in self.session.nodes.values())},
            "commands": {"received": self.commands.received, "sent": self.commands.sent,
                         "timeouts": self.commands.timeouts, "refused": self.commands.refused},
        }

    async def refresh_journal_metrics(self) -> None:
        """Read the journal's depth, oldest row and size into the metrics."""
        assert self.journal is not None
        stats = await self.journal.call(self.journal.stats)
        self.metrics.set_journal(depth=stats["depth"],
                                 oldest_undelivered=stats["oldest_received_at"],
                                 size_bytes=stats["size_bytes"], max_bytes=stats["max_bytes"])

    async def _health_loop(self) -> None:
        """Journal metrics every interval; the health message too, and as soon as the broker
        connection is (back) up."""
        publisher = self.publisher
        assert publisher is not None
        while True:
            interval_s = self.config.health.interval_s  # SIGHUP may change it
            await self.refresh_journal_metrics()
            if publisher.connected.is_set():
                await publisher.publish_now(self.topics.gateway("health"),
                                            payloads.encode(self.health()))
                await asyncio.sleep(interval_s)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval_s):
                        await publisher.connected.wait()
