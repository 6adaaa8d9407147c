"""The gateway's derived-value hooks: ``AqiDeriver`` (``aqi`` topic) and ``TrafficDeriver``
(``traffic`` topic).

A deriver is called with each ``data`` message the gateway builds (the JSON dict of
docs/mqtt.md) and returns ``[(subtopic, payload), …]`` for the gateway to publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from .epa_aqi import EPA_AQI
from .hourly import HOUR_S, HourlyMeans
from .index import IndexMethod
from .nowcast import WINDOW_HOURS, nowcast
from .pcu import lane_flows, pcu_factors
from .vn_aqi import VN_AQI

__all__ = ["AqiDeriver", "StateStore", "TrafficDeriver", "build_derivers"]

POLLUTANTS = ("pm2_5", "pm10")
# Booked beside the PM means, 1 or 0 per reading, so their hourly means are shares of the hour:
# PM2.5 from a corrected value, and readings taken at RH above 95 %.
_CORRECTED = "pm2_5_corrected"
_HUMID = "rh_above_95"
_DAY_S = 24 * HOUR_S
# Decision 1459/QĐ-TCMT §2.1a computes VN_AQI from the data of fixed automatic monitoring
# stations, quality-assured and controlled; a low-cost sensor's index is a guide only.
INDICATIVE_NOTE = ("indicative: from a low-cost optical sensor, not from QA/QC'd monitoring-"
                   "station data as Decision 1459/QĐ-TCMT §2.1a requires for VN_AQI")
_METHODS: dict[str, IndexMethod] = {"vn_aqi": VN_AQI, "epa_aqi": EPA_AQI}


class StateStore(Protocol):
    """What a deriver needs of the journal: a small JSON document per name."""

    def load_state(self, name: str) -> dict[str, Any] | None: ...

    def save_state(self, name: str, value: dict[str, Any]) -> None: ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _shares(message: Mapping[str, Any], values: dict[str, float]) -> None:
    """Book whether this reading's PM2.5 is corrected, and whether it was taken in air above
    95 % RH, next to ``values``: the corrected value replaces the raw one."""
    block = message.get("pm_correction")
    if not isinstance(block, Mapping):
        block = {}
    corrected = block.get("pm2_5")
    if "pm2_5" in values:
        if isinstance(corrected, Mapping) and corrected.get("value") is not None:
            values["pm2_5"] = float(corrected["value"])
            values[_CORRECTED] = 1.0
        else:
            values[_CORRECTED] = 0.0
    if block.get("rh_above_95") is not None:
        values[_HUMID] = 1.0 if block["rh_above_95"] else 0.0


def _reading_values(message: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    readings = message.get("readings") or {}
    return {
        k: float(readings[k]["value"])
        for k in keys
        if isinstance(readings.get(k), Mapping) and readings[k].get("value") is not None
    }


class AqiDeriver:
    """Hourly VN_AQI and EPA AQI (NowCast) per air-quality node, daily indices at the end of
    each local day. PM2.5 is the corrected value of the message's ``pm_correction`` block
    where it has one (``pm_correction`` names the method), the raw reading otherwise; PM10 is
    raw. The hourly window lives in the journal (``save_state``, in the same transaction as
    the message) so a restart keeps the last 24 hours."""

    name = "aqi"

    def __init__(
        self,
        *,
        min_hour_coverage: float = 0.75,
        day_utc_offset_h: int = 7,
        min_day_hours: int = 18,
        pm_correction: str = "epa-2021",
    ) -> None:
        # Local day for the daily index: Vietnam is UTC+7 all year (no daylight saving).
        # 18 of 24 hours: the 75 % daily completeness of 40 CFR 50 App. N (1459 sets none).
        self.min_hour_coverage = min_hour_coverage
        self.day_offset_s = day_utc_offset_h * HOUR_S
        self.min_day_hours = min_day_hours
        self.pm_correction = pm_correction

    def on_data(
        self, node: object, message: Mapping[str, Any], journal: StateStore
    ) -> list[tuple[str, dict[str, Any]]]:
        """Book the message's PM readings; publish one ``aqi`` payload per hour it closes."""
        if message.get("kind") != "air-quality" or message.get("clock") != "utc":
            return []  # an uptime clock cannot be placed in a clock hour
        interval_s = message.get("interval_s")
        values = _reading_values(message, POLLUTANTS)
        if not interval_s or not values:
            return []
        _shares(message, values)
        # The state is read from the journal every time, not cached: the gateway calls this
        # inside the journal transaction of the message, so if that commit fails the message
        # comes again and must meet the state as committed, not as this call left it.
        key = f"{self.name}/{message['node_id']}"
        saved = journal.load_state(key) or {}
        end_ts = _parse_ts(message["ts"])
        # Messages of one node arrive in time order; one not after the last booked is a
        # replay (the journal re-delivers after a restart) and was counted already.
        if end_ts <= saved.get("last_ts", float("-inf")):
            return []
        means = HourlyMeans((*POLLUTANTS, _CORRECTED, _HUMID),
                            min_coverage=self.min_hour_coverage, state=saved.get("hourly"))
        closed = means.add(end_ts, float(interval_s), values)
        journal.save_state(key, {"hourly": means.state(), "last_ts": end_ts})
        return [("aqi", self._payload(message, means, hour)) for hour in closed]

    def _payload(self, message: Mapping[str, Any], means: HourlyMeans, hour: int) -> dict[str, Any]:
        nowcasts = {p: nowcast(means.recent(p, hour, WINDOW_HOURS)) for p in POLLUTANTS}
        pollutants = {
            p: {
                "hourly_mean": _rounded(means.mean(p, hour)),
                "coverage": round(means.coverage(p, hour), 3),
                "nowcast": _rounded(nowcasts[p].value),
                "hours_used": nowcasts[p].hours_used,
            }
            for p in POLLUTANTS
        }
        corrected = means.mean(_CORRECTED, hour)
        humid = means.mean(_HUMID, hour)
        pollutants["pm2_5"]["corrected_share"] = None if corrected is None else round(corrected, 3)
        pollutants["pm2_5"]["rh_above_95_share"] = None if humid is None else round(humid, 3)
        payload: dict[str, Any] = {
            "node": message.get("node"),
            "node_id": message.get("node_id"),
            "hour": _iso(hour),
            "hour_end": _iso(hour + HOUR_S),
            "delayed": bool(message.get("delayed", False)),
            "basis": {"pm2_5": self._basis(corrected), "pm10": "raw"},
            "indicative": True,
            "note": INDICATIVE_NOTE,
            "pollutants": pollutants,
        }
        for key, method in _METHODS.items():
            payload[key] = method.hourly(nowcasts).as_payload()
        payload["daily"] = self._daily(means, hour) if self._ends_day(hour) else None
        return payload

    def _basis(self, corrected_share: float | None) -> str | None:
        """Which PM2.5 values the hour's mean is of: the correction method, "raw", "mixed"
        (both in one hour), or None (no valid hour)."""
        if corrected_share is None:
            return None
        if corrected_share >= 1.0:
            return self.pm_correction
        return "raw" if corrected_share <= 0.0 else "mixed"

    def _ends_day(self, hour: int) -> bool:
        return (hour + HOUR_S + self.day_offset_s) % _DAY_S == 0

    def _daily(self, means: HourlyMeans, last_hour: int) -> dict[str, Any]:
        day_means: dict[str, tuple[float | None, int]] = {}
        for p in POLLUTANTS:
            hourly = [m for m in means.recent(p, last_hour, 24) if m is not None]
            mean = sum(hourly) / len(hourly) if len(hourly) >= self.min_day_hours else None
            day_means[p] = (mean, len(hourly))
        local_date = datetime.fromtimestamp(last_hour + self.day_offset_s, UTC).date()
        daily: dict[str, Any] = {
            "date": local_date.isoformat(),
            "means": {p: _rounded(m) for p, (m, _) in day_means.items()},
        }
        for key, method in _METHODS.items():
            daily[key] = method.daily(day_means).as_payload()
        return daily


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class TrafficDeriver:
    """Per interval and lane: flow in vehicles/hour by class and in PCU/hour, occupancy, mean
    speed, as one ``traffic`` payload per ``data`` message."""

    name = "traffic"

    def __init__(self, *, pcu: Mapping[str, float] | None = None) -> None:
        self.factors = pcu_factors(pcu)  # raises ValueError on a bad config at start-up

    def on_data(
        self, node: object, message: Mapping[str, Any], journal: StateStore
    ) -> list[tuple[str, dict[str, Any]]]:
        """The ``traffic`` payload of a traffic node's ``data`` message (none without
        ``interval_s``: a count without its interval is not a flow)."""
        interval_s = message.get("interval_s")
        if message.get("kind") != "traffic" or not interval_s:
            return []
        lanes = lane_flows(message.get("readings") or {}, float(interval_s), self.factors)
        if not lanes:
            return []
        return [
            (
                "traffic",
                {
                    "node": message.get("node"),
                    "node_id": message.get("node_id"),
                    "ts": message.get("ts"),
                    "interval_s": interval_s,
                    "delayed": message.get("delayed", False),
                    "lanes": lanes,
                    "total": {
                        "vehicles_per_hour": sum(ln["vehicles_per_hour"]["total"] for ln in lanes),
                        "pcu_per_hour": round(sum(ln["pcu_per_hour"] for ln in lanes), 1),
                    },
                },
            )
        ]


def build_derivers(
    *, aqi: bool = True, traffic: bool = True, pcu: Mapping[str, float] | None = None,
    pm_correction: str = "epa-2021",
) -> list[AqiDeriver | TrafficDeriver]:
    """The derivers a gateway config's ``[derived]`` section asks for (they fit the
    ``Deriver`` hook of ``gateway.session``)."""
    out: list[AqiDeriver | TrafficDeriver] = []
    if aqi:
        out.append(AqiDeriver(pm_correction=pm_correction))
    if traffic:
        out.append(TrafficDeriver(pcu=pcu))
    return out
