"""The JSON payloads the gateway publishes (docs/mqtt.md shows each with an example).

Pure functions from decoded frames (integer-keyed bodies, SPEC §5) to dicts ready for
``encode``. Field names and units follow the MQTT contract; unknown body keys are kept,
by number, under ``"extra"`` (SPEC §5: receivers keep them).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

from streetsense.protocol import names
from streetsense.protocol.messages import (
    DATA,
    EVENT,
    EVENT_VEHICLE,
    LOG,
    QUANTITIES,
    RESULT,
    SCHEMAS,
    STATUS,
)

__all__ = [
    "Origin",
    "Stamp",
    "data_payload",
    "encode",
    "event_payload",
    "iso_utc",
    "jsonable",
    "log_payload",
    "reading_key",
    "readings_payload",
    "result_payload",
    "state_payload",
    "status_payload",
]

def iso_utc(ts: float, *, ms: bool = False) -> str:
    """``2026-12-04T10:00:00Z`` (or with milliseconds) for a Unix time."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    if ms:
        return f"{text}.{int(ts * 1000) % 1000:03d}Z"
    return text + "Z"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(payload).encode()


@dataclass(frozen=True)
class Origin:
    """Who and where a message is about: the node and the gateway that heard it."""

    node: str
    node_id: int
    kind: str
    site: str
    gateway: str


@dataclass(frozen=True)
class Stamp:
    """A frame's time as published: UTC (from the node or mapped from its uptime) or unknown.

    ``clock`` is ``"utc"`` (the node's own UTC), ``"mapped"`` (node uptime mapped to UTC by
    the gateway with the boot's anchor) or ``"uptime"`` (no anchor: ``ts`` is None and only
    ``uptime_s`` is known).
    """

    ts: float | None
    clock: str
    uptime_s: int | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ts": None if self.ts is None else iso_utc(self.ts),
                               "clock": self.clock}
        if self.uptime_s is not None:
            out["uptime_s"] = self.uptime_s
        return out


def reading_key(channel: int) -> str:
    """``pm2_5`` for instance 0, ``motorbikes_1`` for lane 1, ``q99`` for an unknown quantity."""
    return _channel(channel)[0]


@functools.lru_cache(maxsize=1024)
def _channel(channel: int) -> tuple[str, str | None]:
    """(reading key, unit or None if the quantity is unknown) of a channel number."""
    quantity, instance = channel & 0xFF, channel >> 8
    known = QUANTITIES.get(quantity)
    name = known[0] if known else f"q{quantity}"
    return (name if instance == 0 else f"{name}_{instance}"), (known[1] if known else None)


_POWERS: list[int] = [10**e for e in range(10)]  # reading exponents are -9..9 (SPEC §5.3)


def _scaled(value: int, exponent: int) -> int | float:
    # Dividing by an exact power of ten gives the double nearest the decimal value, which
    # prints as that decimal (312 / 10 -> 31.2), with no rounding step.
    if exponent >= 0:
        return value * _POWERS[exponent]
    return value / _POWERS[-exponent]


def readings_payload(readings: list[list[int]]) -> dict[str, dict[str, Any]]:
    """Wire readings ``[ch, exp, value]`` / ``[ch, exp, mean, min, max, n]`` as named values."""
    out: dict[str, dict[str, Any]] = {}
    for reading in readings:
        channel, exponent = reading[0], reading[1]
        key, unit = _channel(channel)
        item: dict[str, Any] = {"value": _scaled(reading[2], exponent), "unit": unit}
        if len(reading) == 6:
            item["min"] = _scaled(reading[3], exponent)
            item["max"] = _scaled(reading[4], exponent)
            item["count"] = reading[5]
        if unit is None:
            item["channel"] = channel
        out[key] = item
    return out


