"""VN_AQI, Decision 1459/QĐ-TCMT (2019), for PM2.5 and PM10.

Hourly (§2.2.1): the sub-index of each pollutant is Công thức 2 applied to its NowCast with the
breakpoints of Bảng 2; AQI^h = max over pollutants, rounded to an integer. Daily (§2.2.2): the
sub-index of the 24-hour mean (Công thức 1), AQI^d = max, rounded. The decision requires at
least one of PM10 / PM2.5; with only those two measured, "insufficient" means neither had a
value. No truncation of concentrations is prescribed (unlike the EPA method).
"""

from __future__ import annotations

from .index import IndexMethod
from .tables import VN_AQI_CATEGORIES, VN_AQI_SEGMENTS

__all__ = ["VN_AQI"]


def _as_measured(pollutant: str, concentration: float) -> float:
    return concentration


VN_AQI = IndexMethod(VN_AQI_SEGMENTS, VN_AQI_CATEGORIES, _as_measured)
