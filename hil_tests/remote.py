"""The remote bench, client side: drive the boards of a gateway elsewhere (``--hil-gateway``).

The gateway serves its bench when ``[hil] enabled`` (``streetsense.gateway.bench.server``
documents the protocol: JSON lines on TCP, HMAC challenge on a shared token). Here the
same driver interfaces as on a local rig are implemented as requests to it, so a scenario
runs unchanged against a remote bench. The bench's gateway is the gateway under test: it
cannot be killed from the test session, and its broker is its own (named in the bench's
description, which the plugin fetches once per session).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streetsense.gateway.bench.wire import MAX_LINE, PROTOCOL, auth_digest
from streetsense.gateway.command_auth import load_operator_key

from .artefacts import Artefacts, FrameLog
from .gateway_proc import GatewayTopics
from .rig.drivers import Board
from .rig.resources import RemoteBench

__all__ = ["BenchError", "RemoteBoard", "RemoteSession", "fetch",
           "remote_board", "remote_gateway"]


class BenchError(RuntimeError):
    """The bench refused a request or the connection; the message is the bench's."""


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "hil" or not parts.hostname or not parts.port:
        raise BenchError(f"--hil-gateway must be hil://host:port, not {url!r}")
    return parts.hostname, parts.port


def fetch(url: str, token: str, op: str | None = None, *, socket_timeout_s: float = 30.0,
          **args: Any) -> Any:
    """With a blocking connection (no event loop needed): the bench's description, or the
    result of ``op``. Used at session start and to collect artefacts after a failure."""
    with socket.create_connection(_address(url), timeout=socket_timeout_s) as sock, \
            sock.makefile("rwb") as stream:
        hello = json.loads(stream.readline())
        _check_hello(hello)
        stream.write(json.dumps({"auth": auth_digest(token, hello["nonce"])}).encode() + b"\n")
        stream.flush()
        answer = json.loads(stream.readline() or b"{}")
        if not answer.get("ok"):
            raise BenchError(f"bench {url} refused the session: {answer.get('error')}")
        if op is None:
            return answer["bench"]
        stream.write(json.dumps({"id": 1, "op": op, "args": args}).encode() + b"\n")
        stream.flush()
        reply = json.loads(stream.readline() or b"{}")
    if not reply.get("ok"):
        raise BenchError(str(reply.get("error")))
    return reply.get("result")


def _check_hello(hello: dict[str, Any]) -> None:
    if hello.get("hello") != PROTOCOL["hello"] or hello.get("version") != PROTOCOL["version"]:
        raise BenchError(f"not a StreetSense HIL bench (v{PROTOCOL['version']}): {hello}")


class RemoteSession:
    """One authenticated connection: ``await call(op, **args)``; link taps feed FrameLogs."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.info: dict[str, Any] = {}
        self.taps: dict[str, FrameLog] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(*_address(self.url),
                                                                   limit=MAX_LINE)
        hello = json.loads(await self._reader.readline())
        _check_hello(hello)
        self._send({"auth": auth_digest(self.token, hello["nonce"])})
        answer = json.loads(await self._reader.readline() or b"{}")
        if not answer.get("ok"):
            raise BenchError(f"bench {self.url} refused the session: {answer.get('error')}")
        self.info = answer["bench"]
        self._task = asyncio.create_task(self._receive(), name="hil-remote")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()

    def _send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def call(self, op: str, **args: Any) -> Any:
        """Run ``op`` on the bench; raises BenchError with the bench's reason on failure."""
        number = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        self._send({"id": number, "op": op, "args": args})
        return await future

    async def _receive(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                if message.get("event") == "link":
                    log = self.taps.get(message["board"])
                    if log is not None:
                        log.feed(message["direction"], bytes.fromhex(message["data"]))
                    continue
                future = self._pending.pop(message.get("id"), None)
                if future is None or future.done():
                    continue
                if message.get("ok"):
                    future.set_result(message.get("result"))
                else:
                    future.set_exception(BenchError(str(message.get("error"))))
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BenchError(f"bench {self.url} closed the connection"))


class _Remote:
    def __init__(self, session: RemoteSession, board: str) -> None:
        self._session = session
        self._board = board

    async def _call(self, op: str, **args: Any) -> Any:
        return await self._session.call(op, board=self._board, **args)


class RemotePower(_Remote):
    async def on(self) -> None:
        await self._call("power.on")

    async def off(self) -> None:
        await self._call("power.off")

    async def cycle(self) -> None:
        await self._call("power.cycle")


class RemoteConsole(_Remote):
    async def text(self) -> str:
        return "\n".join(await self._call("console.lines")) + "\n"

    async def wait_for(self, pattern: str, *, timeout: float) -> str:
        line: str = await self._call("console.wait_for", pattern=pattern, timeout=timeout)
        return line


