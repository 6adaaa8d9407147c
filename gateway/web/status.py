"""The status document: what the gateway's page shows and ``/api/status`` and ``/events`` send.

Per registry node: kind, location, link, online, last seen, RSSI (BLE), frames, and from the
latest committed messages its readings with units, its hourly VN_AQI (value, category,
colour) and its traffic flow. For the gateway: health verdict, broker, journal, ports.
`StatusBoard.on_rows` keeps the latest ``data``/``aqi``/``traffic`` payload of each node as
bytes (a dictionary store per row); they are parsed only when a page asks, and a document
is reused for ``REUSE_S`` however many pages are open.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..journal import Row
from ..metrics import Metrics
from ..node_state import NodeState
from ..registry import NodeInfo
from ..topics import Topics
from ..version import gateway_version

__all__ = ["StatusBoard"]

SUBTOPICS = ("data", "aqi", "traffic")
REUSE_S = 0.5

NodeSource = Callable[[], Iterable[tuple[NodeInfo, NodeState | None]]]
BrokerSource = Callable[[], dict[str, Any]]


@dataclass
class _Latest:
    payload: bytes
    parsed: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        if self.parsed is None:
            try:
                value = json.loads(self.payload)
            except ValueError:
                value = None
            self.parsed = value if isinstance(value, dict) else {}
        return self.parsed


class StatusBoard:
    """Builds the status document; ``nodes`` yields each registry node with its session
    state (None before its first frame), ``broker`` the publisher's state."""

    def __init__(self, metrics: Metrics, *, topics: Topics | None = None,
                 nodes: NodeSource = tuple, broker: BrokerSource = dict,
                 clock: Callable[[], float] = time.time) -> None:
        self._metrics = metrics
        self._identity = {"id": "" if topics is None else topics.gateway_id,
                          "site": "" if topics is None else topics.site,
                          "version": gateway_version()}
        self._topics = topics
        self._nodes = nodes
        self._broker = broker
        self._clock = clock
        self._started = clock()
        self._latest: dict[str, dict[str, _Latest]] = {}
        self._document: dict[str, Any] | None = None
        self._built_at = 0.0
        self.streams = 0  # live pages (event streams) open now

    def on_rows(self, rows: Sequence[Row]) -> None:
        """Committed journal rows: keep each node's latest data, aqi and traffic payload."""
        topics = self._topics
        if topics is None:
            return
        for row in rows:
            where = topics.node_sub(row.topic)
            if where is not None and where[1] in SUBTOPICS:
                self._latest.setdefault(where[0], {})[where[1]] = _Latest(row.payload)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the latest payloads of nodes not named in ``keep`` (renamed or removed)."""
        names = set(keep)
        for name in [n for n in self._latest if n not in names]:
            del self._latest[name]

    def document(self) -> dict[str, Any]:
        """The status document (JSON values only)."""
        now = self._clock()
        if self._document is not None and 0 <= now - self._built_at < REUSE_S:
            return self._document
        snapshot = self._metrics.snapshot()
        frames = snapshot.get("nodes_frames", {})
        self._document = {
            "at": now,
            "gateway": {**self._identity, "uptime_s": round(now - self._started, 1),
                        **self._metrics.health()},
            "broker": {**snapshot["broker"], **self._broker()},
            "journal": snapshot["journal"],
            "ports": snapshot["ports_up"],
            "nodes": [self._node(info, state, frames.get(info.name, 0))
                      for info, state in self._nodes()],
        }
        self._built_at = now
        return self._document

    def _node(self, info: NodeInfo, state: NodeState | None, frames: int) -> dict[str, Any]:
        link = None if state is None else state.link
        rssi = getattr(link, "rssi", None)
        latest = self._latest.get(info.name, {})
        data = latest["data"].json() if "data" in latest else {}
        return {
            "name": info.name, "id": info.id, "kind": info.kind, "location": info.location,
            "enabled": info.enabled, "link": None if link is None else link.name,
            "online": bool(state is not None and state.online),
            "last_seen": None if state is None else state.last_seen,
            "rssi_dbm": rssi if isinstance(rssi, int | float) else None,
            "frames": frames,
            "readings_ts": data.get("ts"),
            "readings": _readings(data),
            "aqi": _vn_aqi(latest["aqi"].json()) if "aqi" in latest else None,
            "traffic": _traffic(latest["traffic"].json()) if "traffic" in latest else None,
        }


def _readings(data: dict[str, Any]) -> list[dict[str, Any]]:
    """[{name, value, unit}] of a ``data`` payload, in its order."""
    readings = data.get("readings")
    if not isinstance(readings, dict):
        return []
    return [{"name": str(name), "value": reading.get("value"), "unit": reading.get("unit")}
            for name, reading in readings.items() if isinstance(reading, dict)]


def _vn_aqi(aqi: dict[str, Any]) -> dict[str, Any] | None:
    index = aqi.get("vn_aqi")
    if not isinstance(index, dict):
        return None
    colour = index.get("colour")
    if not (isinstance(colour, list) and len(colour) == 3
            and all(isinstance(c, int) and 0 <= c <= 255 for c in colour)):
        colour = None
    return {"value": index.get("value"), "category": index.get("category"),
            "name": index.get("name"), "name_en": index.get("name_en"), "colour": colour,
            "hour": aqi.get("hour")}


def _traffic(traffic: dict[str, Any]) -> dict[str, Any] | None:
    total = traffic.get("total")
    if not isinstance(total, dict):
        return None
    lanes = traffic.get("lanes")
    return {"vehicles_per_hour": total.get("vehicles_per_hour"),
            "pcu_per_hour": total.get("pcu_per_hour"),
            "lanes": len(lanes) if isinstance(lanes, list) else None, "ts": traffic.get("ts")}
