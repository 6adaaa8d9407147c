"""Commands from MQTT to nodes, and their results back.

A JSON request on ``<prefix>/<site>/<node>/cmd/<name>`` becomes a signed downlink: ``config``
a CONFIG frame (``{"settings": {...}}``), ``time`` a TIME push, any other name (``reboot``,
``identify``, ``calibrate``, ``factory_reset``...) a COMMAND frame (``{"args": {...}}``).
Before that it must pass, in this order: a JSON object of at most 16 KiB, a lower-case name,
not a retained message, the operator's signature and freshness (``command_auth``), a node
enabled in the registry and heard by this gateway, a ``confirm`` naming the node for
``factory_reset`` and for settings that change its identity, values within
``protocol.limits``, and the node's rate limit. Whatever fails gets a result from the gateway
itself saying why (``docs/mqtt.md``), and nothing is signed for the node.

The node's RESULT is published on ``.../cmd/<name>/result`` (by the session, through the
journal) with the request's MQTT 5 correlation data, and with the ``id`` from the request
payload if it had one. Without a RESULT the request is resent in a new frame (a new
downlink seq, the same request id, SPEC §6.4); after the last try a ``TIMEOUT`` result is
published.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streetsense.protocol import ProtocolError, limits, names
from streetsense.protocol.messages import COMMAND, CONFIG

from . import payloads
from .command_auth import CommandAuth
from .logbudget import LogBudget
from .node_state import NodeState
from .publisher import Message, Publisher
from .registry import NodeInfo
from .session import Session
from .topics import Topics

if TYPE_CHECKING:
    from .ota import Ota

__all__ = ["Commands", "parse_request"]

log = logging.getLogger("streetsense.gateway.commands")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_REQUEST = 16 * 1024  # bytes of a command's JSON
IDENTITY_SETTINGS = ("node_id", "key", "kind")  # a config touching these needs "confirm"
Refusal = tuple[str, str]  # (result code, why)


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

    @property
    def request(self) -> int:
        """The request number the node's RESULT will echo."""
        return int(self.body[names.COMMAND_REQUEST if self.mtype == COMMAND
                             else names.CONFIG_REQUEST])


