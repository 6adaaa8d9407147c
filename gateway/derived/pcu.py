"""Traffic flow per lane: vehicles/hour by class and passenger car units per hour.

Reading names (SPEC §5.3): counts ``motorbikes``, ``cars``, ``heavy_vehicles`` and
``unknown_vehicles`` (counted, class not measurable) per interval, ``speed_mean`` (km/h, the
time-mean over vehicles with a measured speed), ``speed_space_mean`` (their harmonic mean) and
``occupancy`` (% of the interval); lane N > 0 carries the suffix ``_N``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .tables import PCU_TCVN_4054_2005

__all__ = ["CLASSES", "lane_flows", "pcu_factors"]

CLASSES = tuple(PCU_TCVN_4054_2005)


def pcu_factors(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The default factors (TCVN 4054:2005 Bảng 2) with ``overrides`` applied; an unknown
    class or a negative factor is a ``ValueError`` naming it."""
    factors = dict(PCU_TCVN_4054_2005)
    for name, value in (overrides or {}).items():
        if name not in factors:
            raise ValueError(f"unknown vehicle class {name!r} in pcu (known: {', '.join(CLASSES)})")
        if value < 0:
            raise ValueError(f"pcu factor for {name!r} must be >= 0, not {value}")
        factors[name] = float(value)
    return factors


def _split(key: str) -> tuple[str, int]:
    name, _, suffix = key.rpartition("_")
    return (name, int(suffix)) if name and suffix.isdigit() else (key, 0)


def lane_flows(
    readings: Mapping[str, Any], interval_s: float, factors: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One entry per lane that has any count, lanes in order; ``factors`` from
    ``pcu_factors``.

    Flow = count * 3600 / interval_s; PCU/h = Σ factor * flow. Mean speeds are None when no
    vehicle was counted or none had a measured speed (the node sends none then)."""
    lanes: dict[int, dict[str, float]] = {}
    for key, reading in readings.items():
        name, lane = _split(key)
        if isinstance(reading, Mapping) and reading.get("value") is not None:
            lanes.setdefault(lane, {})[name] = float(reading["value"])
    out = []
    for lane in sorted(lanes):
        values = lanes[lane]
        if not any(c in values for c in CLASSES):
            continue
        counts = {c: int(values.get(c, 0)) for c in CLASSES}
        flow = {c: round(n * 3600 / interval_s) for c, n in counts.items()}
        total = sum(counts.values())
        speed, space = values.get("speed_mean"), values.get("speed_space_mean")
        out.append({
            "lane": lane,
            "counts": counts | {"total": total},
            "vehicles_per_hour": flow | {"total": round(total * 3600 / interval_s)},
            "pcu_per_hour": round(sum(factors[c] * n for c, n in counts.items())
                                  * 3600 / interval_s, 1),
            "occupancy_pct": values.get("occupancy"),
            "speed_mean_kmh": speed if total and speed is not None else None,
            "speed_space_mean_kmh": space if total and space is not None else None,
        })
    return out
