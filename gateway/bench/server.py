"""The gateway serves its bench to remote HIL test sessions (``[hil] enabled``).

A tester's pytest run (``--hil-gateway hil://pi:9190``) drives the boards on this gateway's
serial ports: power and reset lines, link faults, frame taps, node consoles (and, on an
emulated bench, the sensors' environment). Off unless enabled; listens on ``[hil] listen``
(loopback by default: reach it through an SSH tunnel or a VPN).

Protocol (``streetsense.hil.remote`` is the client): JSON objects, one per line, on TCP.
The server opens with ``{"hello": "streetsense-hil", "version": 1, "nonce": HEX}``; the
client answers ``{"auth": HMAC-SHA256(token, nonce) hex}`` (the token never crosses the
wire); the server replies ``{"ok": true, "bench": INFO}`` or closes. Then requests
``{"id": N, "op": "power.cycle", "args": {...}}`` get ``{"id": N, "ok": true, "result": ...}``
or ``{"id": N, "ok": false, "error": "..."}``; after ``link.tap`` the server also pushes
``{"event": "link", "board": NAME, "direction": "up"|"down", "data": HEX}``.

The gateway sits in every board's path: `BenchLinks.wrap` (the gateway's ``link_filter``)
puts a filter between the transports and the framing layer that taps the bytes and
injects seeded faults (drop whole frames, flip bits, delay, unplug) on request, in both
directions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from streetsense.protocol import Deframer, ProtocolError, peek_node_id

from ..config import GatewayConfig
from ..logbudget import LogBudget
from ..transports.base import Link, LinkCallbacks
from .config import token_problem
from .relays import BenchPower
from .wire import PROTOCOL, auth_digest

__all__ = ["BenchBoard", "BenchLinks", "HilServer", "LinkFaults", "bench_server"]

log = logging.getLogger("streetsense.gateway.hil")

REQUEST_MAX = 64 * 1024  # a request line; what a client can make the server buffer is 2x
MAX_CLIENTS, MAX_UNAUTHENTICATED = 16, 4  # connections at once; beyond, closed at once
AUTH_TIMEOUT_S = 5.0
LOG_LINES = 5000

Tap = Callable[[str, str, bytes], None]  # (board, direction, data)


@dataclass
class LinkFaults:
    """Seeded faults on one board's byte stream, as a cable or a noisy line would make them."""

    rng: random.Random
    drop: float = 0.0  # probability of losing a whole frame
    ber: float = 0.0  # bit error rate
    delay_ms: int = 0
    plugged: bool = True
    counters: collections.Counter[str] = field(default_factory=collections.Counter)
    _partial: dict[str, bytes] = field(default_factory=dict)

    def apply(self, direction: str, data: bytes) -> bytes:
        """What is left of ``data`` after the faults (may be empty)."""
        self.counters[f"{direction}_bytes"] += len(data)
        if not self.plugged:
            self.counters["unplugged_bytes"] += len(data)
            return b""
        if self.drop:
            data = self._partial.get(direction, b"") + data
            cut = data.rfind(b"\x00") + 1
            self._partial[direction] = data[cut:]
            frames = [f + b"\x00" for f in data[: cut - 1].split(b"\x00")] if cut else []
            kept = [f for f in frames if self.rng.random() >= self.drop]
            self.counters["dropped_frames"] += len(frames) - len(kept)
            data = b"".join(kept)
        if self.ber and data:
            out = bytearray(data)
            p_byte = 1 - (1 - self.ber) ** 8
            for index in range(len(out)):
                if self.rng.random() < p_byte:
                    out[index] ^= 1 << self.rng.randrange(8)
                    self.counters["flipped_bits"] += 1
            data = bytes(out)
        return data


class _BenchLink:
    """A link as the session sees it once the bench filter is in its path."""

    def __init__(self, inner: Link, links: BenchLinks) -> None:
        self.name = inner.name
        self._inner = inner
        self._links = links

    async def send(self, data: bytes) -> None:
        faults = self._links.faults(self.name)
        self._links.tap(self.name, "down", data)
        data = faults.apply("down", data)
        if not data:
            return
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        await self._inner.send(data)


class BenchLinks:
    """Taps and fault injection for every link, between the transports and the session."""

    def __init__(self, *, seed: int = 0) -> None:
        self._seed = seed
        self._faults: dict[str, LinkFaults] = {}
        self._proxies: dict[int, _BenchLink] = {}
        self.taps: list[Tap] = []

    def faults(self, name: str) -> LinkFaults:
        """The fault settings of link ``name`` (created healthy on first use)."""
        if name not in self._faults:
            self._faults[name] = LinkFaults(random.Random(f"{self._seed}:{name}"))
        return self._faults[name]

    def tap(self, name: str, direction: str, data: bytes) -> None:
        for listener in list(self.taps):
            listener(name, direction, data)

    def wrap(self, inner: LinkCallbacks) -> LinkCallbacks:
        """The callbacks to give the transports instead of ``inner`` (the session)."""
        links = self

        class Filter:
            def on_bytes(self, link: Link, data: bytes) -> None:
                proxy = links._proxy(link)
                links.tap(link.name, "up", data)
                faults = links.faults(link.name)
                data = faults.apply("up", data)
                if not data:
                    return
                if faults.delay_ms:
                    asyncio.get_running_loop().call_later(faults.delay_ms / 1000,
                                                          inner.on_bytes, proxy, data)
                else:
                    inner.on_bytes(proxy, data)

            def on_link_state(self, link: Link, up: bool) -> None:
                inner.on_link_state(links._proxy(link), up)

        return Filter()

    def _proxy(self, link: Link) -> _BenchLink:
        proxy = self._proxies.get(id(link))
        if proxy is None:
            proxy = self._proxies[id(link)] = _BenchLink(link, self)
        return proxy


