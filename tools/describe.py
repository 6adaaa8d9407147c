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
from streetsense.protocol import names

__all__ = ["fingerprint", "frame_summary", "reading_text", "readings_text", "without_key"]

_LABELS = {"pm1_0": "PM1.0", "pm2_5": "PM2.5", "pm10": "PM10", "co2": "CO2",
           "speed_mean": "mean speed", "heavy_vehicles": "heavy vehicles"}
_LABELS.update({"pm1_0_cf1": "PM1.0 CF=1", "pm2_5_cf1": "PM2.5 CF=1", "pm10_cf1": "PM10 CF=1",
                "particles_0_3um": "particles >0.3 µm", "particles_0_5um": "particles >0.5 µm",
                "particles_1_0um": "particles >1.0 µm", "particles_2_5um": "particles >2.5 µm",
                "particles_5_0um": "particles >5 µm", "particles_10um": "particles >10 µm"})
_UNITS = {"ug/m3": "µg/m³", "degC": "°C", "#/0.1L": "per 0.1 L"}
_TRAFFIC = (16, 17, 18, 19, 20)  # quantities counted per lane
# The protocol's class words (names.VEHICLE_CLASSES) as a sentence says them.
_VEHICLE_CLASSES = {names.VEHICLE_MOTORBIKE: "motorbike", names.VEHICLE_CAR: "car",
                    names.VEHICLE_HEAVY: "heavy vehicle",
                    names.VEHICLE_UNKNOWN: "vehicle of unknown class"}


def fingerprint(key: bytes) -> str:
    """The key's label fingerprint: the first 8 hex digits of its SHA-256 (never the key)."""
    return hashlib.sha256(key).hexdigest()[:8]


def without_key(mtype: int, body: Any) -> Any:
    """A CONFIG body with its ``key`` setting replaced by the key's fingerprint: what a tool
    may show of a provisioning CONFIG (a key is never printed)."""
    if mtype != m.CONFIG or not isinstance(body, dict) \
            or not isinstance(body.get(names.CONFIG_SETTINGS), dict) \
            or "key" not in body[names.CONFIG_SETTINGS]:
        return body
    settings = dict(body[names.CONFIG_SETTINGS])
    try:
        settings["key"] = "fingerprint:" + fingerprint(bytes.fromhex(settings["key"]))
    except (TypeError, ValueError):
        settings["key"] = "<not hex>"
    return {**body, names.CONFIG_SETTINGS: settings}


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
    args = body.get(names.EVENT_ARGS) or {}
    code = body[names.EVENT_CODE]
    if code != m.EVENT_VEHICLE:
        return f"event {code} {args}"
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
        major, minor = (body[names.HELLO_PROTOCOL] + [0, 0])[:2]
        sensors = ", ".join(map(str, body[names.HELLO_SENSORS])) or "none"
        text = (f"{body[names.HELLO_KIND] or '(no kind yet)'} firmware "
                f"{body[names.HELLO_FIRMWARE]}, protocol {major}.{minor}, sensors {sensors}, "
                f"reset cause {body[names.HELLO_RESET_CAUSE]}")
        if "factory" in body.get(names.HELLO_CAPABILITIES, []):
            text += ", factory state (not provisioned)"
        return text
    if mtype == m.DATA:
        when = _when(body[names.DATA_TS], body[names.DATA_CLOCK])
        return f"{when}: {readings_text(body[names.DATA_READINGS])}"
    if mtype == m.EVENT:
        return f"{_when(body[names.EVENT_TS], body[names.EVENT_CLOCK])}: {_event_text(body)}"
    if mtype == m.STATUS:
        faults = body.get(names.STATUS_FAULTS) or {}
        text = (f"up {body[names.STATUS_UPTIME_S]} s, free heap {body[names.STATUS_FREE_HEAP]} B,"
                f" link {body[names.STATUS_LINK] or '-'}")
        if faults:
            text += ", FAULTS " + ", ".join(f"{k}: {v}" for k, v in faults.items())
        return text
    if mtype == m.LOG:
        level = body[names.LOG_LEVEL]
        return f"{names.LOG_LEVEL_NAMES.get(level, level)}: {body[names.LOG_MESSAGE]}"
    if mtype == m.RESULT:
        code = body[names.RESULT_CODE]
        text = f"request {body[names.RESULT_REQUEST]}: {names.RESULT_NAMES.get(code, code)}"
        message = body.get(names.RESULT_MESSAGE)
        return text + (f" ({message})" if message else "")
    if mtype == m.ACK:
        return f"acknowledges boot {body[names.ACK_BOOT]} up to seq {body[names.ACK_SEQ]}"
    if mtype == m.TIME:
        utc_s = body[names.TIME_UTC_MS] / 1000
        return "clock set to " + datetime.fromtimestamp(utc_s, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    if mtype == m.CONFIG:
        settings = _settings_text(body[names.CONFIG_SETTINGS]) or "no settings"
        return f"request {body[names.CONFIG_REQUEST]}: {settings}"
    request, name = body[names.COMMAND_REQUEST], body[names.COMMAND_NAME]
    return f"request {request}: {name} {body.get(names.COMMAND_ARGS) or ''}".rstrip()