class RemoteLink(_Remote):
    def __init__(self, session: RemoteSession, board: str) -> None:
        super().__init__(session, board)
        self.frames = FrameLog()
        session.taps[board] = self.frames

    async def set_faults(self, *, drop: float = 0.0, ber: float = 0.0,
                         delay_ms: int = 0) -> None:
        await self._call("link.set_faults", drop=drop, ber=ber, delay_ms=delay_ms)

    async def unplug(self) -> None:
        await self._call("link.unplug")

    async def replug(self) -> None:
        await self._call("link.replug")

    async def counters(self) -> dict[str, int]:
        result: dict[str, int] = await self._call("link.counters")
        return result


class RemoteEnvironment(_Remote):
    async def _env(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call(f"env.{method}", args=list(args), kwargs=kwargs)

    async def set_air(self, **values: float) -> None:
        await self._env("set_air", **values)

    async def vehicle(self, lane: int, speed_kmh: float, length_m: float,
                      direction: int = 1) -> None:
        await self._env("vehicle", lane, speed_kmh, length_m, direction)

    async def traffic(self, vehicles_per_hour: float, mix: dict[str, float],
                      duration_s: float, seed: int) -> list[dict[str, int]]:
        result: list[dict[str, int]] = await self._env("traffic", vehicles_per_hour, mix,
                                                       duration_s, seed)
        return result

    async def scenario(self, name: str, duration_s: float, seed: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._env("scenario", name, duration_s, seed)
        return result

    async def wait_idle(self, *, timeout: float) -> None:
        if not await self._env("wait_idle", timeout):
            raise AssertionError(f"scheduled vehicles not all driven within {timeout} s")

    async def wait_armed(self, *, timeout: float) -> None:
        if not await self._env("wait_armed", timeout):
            raise AssertionError(f"the node did not arm its detectors within {timeout} s")

    async def fault(self, sensor: str, mode: str | None) -> None:
        await self._env("fault", sensor, mode)


class RemoteBoard(Board):
    """A bench board; ``session`` is the connection it is driven through."""

    session: RemoteSession


@asynccontextmanager
async def remote_board(resource: RemoteBench, *, kind: str, settings: dict[str, Any],
                       artefacts: Artefacts) -> AsyncIterator[RemoteBoard]:
    """The bench's first board of ``kind`` (or ``resource.board``), with the test's settings
    applied when the bench can reconfigure it; its link tapped for the test."""
    session = RemoteSession(resource.url, resource.token)
    await session.connect()
    try:
        boards = [b for b in session.info["boards"]
                  if (b["name"] == resource.board if resource.board else b["kind"] == kind)]
        if not boards:
            raise BenchError(f"bench {resource.url} has no {resource.board or kind} board")
        found = boards[0]
        name, caps = found["name"], set(found["capabilities"])
        if "reconfigure" in caps:
            await session.call("board.configure", board=name, settings=settings)
            settings = {}  # written; otherwise the strategy sends them as a CONFIG
        link = RemoteLink(session, name)
        await session.call("link.tap", board=name)
        board = RemoteBoard(
            name=found["node"], node_id=found["node_id"], key=b"", kind=found["kind"], port=None,
            capabilities=frozenset(caps),
            power=RemotePower(session, name) if "power" in caps else None,
            console=RemoteConsole(session, name) if "console" in caps else None, link=link,
            environment=RemoteEnvironment(session, name) if "environment" in caps else None,
            settings=settings)
        board.session = session
        artefacts.add_text("link-frames.txt", link.frames.render)
        if "console" in caps:
            artefacts.add_text("console.txt", lambda: "\n".join(
                fetch(resource.url, resource.token, "console.lines", board=name)) + "\n")
        yield board
    finally:
        await session.close()


class RemoteGateway(GatewayTopics):
    """The bench's gateway, seen from the test: where its messages appear, and its log."""

    def __init__(self, session: RemoteSession) -> None:
        info = session.info
        self._session = session
        self.prefix, self.site, self.gateway_id = info["prefix"], info["site"], info["gateway"]
        key_file = os.environ.get("STREETSENSE_OPERATOR_KEY_FILE")
        self.operator_key = load_operator_key(Path(key_file)) if key_file else None

    def log(self) -> str:
        """The bench gateway's recent log lines (a blocking request of its own)."""
        return str(fetch(self._session.url, self._session.token, "gateway.log"))


def remote_gateway(board: Board) -> RemoteGateway:
    """The gateway serving ``board``."""
    assert isinstance(board, RemoteBoard)
    return RemoteGateway(board.session)
