"""US EPA AQI for PM2.5 (2024 breakpoints) and PM10.

Hourly: the NowCast of each pollutant, truncated (PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³), then
Equation 1 of the TAD with the breakpoints of 40 CFR 58 App. G Table 2; the AQI is rounded to
the nearest integer and the overall value is the highest pollutant's. Daily: the same from the
24-hour mean. Values above the top breakpoint are reported as 500 with ``beyond_index``.
"""

from __future__ import annotations

import math

from .index import IndexMethod
from .tables import EPA_AQI_CATEGORIES, EPA_AQI_SEGMENTS, EPA_TRUNCATION_DECIMALS

__all__ = ["EPA_AQI", "truncate"]


def truncate(pollutant: str, concentration: float) -> float:
    """Cut (not round) to the pollutant's reporting precision: 35.49 → 35.4 for PM2.5."""
    scale = 10.0 ** EPA_TRUNCATION_DECIMALS[pollutant]
    # round(…, 6) first: a product such as 0.3 * 3 * 10 lands just below its integer.
    return math.floor(round(concentration * scale, 6)) / scale


EPA_AQI = IndexMethod(EPA_AQI_SEGMENTS, EPA_AQI_CATEGORIES, truncate)
