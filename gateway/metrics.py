"""The gateway's Prometheus metrics, on a registry of their own, and the health verdict.

`Metrics` holds every instrument (names ``streetsense_gateway_*``, units in the names,
``_total`` on counters) and small methods the layers call (`frame_in`, `rejected`,
`node_seen`, ...). The same numbers feed three readers: ``/metrics`` (`exposition`), the
MQTT health message (`snapshot`) and ``/healthz`` (`health`: ok, or degraded with reasons).
Whether each node is online is read when scraped, from the source `watch_nodes` names.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .version import gateway_version

__all__ = ["JOURNAL_NEAR_FULL", "MAX_UNKNOWN_IDS", "Metrics"]

PREFIX = "streetsense_gateway"
JOURNAL_NEAR_FULL = 0.9  # fraction of journal.max_bytes at which health turns degraded
MAX_UNKNOWN_IDS = 64  # distinct unknown node ids remembered (a flood must not grow memory)


NodesOnline = Callable[[], Mapping[str, bool]]


class _NodeOnline(Collector):
    """``node_online``: 1 or 0 per registry node, read from the gateway when scraped."""

    def __init__(self) -> None:
        self.source: NodesOnline = dict

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for node, online in sorted(self.source().items()):
            family.add_metric([node], 1.0 if online else 0.0)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_node_online", "1 while the node is online (a valid "
                                 "frame within availability.offline_after_s)", labels=["node"])


class Metrics:
    """Every gateway metric on its own `CollectorRegistry` (several gateways, e.g. in tests,
    never share one). ``clock`` gives UNIX time (journal age, last-seen timestamps)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames_in = Counter(
            f"{PREFIX}_frames_received", "Frames that passed the CRC, by port", ["port"], registry=r
        )
        self.frames_rejected = Counter(
            f"{PREFIX}_frames_rejected",
            "Frames rejected, by reason (crc, bad_tag, replay, unknown_node, ...)",
            ["reason"],
            registry=r,
        )
        self.frames_published = Counter(
            f"{PREFIX}_messages_published",
            "MQTT messages the broker acknowledged (PUBACK)",
            registry=r,
        )
        self.publish_failures = Counter(
            f"{PREFIX}_publish_failures", "Publishes that failed and will be retried", registry=r
        )
        self.broker_connected = Gauge(
            f"{PREFIX}_broker_connected", "1 while connected to the MQTT broker", registry=r
        )
        self.broker_reconnects = Counter(
            f"{PREFIX}_broker_reconnects", "Connections to the broker after the first", registry=r
        )
        self.journal_depth = Gauge(
            f"{PREFIX}_journal_undelivered_messages",
            "Journal rows not yet acknowledged by the broker",
            registry=r,
        )
        self.journal_bytes = Gauge(
            f"{PREFIX}_journal_size_bytes", "Size of the journal on disk", registry=r
        )
        self.journal_max_bytes = Gauge(
            f"{PREFIX}_journal_max_bytes", "The journal's configured size bound", registry=r
        )
        self.journal_oldest_age_seconds = Gauge(
            f"{PREFIX}_journal_oldest_age_seconds",
            "Age of the oldest undelivered journal row (0 when none)",
            registry=r,
        )
        self.journal_full_drops = Counter(
            f"{PREFIX}_journal_full_drops",
            "Frames refused or rows dropped because the journal was full",
            registry=r,
        )
        self.node_last_seen_timestamp = Gauge(
            f"{PREFIX}_node_last_seen_timestamp_seconds",
            "UNIX time of the last valid frame from each node",
            ["node"],
            registry=r,
        )
        self.node_frames = Counter(
            f"{PREFIX}_node_frames_received",
            "Valid frames from each node (not replays; retransmissions included)",
            ["node"],
            registry=r,
        )
        self._node_online = _NodeOnline()
        r.register(self._node_online)
        Info(f"{PREFIX}_build", "The gateway's version (and Python's, the protocol's)",
             registry=r).info({"version": gateway_version(),
                               "python": platform.python_version(), "protocol": "1.0"})
        self.node_rssi_dbm = Gauge(
            f"{PREFIX}_node_rssi_dbm", "Last signal strength of each BLE node", ["node"], registry=r
        )
        self.port_up = Gauge(
            f"{PREFIX}_port_up",
            "1 while the serial port (or BLE link) is open",
            ["port"],
            registry=r,
        )
        self.downlinks = Counter(
            f"{PREFIX}_downlinks",
            "Frames sent to nodes, by type (ack, time, config, command)",
            ["type"],
            registry=r,
        )
        self.unknown_nodes = Gauge(
            f"{PREFIX}_unknown_nodes",
            "Distinct node ids heard that are not in the registry",
            registry=r,
        )
        self._oldest_undelivered: float | None = None
        self.journal_oldest_age_seconds.set_function(self._oldest_age)
        self._unknown_ids: set[int] = set()
        # Labelled children looked up once per port and node (labels() takes a lock and
        # builds a key each time: three calls a frame were 2 % of its CPU).
        self._port_frames: dict[str, Any] = {}
        self._node_series: dict[str, tuple[Any, Any]] = {}

    # ---- what the layers call ---------------------------------------------------------

    def frame_in(self, port: str) -> None:
        child = self._port_frames.get(port)
        if child is None:
            child = self._port_frames[port] = self.frames_in.labels(port=port)
        child.inc()

    def rejected(self, reason: str) -> None:
        self.frames_rejected.labels(reason=reason).inc()

    def published(self, count: int = 1) -> None:
        self.frames_published.inc(count)

    def publish_failed(self) -> None:
        self.publish_failures.inc()

    def journal_full(self, count: int = 1) -> None:
        """``count`` frames refused or rows dropped by the journal's when_full policy."""
        self.journal_full_drops.inc(count)

    def downlink(self, kind: str, count: int = 1) -> None:
        self.downlinks.labels(type=kind).inc(count)

    def set_broker(self, connected: bool, *, reconnected: bool = False) -> None:
        """The broker connection changed; ``reconnected`` counts a connection after the first."""
        self.broker_connected.set(1 if connected else 0)
        if reconnected:
            self.broker_reconnects.inc()

    def set_port(self, port: str, up: bool) -> None:
        self.port_up.labels(port=port).set(1 if up else 0)

    def set_journal(
        self, *, depth: int, oldest_undelivered: float | None, size_bytes: int, max_bytes: int
    ) -> None:
        """The journal's state; ``oldest_undelivered`` is the UNIX time of its oldest row."""
        self.journal_depth.set(depth)
        self._oldest_undelivered = oldest_undelivered
        self.journal_bytes.set(size_bytes)
        self.journal_max_bytes.set(max_bytes)

    def watch_nodes(self, source: NodesOnline) -> None:
        """Where ``node_online`` is read from: {node name: online} of every registry node."""
        self._node_online.source = source

    def node_seen(self, node: str, *, rssi_dbm: float | None = None) -> None:
        """A valid frame from ``node`` now (with its RSSI when the link has one)."""
        series = self._node_series.get(node)
        if series is None:
            series = self._node_series[node] = (
                self.node_frames.labels(node=node),
                self.node_last_seen_timestamp.labels(node=node))
        series[0].inc()
        series[1].set(self.clock())
        if rssi_dbm is not None:
            self.node_rssi_dbm.labels(node=node).set(rssi_dbm)

    def forget_node(self, node: str) -> None:
        """Drop a node's series (removed from the registry)."""
        self._node_series.pop(node, None)
        for series in (self.node_last_seen_timestamp, self.node_rssi_dbm, self.node_frames):
            if (node,) in _label_sets(series):
                series.remove(node)

    def unknown_node(self, node_id: int) -> bool:
        """A frame from a node id not in the registry; True the first time this id is heard."""
        if node_id in self._unknown_ids or len(self._unknown_ids) >= MAX_UNKNOWN_IDS:
            return False
        self._unknown_ids.add(node_id)
        self.unknown_nodes.set(len(self._unknown_ids))
        return True

    # ---- what readers see ---------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (for ``/metrics``)."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The numbers as plain JSON values, for the MQTT health message."""
        return {
            "frames_in": _by_label(self.frames_in, "port"),
            "frames_rejected": _by_label(self.frames_rejected, "reason"),
            "published": int(_value(self.frames_published)),
            "publish_failures": int(_value(self.publish_failures)),
            "broker": {
                "connected": _value(self.broker_connected) == 1,
                "reconnects": int(_value(self.broker_reconnects)),
            },
            "journal": {
                "depth": int(_value(self.journal_depth)),
                "oldest_age_s": round(self._oldest_age(), 3),
                "size_bytes": int(_value(self.journal_bytes)),
                "max_bytes": int(_value(self.journal_max_bytes)),
                "full_drops": int(_value(self.journal_full_drops)),
            },
            "ports_up": {port: up == 1 for port, up in _by_label(self.port_up, "port").items()},
            "downlinks": _by_label(self.downlinks, "type"),
            "unknown_nodes": sorted(self._unknown_ids),
            "nodes_last_seen": _by_label(self.node_last_seen_timestamp, "node"),
            "nodes_frames": _by_label(self.node_frames, "node"),
        }

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "reasons": [...]}``: broker, journal and ports."""
        reasons = []
        if _value(self.broker_connected) != 1:
            reasons.append("broker disconnected")
        size, bound = _value(self.journal_bytes), _value(self.journal_max_bytes)
        if bound > 0 and size >= JOURNAL_NEAR_FULL * bound:
            reasons.append(f"journal {size / bound:.0%} full")
        for port, up in sorted(_by_label(self.port_up, "port").items()):
            if up != 1:
                reasons.append(f"port {port} down")
        return {"status": "degraded" if reasons else "ok", "reasons": reasons}

    def _oldest_age(self) -> float:
        if self._oldest_undelivered is None:
            return 0.0
        return max(0.0, self.clock() - self._oldest_undelivered)


def _label_sets(metric: MetricWrapperBase) -> set[tuple[str, ...]]:
    return {
        tuple(sample.labels.values())
        for family in metric.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def _by_label(metric: MetricWrapperBase, label: str) -> dict[str, Any]:
    """{label value: sample value} of a one-label metric (ints for whole numbers)."""
    return {
        sample.labels[label]: _number(sample.value)
        for family in metric.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def _value(metric: MetricWrapperBase) -> float:
    """The value of a metric without labels."""
    for family in metric.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                return float(sample.value)
    return 0.0


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
