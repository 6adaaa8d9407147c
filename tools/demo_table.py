"""The demo's live table: one row per node, built from the gateway's MQTT messages.

`LiveTable.update()` takes each message as published (topic, JSON payload); `render()` gives
the table as text and `legend()` the lines that explain it. Air-quality rows show the VN_AQI
category: the gateway's hourly index from the node's ``aqi`` topic once an hour is complete,
until then an indicative one computed here from the last interval's PM2.5 and PM10 with the
same tables (marked "now").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streetsense.gateway.derived.index import combine
from streetsense.gateway.derived.tables import PCU_TCVN_4054_2005, VN_AQI_CATEGORIES
from streetsense.gateway.derived.vn_aqi import VN_AQI
from streetsense.gateway.topics import Topics

DEMO_TOPICS = Topics("streetsense", "hanoi", "demo-gw")  # where the demo's gateway publishes
HEADERS = ("node", "kind", "last readings", "age", "link", "VN_AQI")
UNITS = {"ug/m3": "µg/m³", "degC": "°C", "%RH": "%RH", "ppm": "ppm", "hPa": "hPa"}
AIR = (("pm2_5", "PM2.5"), ("pm10", "PM10"), ("co2", "CO2"), ("temperature", ""),
       ("humidity", ""))
CLASSES = (("motorbikes", "motorbikes"), ("cars", "cars"), ("heavy_vehicles", "heavy"),
           ("unknown_vehicles", "unknown"))


@dataclass
class Row:
    """What the table knows about one node."""

    node: str
    kind: str = "?"
    readings: dict[str, Any] = field(default_factory=dict)
    interval_s: int | None = None
    seen_at: float | None = None  # monotonic time of the last data message
    link: str = ""
    online: bool = True
    link_counters: dict[str, int] = field(default_factory=dict)
    aqi: dict[str, Any] | None = None
    traffic: dict[str, Any] | None = None
    corrected_pm2_5: float | None = None  # the data message's pm_correction, if any


class LiveTable:
    """Rows by node name, updated from MQTT messages under ``<prefix>/<site>/``; with
    ``nodes``, only those nodes get rows (a shared broker may hold others' retained states)."""

    def __init__(self, nodes: Iterable[str] | None = None, *, topics: Topics = DEMO_TOPICS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._topics = topics
        self.rows: dict[str, Row] = {}
        self.messages = 0
        self._nodes = None if nodes is None else set(nodes)
        self._clock = clock

    def update(self, topic: str, payload: Any) -> bool:
        """Take one message; True when it changed what the table shows."""
        self.messages += 1
        where = self._topics.node_sub(topic)
        if where is None or not isinstance(payload, dict):
            return False
        name, sub = where
        if (self._nodes is not None and name not in self._nodes) or not _well_formed(sub, payload):
            return False
        row = self.rows.setdefault(name, Row(name))
        row.kind = str(payload.get("kind", row.kind))
        if sub == "data":
            row.readings = payload["readings"]
            corrected = (payload.get("pm_correction") or {}).get("pm2_5")
            row.corrected_pm2_5 = corrected.get("value") if isinstance(corrected, dict) else None
            row.interval_s = payload.get("interval_s")
            row.seen_at = self._clock()
        elif sub == "state":
            row.online = payload.get("state") == "online"
            row.link = str(payload.get("link") or row.link)
        elif sub == "status":
            row.link_counters = payload["link"]
        elif sub == "aqi":
            row.aqi = payload["vn_aqi"]
        else:
            row.traffic = payload
        return True

    def has_readings(self, kind: str) -> bool:
        """Whether a node of this kind has shown readings."""
        return any(row.kind == kind and row.readings for row in self.rows.values())

    def render(self) -> str:
        """The table as aligned text lines."""
        now = self._clock()
        lines = [HEADERS]
        for row in sorted(self.rows.values(), key=lambda r: r.node):
            age = "-" if row.seen_at is None else f"{now - row.seen_at:.0f} s"
            lines.append((row.node, row.kind, _readings(row), age, _link(row), _aqi(row)))
        widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )


def legend() -> str:
    """What the columns mean, for the lines under the table."""
    bands = ", ".join(f"{c.lo}-{c.hi} {c.name_en}" for c in VN_AQI_CATEGORIES)
    pcu = ", ".join(f"{name.replace('_', ' ')} {factor:g}"
                    for name, factor in PCU_TCVN_4054_2005.items())
    return "\n".join((
        "age: time since the node's last reading.  link: the gateway port it is on, and the "
        "share of its sends that were retries; offline once the gateway says so.",
        f"VN_AQI (Vietnam, Decision 1459/QĐ-TCMT): {bands}. \"~N (now)\": indicative, from "
        "the last interval's PM; \"(hourly)\": the gateway's index of the last full hour.",
        "traffic: vehicles counted in the last interval and their mean speed = the flow per "
        f"hour, in vehicles and in PCU (passenger-car units, TCVN 4054:2005: {pcu}).",
    ))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _well_formed(sub: str, payload: dict[str, Any]) -> bool:
    """Whether a message has the shape the table reads (docs/mqtt.md, docs/derived.md)."""
    if sub == "data":
        readings = payload.get("readings")
        return isinstance(readings, dict) and all(
            isinstance(r, dict) and _number(r.get("value")) for r in readings.values())
    if sub == "status":
        link = payload.get("link")
        return isinstance(link, dict) and all(_number(v) for v in link.values())
    if sub == "aqi":
        index = payload.get("vn_aqi")
        return isinstance(index, dict) and (index.get("value") is None or (
            _number(index["value"]) and isinstance(index.get("name_en"), str)))
    if sub == "traffic":
        total = payload.get("total")
        return isinstance(total, dict) and _number(total.get("vehicles_per_hour")) and \
            _number(total.get("pcu_per_hour"))
    return sub == "state"


def _value(reading: dict[str, Any]) -> str:
    value = reading.get("value")
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    unit = UNITS.get(reading.get("unit") or "", reading.get("unit") or "")
    return f"{text} {unit}".rstrip()


def _readings(row: Row) -> str:
    if not row.readings:
        return "waiting for the first report"
    if row.kind == "traffic":
        return _traffic(row)
    shown = [f"{label} {_value(row.readings[key])}".lstrip()
             for key, label in AIR if key in row.readings]
    return ", ".join(shown)


def _traffic(row: Row) -> str:
    counts = {label: sum(r["value"] for key, r in row.readings.items()
                         if key == name or key.startswith(name + "_"))
              for name, label in CLASSES}
    text = ", ".join(f"{label} {n}" for label, n in counts.items()
                     if n or label != "unknown")  # unknown only when there are some
    text += f" in {row.interval_s} s" if row.interval_s else ""
    if "speed_mean" in row.readings:
        text += f", {_value(row.readings['speed_mean'])}"
    if row.traffic is not None:
        total = row.traffic["total"]
        text += f" = {total['vehicles_per_hour']} veh/h, {total['pcu_per_hour']:.0f} PCU/h"
    return text


def _link(row: Row) -> str:
    if not row.online:
        return "offline"
    counters = row.link_counters
    sent = counters.get("tx", 0) + counters.get("retries", 0)
    if not sent:
        return row.link or "-"
    retries = 100 * counters.get("retries", 0) / sent
    return f"{row.link} {retries:.0f}% retries".lstrip()


def _aqi(row: Row) -> str:
    if row.kind != "air-quality":
        return ""
    if row.aqi and row.aqi.get("value") is not None:
        return f"{row.aqi['value']} {row.aqi['name_en']} (hourly)"
    pm = {p: row.readings[p]["value"] for p in VN_AQI.pollutants if p in row.readings}
    if row.corrected_pm2_5 is not None and "pm2_5" in pm:  # as the gateway's index does
        pm["pm2_5"] = row.corrected_pm2_5
    if not pm:
        return "-"
    result = combine({p: VN_AQI.sub_index(p, c) for p, c in pm.items()},
                     dict.fromkeys(pm, 1), VN_AQI_CATEGORIES)
    assert result.category is not None
    return f"~{result.value} {result.category.name_en} (now)"
