"""Derived values the gateway publishes beside the raw readings: PM2.5 corrected for the
sensors' humidity bias (in ``data``), hourly VN_AQI and US EPA AQI (``aqi`` topic) and traffic
flow in vehicles and PCU per hour (``traffic`` topic). See docs/derived.md."""

from .derivers import AqiDeriver, StateStore, TrafficDeriver, build_derivers
from .epa_aqi import EPA_AQI
from .index import IndexMethod, IndexResult
from .nowcast import NowCast, nowcast
from .pm_correction import PM_CORRECTIONS, PmCorrection, epa_2021
from .vn_aqi import VN_AQI

__all__ = [
    "EPA_AQI",
    "PM_CORRECTIONS",
    "VN_AQI",
    "AqiDeriver",
    "IndexMethod",
    "IndexResult",
    "NowCast",
    "PmCorrection",
    "StateStore",
    "TrafficDeriver",
    "build_derivers",
    "epa_2021",
    "nowcast",
]
