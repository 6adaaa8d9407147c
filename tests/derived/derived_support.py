"""Support for the derived-value tests: a state store and ``data`` messages as the gateway
builds them (docs/mqtt.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

T0 = 1_796_342_400  # 2026-12-04T00:00:00Z


class MemoryStore:
    """The journal's ``load_state``/``save_state`` pair, in memory (JSON round trip, like the
    journal, so a non-JSON state would fail here too)."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    def load_state(self, name: str) -> dict[str, Any] | None:
        text = self.saved.get(name)
        return None if text is None else dict(json.loads(text))

    def save_state(self, name: str, value: dict[str, Any]) -> None:
        self.saved[name] = json.dumps(value)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def data_message(
    kind: str,
    end_ts: int,
    readings: dict[str, float],
    *,
    interval_s: int | None = 300,
    seq: int = 0,
    boot: int = 1,
    clock: str = "utc",
) -> dict[str, Any]:
    units = {"pm2_5": "ug/m3", "pm10": "ug/m3", "occupancy": "%", "speed_mean": "km/h"}
    return {
        "node": "HN-0042", "node_id": 42, "kind": kind, "site": "hanoi", "gateway": "gw-01",
        "boot": boot, "seq": seq, "ts": iso(end_ts), "clock": clock, "interval_s": interval_s,
        "delayed": False, "received_at": iso(end_ts),
        "readings": {
            k: {"value": v, "unit": units.get(k.rstrip("_0123456789"), "vehicles")}
            for k, v in readings.items()
        },
    }
