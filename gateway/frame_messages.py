"""The frame → message mapping: what a node's verified, new frame is published as.

DATA, EVENT, STATUS, LOG and RESULT each become one journal message on the node's topic
(``payloads`` builds the JSON); HELLO becomes the node's birth info. Uptime timestamps
(clock 1) are mapped to UTC with the boot's anchor (the HELLO's arrival minus its
``uptime_ms``, or a STATUS's arrival minus its ``uptime_s``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from streetsense.protocol import Frame, names
from streetsense.protocol.messages import (
    CLOCK_UPTIME,
    DATA,
    EVENT,
    LOG,
    RESULT,
    STATUS,
)

from . import payloads
from .journal import Message
from .node_state import NodeState
from .registry import NodeInfo
from .topics import Topics

__all__ = ["NODE_DELAY_S", "Announcer", "FrameMessages", "ResultMatcher", "RetainedSink"]

log = logging.getLogger("streetsense.gateway.session")  # births are the session's news in the log

NODE_DELAY_S = 60.0  # a reading older than this when it arrives was held back at the node


class RetainedSink(Protocol):
    """Where retained node states go (the publisher keeps the latest per topic)."""

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` retained on ``topic`` now and after every reconnect."""

    def forget_retained(self, topic: str) -> None:
        """Stop republishing ``topic`` after reconnects."""


ResultMatcher = Callable[[int, int], "tuple[str, bytes | None, str | None] | None"]
# Home Assistant discovery: (topic, retained payload) pairs for a node's ``data`` message.
Announcer = Callable[[NodeInfo, dict[str, Any]], list[tuple[str, bytes]]]
Amend = Callable[[dict[str, Any], NodeInfo], None]


class FrameMessages:
    """Builds the journal messages of a node's frames (``amend`` adds derived fields to a
    ``data`` message before it is encoded)."""

    def __init__(self, *, topics: Topics, states: RetainedSink, match_result: ResultMatcher,
                 amend: Amend, announce: Announcer | None = None) -> None:
        self._topics = topics
        self._states = states
        self._match_result = match_result
        self._amend = amend
        self._announce = announce

    def origin(self, info: NodeInfo) -> payloads.Origin:
        return payloads.Origin(info.name, info.id, info.kind, self._topics.site,
                               self._topics.gateway_id)

    def _stamp(self, node: NodeState, boot: int, body: dict[Any, Any], ts_key: int,
               clock_key: int) -> payloads.Stamp | None:
        if ts_key not in body:
            return None
        ts, clock = body[ts_key], body.get(clock_key, 0)
        if clock == CLOCK_UPTIME:
            anchor = node.anchors.get(boot)
            if anchor is None:
                return payloads.Stamp(None, "uptime", ts)
            return payloads.Stamp(anchor + ts, "mapped", ts)
        return payloads.Stamp(float(ts), "utc")

    def _held_at_node(self, node: NodeState, boot: int, stamp: payloads.Stamp | None,
                      received_at: float) -> bool:
        if node.current_boot is not None and boot < node.current_boot:
            return True
        return stamp is not None and stamp.ts is not None and received_at - stamp.ts > NODE_DELAY_S

    def build(self, node: NodeState, frame: Frame, now: float
              ) -> tuple[list[Message], dict[str, Any] | None] | None:
        """(messages, the ``data`` payload if it is a DATA frame) of a new frame other than
        HELLO; None for a type this version does not publish."""
        info, body, boot, seq = node.info, frame.body, frame.boot, frame.seq
        origin = self.origin(info)
        topic = self._topics.node
        if frame.type == DATA:
            stamp = self._stamp(node, boot, body, names.DATA_TS, names.DATA_CLOCK)
            assert stamp is not None
            data = payloads.data_payload(origin, boot, seq, body, stamp, now,
                                         delayed=self._held_at_node(node, boot, stamp, now))
            self._amend(data, info)
            messages = [Message(topic(info.name, "data"), payloads.encode(data),
                                delayable=True)]
            if self._announce is not None:
                for config_topic, config in self._announce(info, data):
                    self._states.set_retained(config_topic, config)
            return messages, data
        if frame.type == EVENT:
            stamp = self._stamp(node, boot, body, names.EVENT_TS, names.EVENT_CLOCK)
            assert stamp is not None
            event = payloads.event_payload(origin, boot, seq, body, stamp, now,
                                           delayed=self._held_at_node(node, boot, stamp, now))
            return [Message(topic(info.name, "event"), payloads.encode(event),
                            delayable=True)], None
        if frame.type == STATUS:
            uptime_s = body.get(names.STATUS_UPTIME_S)
            if uptime_s is not None and boot == node.current_boot and boot not in node.anchors:
                node.anchors[boot] = now - uptime_s
            stamp = self._stamp(node, boot, body, names.STATUS_TS, names.STATUS_CLOCK)
            status = payloads.status_payload(origin, boot, seq, body, stamp, now)
            return [Message(topic(info.name, "status"), payloads.encode(status))], None
        if frame.type == LOG:
            stamp = self._stamp(node, boot, body, names.LOG_TS, names.LOG_CLOCK)
            line = payloads.log_payload(origin, boot, seq, body, stamp, now)
            return [Message(topic(info.name, "log"), payloads.encode(line))], None
        if frame.type == RESULT:
            matched = self._match_result(info.id, body[names.RESULT_REQUEST])
            name, correlation, request_id = matched or ("unknown", None, None)
            result = payloads.result_payload(origin, boot, seq, body, now, command=name,
                                             request_id=request_id)
            return [Message(self._topics.result(info.name, name),
                            payloads.encode(result), correlation=correlation)], None
        return None

    def birth(self, node: NodeState, frame: Frame, now: float) -> None:
        """A HELLO: the boot's anchor and the node's birth info (its retained ``state``)."""
        body = frame.body
        uptime_ms = body.get(names.HELLO_UPTIME_MS, 0)
        node.anchors[frame.boot] = now - uptime_ms / 1000
        for old in [b for b in node.anchors if b not in node.boots]:
            del node.anchors[old]
        firmware, reset_cause = body[names.HELLO_FIRMWARE], body[names.HELLO_RESET_CAUSE]
        node.birth = {"boot": frame.boot, "kind": body[names.HELLO_KIND], "firmware": firmware,
                      "protocol": body[names.HELLO_PROTOCOL],
                      "sensors": body[names.HELLO_SENSORS], "reset_cause": reset_cause,
                      "capabilities": body.get(names.HELLO_CAPABILITIES, []),
                      "booted_at": payloads.iso_utc(node.anchors[frame.boot], ms=True),
                      "anchors": {str(b): a for b, a in node.anchors.items()}}
        log.info("node %s (id %d) booted: boot %d, firmware %s, reset cause %s",
                 node.info.name, node.node_id, frame.boot, firmware, reset_cause)
