"""PM2.5 of low-cost optical sensors corrected for their bias (``[derived] pm_correction``),
added to each air-quality ``data`` message as its ``pm_correction`` block (docs/mqtt.md).

``epa-2021``: the United States-wide correction of PurpleAir data (two PMS5003 sensors),
Barkjohn, Gantt & Clements 2021, "Development and application of a United States-wide
correction for PM2.5 data collected with the PurpleAir sensor", Atmos. Meas. Tech. 14,
4617-4637, doi:10.5194/amt-14-4617-2021: raw PM2.5 reads ~40 % high, and

    PM2.5 = 0.524 x PA_cf1 - 0.0862 x RH + 5.75

from the CF=1 PM2.5 (µg/m³) and the relative humidity (%) measured beside the sensor (the
PurpleAir's BME280; this node's BME280 likewise). Above it the paper's line overestimates
smoke; EPA's extended correction (Barkjohn, Holder, Frederick & Clements 2022, "Correction and
Accuracy of PurpleAir PM2.5 Measurements for Extreme Wildfire Smoke", Sensors 22(24), 9669,
doi:10.3390/s22249669, used on the AirNow Fire and Smoke Map) keeps it up to 300 µg/m³ and
moves to a quadratic fit above 400 µg/m³:

    PA_cf1 < 570          the 2021 line
    570 <= PA_cf1 < 611   w x quadratic + (1 - w) x line, w = 0.0244 x PA_cf1 - 13.9
    PA_cf1 >= 611         quadratic = 4.21e-4 x PA_cf1^2 + 0.392 x PA_cf1 + 3.44

The break points give what the paper's abstract states (the line reaches 300 µg/m³ at 570 and
50 % RH; the quadratic is 400 µg/m³ at 611; w runs from 0 to 1 over the blend): a test checks
those. Negative results (clean air, very humid) are reported as 0. ``none``: no correction.

At relative humidity above 95 % (fog, drizzle) particles swell with water and optical sensors
read far too high; the correction was not fitted on such air, so the block flags it
(``rh_above_95``) rather than leave it unmarked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HUMID_RH", "PM_CORRECTIONS", "PmCorrection", "epa_2021"]

PM_CORRECTIONS = ("epa-2021", "none")
HUMID_RH = 95.0
_BLEND_FROM = 570.0
_QUADRATIC_FROM = 611.0


def _line(cf1: float, rh: float) -> float:
    return 0.524 * cf1 - 0.0862 * rh + 5.75


def _quadratic(cf1: float) -> float:
    return 4.21e-4 * cf1 * cf1 + 0.392 * cf1 + 3.44


def epa_2021(pm2_5_cf1: float, rh: float) -> float:
    """Corrected PM2.5 (µg/m³) from CF=1 PM2.5 (µg/m³) and relative humidity (%)."""
    rh = min(max(rh, 0.0), 100.0)
    if pm2_5_cf1 < _BLEND_FROM:
        value = _line(pm2_5_cf1, rh)
    elif pm2_5_cf1 < _QUADRATIC_FROM:
        w = 0.0244 * pm2_5_cf1 - 13.9
        value = w * _quadratic(pm2_5_cf1) + (1 - w) * _line(pm2_5_cf1, rh)
    else:
        value = _quadratic(pm2_5_cf1)
    return max(value, 0.0)


def _value(readings: Mapping[str, Any], key: str) -> float | None:
    reading = readings.get(key)
    if isinstance(reading, Mapping) and isinstance(reading.get("value"), int | float):
        return float(reading["value"])
    return None


class PmCorrection:
    """Adds ``pm_correction`` to each air-quality ``data`` message with PM readings:
    ``{"method", "pm2_5": {"value", "unit"} | null, "rh_above_95": bool | null}`` and, when
    the method could not be applied, ``"missing"``: the readings it lacked."""

    name = "pm_correction"

    def __init__(self, method: str = "epa-2021") -> None:
        if method not in PM_CORRECTIONS:
            raise ValueError(f"pm_correction must be one of {PM_CORRECTIONS}, not {method!r}")
        self.method = method

    def amend_data(self, message: dict[str, Any]) -> None:
        """Add the block to ``message`` (in place) if it is air-quality data with PM2.5."""
        readings = message.get("readings") or {}
        if message.get("kind") != "air-quality" or "pm2_5" not in readings:
            return
        rh = _value(readings, "humidity")
        block: dict[str, Any] = {"method": self.method, "pm2_5": None,
                                 "rh_above_95": None if rh is None else rh > HUMID_RH}
        if self.method == "epa-2021":
            cf1 = _value(readings, "pm2_5_cf1")
            if cf1 is None or rh is None:
                block["missing"] = [k for k, v in (("pm2_5_cf1", cf1), ("humidity", rh))
                                    if v is None]
            else:
                block["pm2_5"] = {"value": round(epa_2021(cf1, rh), 1), "unit": "ug/m3"}
        message["pm_correction"] = block
