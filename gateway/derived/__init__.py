"""Derived values the gateway publishes beside the raw readings: hourly VN_AQI and US EPA AQI
(``aqi`` topic) and traffic flow in vehicles and PCU per hour (``traffic`` topic).
See docs/derived.md."""

from .derivers import AqiDeriver, StateStore, TrafficDeriver, build_derivers
from .epa_aqi import EPA_AQI
from .index import IndexMethod, IndexResult
from .nowcast import NowCast, nowcast
from .vn_aqi import VN_AQI

__all__ = [
    "EPA_AQI",
    "VN_AQI",
    "AqiDeriver",
    "IndexMethod",
    "IndexResult",
    "NowCast",
    "StateStore",
    "TrafficDeriver",
    "build_derivers",
    "nowcast",
]