@dataclass
class BenchBoard:
    """One board of the bench: the serial port (link) it is on and what can be done to it.

    Each action is optional (None = this bench cannot). ``console`` has ``lines()`` and
    ``wait_for(pattern, timeout) -> line`` (blocking); ``environment`` has the emulated
    Environment's methods, with JSON-able results; ``configure`` rewrites the node's
    settings and restarts it (emulated benches).
    """

    name: str
    node_id: int
    node_name: str
    kind: str
    power: Callable[[str], Awaitable[None]] | None = None  # "on" | "off" | "cycle"
    console: Any = None
    environment: Any = None
    configure: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    def capabilities(self) -> list[str]:
        caps = ["link"]
        caps += ["power"] if self.power else []
        caps += ["console"] if self.console is not None else []
        caps += ["environment"] if self.environment is not None else []
        caps += ["reconfigure"] if self.configure else []
        return caps

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "node_id": self.node_id, "node": self.node_name,
                "kind": self.kind, "capabilities": self.capabilities()}


class _LogBuffer(logging.Handler):
    """The gateway's recent log lines, for a remote test's artefacts."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class HilServer:
    """Serves ``boards`` (by link name) to authenticated clients on ``host:port``.

    A board's node is learnt from its link when not given (``node_id`` 0): the first frame
    from a node that ``lookup`` knows names it (an unregistered id never does).
    """

    def __init__(self, *, listen: str, token: str, boards: list[BenchBoard],
                 links: BenchLinks, info: dict[str, Any],
                 lookup: Callable[[int], Any] | None = None) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        if problem := token_problem(token):
            raise ValueError(f"HIL bench not served: {problem}")
        self._token = token
        self._unauthenticated = 0
        self._refusals = LogBudget(log)
        self.boards = {board.name: board for board in boards}
        self.links = links
        self._info = {**PROTOCOL, **info}
        self._lookup = lookup
        self._deframers: dict[str, Deframer] = {}
        if lookup is not None:
            links.taps.append(self._learn)
        self._log = _LogBuffer()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def info(self) -> dict[str, Any]:
        """The bench's description: gateway, broker, boards and what each can do."""
        return {**self._info, "boards": [b.describe() for b in self.boards.values()]}

    def _learn(self, name: str, direction: str, data: bytes) -> None:
        board = self.boards.get(name)
        if board is None or board.node_id or direction != "up" or self._lookup is None:
            return
        for item in self._deframers.setdefault(name, Deframer()).feed(data):
            node_id = None if isinstance(item, ProtocolError) else peek_node_id(item)
            if node_id is None:
                continue
            info = self._lookup(node_id)
            if info is not None:
                board.node_id, board.node_name, board.kind = info.id, info.name, info.kind
                del self._deframers[name]
                log.info("HIL bench: %s carries node %s (id %d)", name, info.name, info.id)
                return

    async def start(self) -> None:
        """Listen (the bound port is in ``self.port``, useful with port 0)."""
        logging.getLogger("streetsense").addHandler(self._log)
        self._server = await asyncio.start_server(self._client, self.host, self.port,
                                                  limit=REQUEST_MAX)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("HIL bench serving %d boards on %s:%d", len(self.boards), self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        logging.getLogger("streetsense").removeHandler(self._log)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        peer = writer.get_extra_info("peername")
        tap: Tap | None = None
        if len(self._clients) > MAX_CLIENTS or self._unauthenticated >= MAX_UNAUTHENTICATED:
            self._refusals.log(logging.WARNING, "HIL client %s refused: %d connections, %d "
                               "of them not authenticated", peer, len(self._clients) - 1,
                               self._unauthenticated)
            self._clients.discard(task)
            writer.transport.abort()
            return
        try:
            self._unauthenticated += 1
            try:
                good = await self._authenticate(reader, writer)
            finally:
                self._unauthenticated -= 1
            if not good:
                self._refusals.log(logging.WARNING, "HIL client %s refused: bad token", peer)
                return
            log.info("HIL client %s connected", peer)

            def send_event(board: str, direction: str, data: bytes) -> None:
                # Called in the gateway's data path: a gone client must not disturb it.
                with contextlib.suppress(ConnectionError):
                    _write(writer, {"event": "link", "board": board, "direction": direction,
                                    "data": data.hex()})

            tap = send_event
            # Requests run concurrently (a console wait must not hold up a power cycle).
            async with asyncio.TaskGroup() as group:
                while line := await reader.readline():
                    group.create_task(self._answer(writer, json.loads(line), tap))
        except* (ConnectionError, json.JSONDecodeError, asyncio.IncompleteReadError,
                 ValueError, TimeoutError) as exc:
            log.info("HIL client %s gone: %r", peer, exc)
        finally:
            if tap in self.links.taps:
                self.links.taps.remove(tap)
            self._clients.discard(task)
            writer.close()

    async def _authenticate(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> bool:
        nonce = secrets.token_hex(16)
        _write(writer, {**PROTOCOL, "nonce": nonce})
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            answer = json.loads(await reader.readline() or b"{}")
        proof = answer.get("auth", "") if isinstance(answer, dict) else ""
        good = hmac.compare_digest(str(proof), auth_digest(self._token, nonce))
        _write(writer, {"ok": True, "bench": self.info} if good
               else {"ok": False, "error": "bad token"})
        await writer.drain()
        return good

    async def _answer(self, writer: asyncio.StreamWriter, request: dict[str, Any],
                      tap: Tap) -> None:
        reply: dict[str, Any] = {"id": request.get("id")}
        try:
            reply["result"] = await self._do(str(request.get("op")), request.get("args") or {},
                                              tap)
            reply["ok"] = True
        except Exception as exc:  # any failure goes back to the tester, named
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(ConnectionError):
            _write(writer, reply)

    async def _do(self, op: str, args: dict[str, Any], tap: Tap) -> Any:
        if op == "bench.info":
            return self.info
        if op == "gateway.log":
            return "\n".join(self._log.lines) + "\n"
        board = self.boards.get(str(args.get("board")))
        if board is None:
            raise KeyError(f"no board {args.get('board')!r}; boards: {sorted(self.boards)}")
        group, _, action = op.partition(".")
        if group == "link":
            return self._link(board, action, args, tap)
        if group == "power" and board.power is not None and action in ("on", "off", "cycle"):
            await board.power(action)
            return None
        if op == "console.lines" and board.console is not None:
            return board.console.lines()
        if op == "console.wait_for" and board.console is not None:
            return await asyncio.to_thread(board.console.wait_for, str(args["pattern"]),
                                           float(args["timeout"]))
        if group == "env" and board.environment is not None:
            method = getattr(board.environment, action)
            return await asyncio.to_thread(method, *args.get("args", []), **args.get("kwargs", {}))
        if op == "board.configure" and board.configure is not None:
            await board.configure(dict(args.get("settings", {})))
            return None
        raise ValueError(f"board {board.name} cannot {op}")

    def _link(self, board: BenchBoard, action: str, args: dict[str, Any], tap: Tap) -> Any:
        faults = self.links.faults(board.name)
        if action == "tap":
            if tap not in self.links.taps:
                self.links.taps.append(tap)
        elif action == "set_faults":
            faults.drop = float(args.get("drop", 0.0))
            faults.ber = float(args.get("ber", 0.0))
            faults.delay_ms = int(args.get("delay_ms", 0))
        elif action in ("unplug", "replug"):
            faults.plugged = action == "replug"
        elif action == "counters":
            return dict(faults.counters)
        else:
            raise ValueError(f"unknown link action {action!r}")
        return None


def _write(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    if writer.is_closing():
        raise ConnectionError("client gone")
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def bench_server(config: GatewayConfig, links: BenchLinks, lookup: Callable[[int], Any], *,
                 pin_factory: Any = None) -> HilServer:
    """The HIL server of a real bench: one board per ``[[serial]]`` port, its power on the
    relays of ``[hil.relays.<port>]`` (gpiozero; ``pin_factory`` for tests), its node learnt
    from the link. ``lookup`` is the registry's (node id -> node info)."""
    assert config.hil.token_file is not None, "load_config requires it when enabled"
    boards = []
    for port in config.serial:
        lines = config.hil.relays.get(port.name, {})
        relays = BenchPower(lines, pin_factory=pin_factory) if "power" in lines else None
        boards.append(BenchBoard(name=port.name, node_id=0, node_name="", kind="",
                                 power=_power(relays) if relays is not None else None))
    return HilServer(listen=config.hil.listen, token=config.hil.token_file.read_text().strip(),
                     boards=boards, links=links, lookup=lookup,
                     info={"gateway": config.gateway.id, "site": config.gateway.site,
                           "prefix": config.mqtt.prefix, "mqtt_url": _public(config.mqtt.url)})


def _power(relays: BenchPower) -> Callable[[str], Awaitable[None]]:
    async def power(action: str) -> None:
        if action == "on":
            relays.on()
        elif action == "off":
            relays.off()
        else:
            await relays.cycle()

    return power


def _public(url: str) -> str:
    """The broker URL without credentials (the tester connects with its own)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
