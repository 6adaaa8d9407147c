"""Commands from MQTT to nodes, and their results back.

A JSON request on ``<prefix>/<site>/<node>/cmd/<name>`` becomes a signed downlink: ``config``
a CONFIG frame (``{"settings": {...}}``), ``time`` a TIME push, any other name (``reboot``,
``identify``, ``calibrate``, ``factory_reset``...) a COMMAND frame (``{"args": {...}}``).
The node's RESULT is published on ``.../cmd/<name>/result`` (by the session, through the
journal) with the request's MQTT 5 correlation data, and with the ``id`` from the request
payload if it had one. Without a RESULT the request is resent in a new frame (a new
downlink seq, the same request id, SPEC §6.4); after the last try a ``TIMEOUT`` result is
published. Requests the gateway cannot forward get a result from the gateway itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from streetsense.protocol import ProtocolError
from streetsense.protocol.messages import COMMAND, CONFIG

from . import payloads
from .publisher import Publisher
from .session import NodeState, Session, Topics

__all__ = ["Commands"]

log = logging.getLogger("streetsense.gateway.commands")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass
class _Pending:
    name: str
    correlation: bytes | None
    request_id: str | None
    body: dict[int, Any]
    mtype: int
    node: NodeState
    attempts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Commands:
    """Turns command messages into downlinks and matches the nodes' RESULTs to them."""

    def __init__(self, session: Session, publisher: Publisher, topics: Topics, *,
                 resend_after_s: float = 5.0, attempts: int = 3,
                 clock: Callable[[], float] = time.time) -> None:
        self._session = session
        self._publisher = publisher
        self._topics = topics
        self.resend_after_s = resend_after_s
        self.attempts = attempts
        self._clock = clock
        self._requests = itertools.count(int(clock()) & 0xFFFFFF)
        self._pending: dict[tuple[int, int], _Pending] = {}
        self.received = 0
        self.sent = 0
        self.timeouts = 0
        self.refused = 0

    @property
    def subscription(self) -> str:
        return self._topics.node("+", "cmd/+")

    def match_result(self, node_id: int,
                     request: int) -> tuple[str, bytes | None, str | None] | None:
        """(command name, correlation data, request id) of a RESULT; stops its resends."""
        pending = self._pending.pop((node_id, request), None)
        if pending is None:
            return None
        if pending.task is not None:
            pending.task.cancel()
        return pending.name, pending.correlation, pending.request_id

    async def on_message(self, message: aiomqtt.Message) -> None:
        """Handle one message on ``<prefix>/<site>/<node>/cmd/<name>``."""
        parts = message.topic.value.split("/")
        if len(parts) < 3 or parts[-2] != "cmd":
            return
        node_name, name = parts[-3], parts[-1]
        if not self._session.answers_commands_for(node_name):
            return  # another gateway owns the node: it answers
        self.received += 1
        correlation = None
        if message.properties is not None and hasattr(message.properties, "CorrelationData"):
            correlation = bytes(message.properties.CorrelationData)
        try:
            request = json.loads(message.payload or b"{}")
            if not isinstance(request, dict):
                raise ValueError("the request must be a JSON object")
        except ValueError as exc:
            await self._refuse(node_name, name, correlation, None, "BAD_REQUEST", str(exc))
            return
        request_id = request.get("id")
        request_id = None if request_id is None else str(request_id)
        node = self._session.node_by_name(node_name)
        if not _NAME.match(name):
            await self._refuse(node_name, name, correlation, request_id, "BAD_REQUEST",
                               "command names are lower-case words")
        elif node is None or node.current_boot is None or node.link is None:
            await self._refuse(node_name, name, correlation, request_id, "NODE_UNAVAILABLE",
                               f"node {node_name} has not been heard by this gateway")
        elif name == "time":
            await self._session.send_time(node)
            await self._gateway_result(node_name, name, correlation, request_id, "OK",
                                       "TIME sent")
        else:
            await self._forward(node, name, request, correlation, request_id)

    async def _forward(self, node: NodeState, name: str, request: dict[str, Any],
                       correlation: bytes | None, request_id: str | None) -> None:
        number = next(self._requests)
        if name == "config":
            mtype, body = CONFIG, {1: number, 2: request.get("settings", {})}
        else:
            mtype, body = COMMAND, {1: number, 2: name}
            if request.get("args"):
                body[3] = request["args"]
        pending = _Pending(name, correlation, request_id, body, mtype, node)
        self._pending[(node.node_id, number)] = pending
        try:
            await self._send(pending)
        except (ProtocolError, ValueError, TypeError) as exc:
            self._pending.pop((node.node_id, number), None)
            await self._refuse(node.info.name, name, correlation, request_id, "BAD_ARGS",
                               f"cannot encode the request: {exc}")
            return
        pending.task = asyncio.create_task(self._resend_until_result(node.node_id, number))

    async def _send(self, pending: _Pending) -> None:
        pending.attempts += 1
        try:
            seq = await self._session.send_downlink(pending.node, pending.mtype, pending.body)
        except ConnectionError as exc:
            log.warning("command %s to %s not sent (try %d): %s", pending.name,
                        pending.node.info.name, pending.attempts, exc)
            return
        self.sent += 1
        log.info("command %s (request %d) sent to %s, downlink seq %d", pending.name,
                 pending.body[1], pending.node.info.name, seq)

    async def _resend_until_result(self, node_id: int, number: int) -> None:
        while True:
            await asyncio.sleep(self.resend_after_s)
            pending = self._pending.get((node_id, number))
            if pending is None:
                return
            if pending.attempts >= self.attempts:
                del self._pending[(node_id, number)]
                self.timeouts += 1
                log.warning("command %s to %s: no RESULT after %d tries", pending.name,
                            pending.node.info.name, pending.attempts)
                await self._gateway_result(pending.node.info.name, pending.name,
                                           pending.correlation, pending.request_id, "TIMEOUT",
                                           f"no RESULT after {pending.attempts} tries")
                return
            await self._send(pending)

    async def _refuse(self, node_name: str, name: str, correlation: bytes | None,
                      request_id: str | None, code: str, text: str) -> None:
        self.refused += 1
        log.warning("command %s for %s refused: %s", name, node_name, text)
        await self._gateway_result(node_name, name, correlation, request_id, code, text)

    async def _gateway_result(self, node_name: str, name: str, correlation: bytes | None,
                              request_id: str | None, code: str, text: str) -> None:
        payload: dict[str, Any] = {"node": node_name, "command": name, "code": code,
                                   "message": text, "from": "gateway",
                                   "gateway": self._topics.gateway_id,
                                   "at": payloads.iso_utc(self._clock(), ms=True)}
        if request_id is not None:
            payload["id"] = request_id
        await self._publisher.publish_now(self._topics.node(node_name, f"cmd/{name}/result"),
                                          payloads.encode(payload), correlation=correlation)

    async def close(self) -> None:
        tasks = [p.task for p in self._pending.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
