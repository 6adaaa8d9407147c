"""Frames in plain words for people at the pole: readings with units, one line per frame.

Shared by ``monitor`` (the table's summary column), ``flash`` (the HELLO) and ``provision``
(the first reading). Callers redact keys first (``monitor`` shows a CONFIG key's fingerprint).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streetsense.protocol import messages as m

__all__ = ["fingerprint", "frame_summary", "reading_text", "readings_text", "without_key"]

_LABELS = {"pm1_0": "PM1.0", "pm2_5": "PM2.5", "pm10": "PM10", "co2": "CO2",
           "speed_mean": "mean speed", "heavy_vehicles": "heavy vehicles"}
_LABELS.update({"pm1_0_cf1": "PM1.0 CF=1", "pm2_5_cf1": "PM2.5 CF=1", "pm10_cf1": "PM10 CF=1",
                "particles_0_3um": "particles >0.3 µm", "particles_0_5um": "particles >0.5 µm",
                "particles_1_0um": "particles >1.0 µm", "particles_2_5um": "particles >2.5 µm",
                "particles_5_0um": "particles >5 µm", "particles_10um": "particles >10 µm"})
_UNITS = {"ug/m3": "µg/m³", "degC": "°C", "#/0.1L": "per 0.1 L"}
_TRAFFIC = (16, 17, 18, 19, 20)  # quantities counted per lane
_RESULT_CODES = {m.RESULT_OK: "OK", m.RESULT_UNKNOWN_COMMAND: "UNKNOWN_COMMAND",
                 m.RESULT_BAD_ARGS: "BAD_ARGS", m.RESULT_FAILED: "FAILED"}
_LOG_LEVELS = {0: "emergency", 1: "alert", 2: "critical", 3: "error", 4: "warning",
               5: "notice", 6: "info", 7: "debug"}
_VEHICLE_CLASSES = {1: "motorbike", 2: "car", 3: "heavy vehicle", 4: "vehicle of unknown class"}


def fingerprint(key: bytes) -> str:
    """The key's label fingerprint: the first 8 hex digits of its SHA-256 (never the key)."""
    return hashlib.sha256(key).hexdigest()[:8]


def without_key(mtype: int, body: Any) -> Any:
    """A CONFIG body with its ``key`` setting replaced by the key's fingerprint: what a tool
    may show of a provisioning CONFIG (a key is never printed)."""
    if mtype != m.CONFIG or not isinstance(body, dict) or not isinstance(body.get(2), dict) \
            or "key" not in body[2]:
        return body
    settings = dict(body[2])
    try:
        settings["key"] = "fingerprint:" + fingerprint(bytes.fromhex(settings["key"]))
    except (TypeError, ValueError):
        settings["key"] = "<not hex>"
    return {**body, 2: settings}


def _fixed(value: int, exponent: int) -> str:
    return format(Decimal(value).scaleb(exponent), "f")


def reading_text(reading: list[int], *, brief: bool = False) -> str:
    """``"PM2.5 31.2 µg/m³ (min 25.0, max 40.0, n 60)"`` for one DATA reading (``brief``:
    the value or mean only)."""
    channel, exponent = reading[0], reading[1]
    quantity, instance = channel & 0xFF, channel >> 8
    name, unit = m.QUANTITIES.get(quantity, (f"q{quantity}", ""))
    label = _LABELS.get(name, name.replace("_", " "))
    if quantity in _TRAFFIC:
        label += f" lane {instance}"
    elif instance:
        label += f" #{instance}"
    unit = _UNITS.get(unit, unit)
    text = f"{label} {_fixed(reading[2], exponent)} {unit}".rstrip()
    if len(reading) == 6 and not brief:
        text += (f" (min {_fixed(reading[3], exponent)}, max {_fixed(reading[4], exponent)},"
                 f" n {reading[5]})")
    return text


def readings_text(readings: list[list[int]], *, brief: bool = False) -> str:
    """All readings of a DATA body, ``"; "``-separated (``"no readings"`` when empty)."""
    return "; ".join(reading_text(r, brief=brief) for r in readings) or "no readings"


def _when(ts: int, clock: int) -> str:
    if clock == m.CLOCK_UTC:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"uptime {ts} s"


def _settings_text(settings: dict[Any, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items())


def _event_text(body: dict[int, Any]) -> str:
    args = body.get(4) or {}
    if body[3] != m.EVENT_VEHICLE:
        return f"event {body[3]} {args}"
    text = f"vehicle lane {args.get('lane', '?')}"
    if args.get("dir") is not None:
        text += " A→B" if args["dir"] == 1 else " B→A"
    if "speed_dkmh" in args:
        text += f" {_fixed(args['speed_dkmh'], -1)} km/h"
    if "length_cm" in args:
        text += f" {_fixed(args['length_cm'], -2)} m"
    if "class" in args:
        text += " " + _VEHICLE_CLASSES.get(args["class"], f"class {args['class']}")
    return text


def frame_summary(mtype: int, body: Any) -> str:
    """One line saying what a (schema-checked) frame body means."""
    if mtype not in m.SCHEMAS:
        return f"type 0x{mtype:02x}, not known to protocol v1"
    if mtype == m.HELLO:
        major, minor = (body[3] + [0, 0])[:2]
        text = (f"{body[1] or '(no kind yet)'} firmware {body[2]}, protocol {major}.{minor}, "
                f"sensors {', '.join(map(str, body[4])) or 'none'}, reset cause {body[5]}")
        if "factory" in body.get(7, []):
            text += ", factory state (not provisioned)"
        return text
    if mtype == m.DATA:
        return f"{_when(body[1], body[2])}: {readings_text(body[4])}"
    if mtype == m.EVENT:
        return f"{_when(body[1], body[2])}: {_event_text(body)}"
    if mtype == m.STATUS:
        faults = body.get(4) or {}
        text = f"up {body[1]} s, free heap {body[2]} B, link {body[3] or '-'}"
        if faults:
            text += ", FAULTS " + ", ".join(f"{k}: {v}" for k, v in faults.items())
        return text
    if mtype == m.LOG:
        return f"{_LOG_LEVELS.get(body[1], body[1])}: {body[2]}"
    if mtype == m.RESULT:
        text = f"request {body[1]}: {_RESULT_CODES.get(body[2], body[2])}"
        return text + (f" ({body[3]})" if body.get(3) else "")
    if mtype == m.ACK:
        return f"acknowledges boot {body[1]} up to seq {body[2]}"
    if mtype == m.TIME:
        return "clock set to " + datetime.fromtimestamp(body[1] / 1000, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    if mtype == m.CONFIG:
        return f"request {body[1]}: {_settings_text(body[2]) or 'no settings'}"
    return f"request {body[1]}: {body[2]} {body.get(3) or ''}".rstrip()