class Commands:
    """Turns command messages into downlinks and matches the nodes' RESULTs to them."""

    def __init__(self, session: Session, publisher: Publisher, topics: Topics, *,
                 auth: CommandAuth, lookup_name: Callable[[str], NodeInfo | None],
                 per_node_per_minute: int = 10, resend_after_s: float = 5.0,
                 attempts: int = 3, clock: Callable[[], float] = time.time) -> None:
        self._session = session
        self._publisher = publisher
        self._topics = topics
        self._auth = auth
        self._lookup_name = lookup_name
        self.per_node_per_minute = per_node_per_minute
        self.resend_after_s = resend_after_s
        self.attempts = attempts
        self._clock = clock
        self._requests = itertools.count(int(clock()) & 0xFFFFFF)
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._forwarded: dict[int, collections.deque[float]] = {}  # node -> recent times
        self._log = LogBudget(log)
        self.received = 0
        self.sent = 0
        self.timeouts = 0
        self.refused = 0
        self.ota: Ota | None = None  # cmd/ota starts a firmware update (gateway/ota.py)

    @property
    def subscription(self) -> str:
        return self._topics.command("+", "+")

    def match_result(self, node_id: int,
                     request: int) -> tuple[str, bytes | None, str | None] | None:
        """(command name, correlation data, request id) of a RESULT; stops its resends."""
        pending = self._pending.pop((node_id, request), None)
        if pending is None:
            return None
        if pending.task is not None:
            pending.task.cancel()
        return pending.name, pending.correlation, pending.request_id

    async def on_message(self, message: Message) -> None:
        """Handle one message on ``<prefix>/<site>/<node>/cmd/<name>``."""
        topic = message.topic
        parts = topic.split("/")
        if len(parts) < 3 or parts[-2] != "cmd":
            return
        node_name, name = parts[-3], parts[-1]
        if not self._session.answers_commands_for(node_name):
            return  # another gateway owns the node: it answers
        self.received += 1
        correlation = message.correlation
        request, refusal = parse_request(message.payload)
        request_id = None if request.get("id") is None else str(request["id"])
        target = refusal or self._check(topic, node_name, name, request, message.retain)
        if not isinstance(target, NodeState):
            await self._refuse(node_name, name, correlation, request_id, *target)
        elif name == "ota" and self.ota is not None:
            code, text = await self.ota.start(target, request)
            await self._gateway_result(node_name, name, correlation, request_id, code, text)
        elif name == "time":
            await self._session.send_time(target)
            await self._gateway_result(node_name, name, correlation, request_id, "OK",
                                       "TIME sent")
        else:
            await self._forward(target, name, request, correlation, request_id)

    def _check(self, topic: str, node_name: str, name: str, request: dict[str, Any],
               retained: bool) -> NodeState | Refusal:
        """The node the request goes to, or why it may not go anywhere."""
        if not _NAME.match(name):
            return "BAD_REQUEST", "command names are lower-case words"
        if retained:
            return ("REPLAYED", "a retained command is never run: clear it by publishing an "
                    "empty retained message on its topic")
        target = self._auth.refusal(topic, request) or self._target(node_name)
        if not isinstance(target, NodeState):
            return target
        return (_confirm_refusal(node_name, name, request) or _limits_refusal(name, request)
                or self._rate_refusal(node_name, target) or target)

    def _registered(self, node_name: str) -> NodeInfo | Refusal:
        """The node's registry entry, or why there is none that may be commanded."""
        info = self._lookup_name(node_name)
        if info is None or not info.enabled:
            state = "not in the registry" if info is None else "disabled in the registry"
            return "NODE_UNAVAILABLE", f"node {node_name} is {state}"
        return info

    def _target(self, node_name: str) -> NodeState | Refusal:
        """The node named, if it is enabled in the registry and heard by this gateway."""
        info = self._registered(node_name)
        if not isinstance(info, NodeInfo):
            return info
        node = self._session.nodes.get(info.id)
        if node is None or node.current_boot is None or node.link is None:
            return "NODE_UNAVAILABLE", f"node {node_name} has not been heard by this gateway"
        node.info = info  # the registry's current key signs the downlink
        return node

    def _rate_refusal(self, node_name: str, node: NodeState) -> Refusal | None:
        now = time.monotonic()
        recent = self._forwarded.setdefault(node.node_id, collections.deque())
        while recent and now - recent[0] >= 60.0:
            recent.popleft()
        if len(recent) >= self.per_node_per_minute:
            return "RATE_LIMITED", (f"at most {self.per_node_per_minute} commands a minute "
                                    f"to {node_name}: try again in "
                                    f"{60.0 - (now - recent[0]):.0f} s")
        recent.append(now)
        return None

    async def _forward(self, node: NodeState, name: str, request: dict[str, Any],
                       correlation: bytes | None, request_id: str | None) -> None:
        number = next(self._requests)
        if name == "config":
            mtype, body = CONFIG, {names.CONFIG_REQUEST: number,
                                   names.CONFIG_SETTINGS: request.get("settings", {})}
        else:
            mtype, body = COMMAND, {names.COMMAND_REQUEST: number, names.COMMAND_NAME: name}
            if request.get("args"):
                body[names.COMMAND_ARGS] = request["args"]
        pending = _Pending(name, correlation, request_id, body, mtype, node)
        self._pending[(node.node_id, number)] = pending
        try:
            await self._send(pending)
        except (ProtocolError, ValueError, TypeError, RecursionError) as exc:
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
                 pending.request, pending.node.info.name, seq)

    async def _resend_until_result(self, node_id: int, number: int) -> None:
        while True:
            await asyncio.sleep(self.resend_after_s)
            pending = self._pending.get((node_id, number))
            if pending is None:
                return
            gone = self._registered(pending.node.info.name)
            if not isinstance(gone, NodeInfo):  # removed or disabled since: nothing signed
                del self._pending[(node_id, number)]
                await self._gateway_result(pending.node.info.name, pending.name,
                                           pending.correlation, pending.request_id, *gone)
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
        self._log.log(logging.WARNING, "command %s for %s refused, %s: %s", name, node_name,
                      code, text)
        await self._gateway_result(node_name, name, correlation, request_id, code, text)

    async def _gateway_result(self, node_name: str, name: str, correlation: bytes | None,
                              request_id: str | None, code: str, text: str) -> None:
        payload: dict[str, Any] = {"node": node_name, "command": name, "code": code,
                                   "message": text, "from": "gateway",
                                   "gateway": self._topics.gateway_id,
                                   "at": payloads.iso_utc(self._clock(), ms=True)}
        if request_id is not None:
            payload["id"] = request_id
        await self._publisher.publish_now(self._topics.result(node_name, name),
                                          payloads.encode(payload), correlation=correlation)

    async def close(self) -> None:
        tasks = [p.task for p in self._pending.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def parse_request(payload: Any) -> tuple[dict[str, Any], Refusal | None]:
    """The request object, or ``{}`` and why it is not one (any size, any depth)."""
    raw = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
    if len(raw) > MAX_REQUEST:
        return {}, ("BAD_REQUEST", f"{len(raw)} bytes: a request has {MAX_REQUEST} at most")
    try:
        request = json.loads(raw or b"{}")
    except RecursionError:
        return {}, ("BAD_REQUEST", "nested too deeply")
    except ValueError as exc:
        return {}, ("BAD_REQUEST", f"not JSON: {exc}")
    if not isinstance(request, dict):
        return {}, ("BAD_REQUEST", "the request must be a JSON object")
    return request, None


def _confirm_refusal(node_name: str, name: str, request: dict[str, Any]) -> Refusal | None:
    settings = request.get("settings")
    identity = name == "factory_reset" or (
        name == "config" and isinstance(settings, dict)
        and any(key in settings for key in IDENTITY_SETTINGS))
    if identity and request.get("confirm") != node_name:
        what = "wipes" if name == "factory_reset" else "changes"
        return "CONFIRM_REQUIRED", (f"{name} {what} the identity of {node_name}: send "
                                    f'"confirm": "{node_name}" with it')
    return None


def _limits_refusal(name: str, request: dict[str, Any]) -> Refusal | None:
    """``protocol.limits`` on the settings of a config, the args of a command."""
    key = "settings" if name == "config" else "args"
    values = request.get(key) or {}
    if not isinstance(values, dict):
        return "BAD_ARGS", f"{key} must be a JSON object"
    if name == "config":
        errors = [f"{setting}: {error}" for setting, value in values.items()
                  if (error := limits.setting_error(setting, value))]
        return ("BAD_ARGS", "; ".join(errors)) if errors else None
    error = limits.argument_error(name, values)
    return None if error is None else ("BAD_ARGS", error)