def jsonable(value: Any) -> Any:
    """A decoded body (or part of one) as JSON takes it: bytes as hex, map keys as strings."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _extra(mtype: int, body: dict[Any, Any]) -> dict[str, Any]:
    known = SCHEMAS[mtype][1]
    return {str(k): jsonable(v) for k, v in body.items() if k not in known}


def _head(origin: Origin, boot: int, seq: int) -> dict[str, Any]:
    return {"node": origin.node, "node_id": origin.node_id, "kind": origin.kind,
            "site": origin.site, "gateway": origin.gateway, "boot": boot, "seq": seq}


def _tail(payload: dict[str, Any], mtype: int, body: dict[Any, Any],
          received_at: float) -> dict[str, Any]:
    payload["received_at"] = iso_utc(received_at, ms=True)
    extra = _extra(mtype, body)
    if extra:
        payload["extra"] = extra
    return payload


def data_payload(origin: Origin, boot: int, seq: int, body: dict[Any, Any], stamp: Stamp,
                 received_at: float, *, delayed: bool) -> dict[str, Any]:
    """The ``data`` message of a DATA frame (SPEC §5.3)."""
    payload = _head(origin, boot, seq) | stamp.fields()
    payload["interval_s"] = body.get(names.DATA_INTERVAL_S)
    payload["delayed"] = delayed
    payload["received_at"] = None
    payload["readings"] = readings_payload(body[names.DATA_READINGS])
    return _tail(payload, DATA, body, received_at)


def _vehicle(args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("lane", "dir", "length_cm"):
        if name in args:
            out[name] = args[name]
    if "speed_dkmh" in args:
        out["speed_kmh"] = args["speed_dkmh"] / 10
    if "class" in args:
        out["class"] = names.VEHICLE_CLASSES.get(args["class"], args["class"])
    return out


def event_payload(origin: Origin, boot: int, seq: int, body: dict[Any, Any], stamp: Stamp,
                  received_at: float, *, delayed: bool) -> dict[str, Any]:
    """The ``event`` message of an EVENT frame; a vehicle's args in readable units."""
    code = body[names.EVENT_CODE]
    args = body.get(names.EVENT_ARGS) or {}
    payload = _head(origin, boot, seq) | stamp.fields()
    payload["delayed"] = delayed
    payload["received_at"] = None
    payload["event"] = names.EVENT_NAMES.get(code, f"e{code}")
    payload["code"] = code
    payload["args"] = _vehicle(args) if code == EVENT_VEHICLE else jsonable(args)
    return _tail(payload, EVENT, body, received_at)


def status_payload(origin: Origin, boot: int, seq: int, body: dict[Any, Any],
                   stamp: Stamp | None, received_at: float) -> dict[str, Any]:
    """The ``status`` message of a STATUS frame."""
    payload = _head(origin, boot, seq)
    if stamp is not None:
        payload |= stamp.fields()
    payload["uptime_s"] = body[names.STATUS_UPTIME_S]
    payload["free_heap"] = body[names.STATUS_FREE_HEAP]
    payload["link"] = jsonable(body[names.STATUS_LINK])
    payload["faults"] = jsonable(body.get(names.STATUS_FAULTS) or {})
    if names.STATUS_COUNTERS in body:
        payload["counters"] = jsonable(body[names.STATUS_COUNTERS])
    return _tail(payload, STATUS, body, received_at)


def log_payload(origin: Origin, boot: int, seq: int, body: dict[Any, Any],
                stamp: Stamp | None, received_at: float) -> dict[str, Any]:
    """The ``log`` message of a LOG frame."""
    payload = _head(origin, boot, seq)
    if stamp is not None:
        payload |= stamp.fields()
    level = body[names.LOG_LEVEL]
    payload["level"] = names.LOG_LEVEL_NAMES.get(level, str(level))
    payload["message"] = body[names.LOG_MESSAGE]
    return _tail(payload, LOG, body, received_at)


def result_payload(origin: Origin, boot: int, seq: int, body: dict[Any, Any],
                   received_at: float, *, command: str, request_id: str | None
                   ) -> dict[str, Any]:
    """The ``cmd/<name>/result`` message of a RESULT frame (``id``: the requester's id)."""
    payload = _head(origin, boot, seq)
    payload["command"] = command
    payload["request"] = body[names.RESULT_REQUEST]
    if request_id is not None:
        payload["id"] = request_id
    code = body[names.RESULT_CODE]
    payload["code"] = names.RESULT_NAMES.get(code, str(code))
    payload["message"] = body.get(names.RESULT_MESSAGE, "")
    payload["data"] = jsonable(body.get(names.RESULT_DATA) or {})
    return _tail(payload, RESULT, body, received_at)


def state_payload(origin: Origin, *, online: bool, birth: dict[str, Any] | None,
                  location: str, link: str | None, last_seen: float | None,
                  reason: str = "") -> dict[str, Any]:
    """The retained ``state`` of a node: online/offline, its birth (HELLO) info, last seen."""
    payload: dict[str, Any] = {"state": "online" if online else "offline",
                               "node": origin.node, "node_id": origin.node_id,
                               "kind": origin.kind, "site": origin.site,
                               "gateway": origin.gateway, "location": location,
                               "link": link, "since": iso_utc(time.time(), ms=True),
                               "last_seen": None if last_seen is None
                               else iso_utc(last_seen, ms=True)}
    if reason:
        payload["reason"] = reason
    if birth is not None:
        payload["birth"] = birth
    return payload
