"""US EPA AQI (2024 PM2.5 breakpoints, PM10) against values worked by hand from the table.

40 CFR 58 App. G Table 2 (2024): PM2.5 0.0-9.0 / 9.1-35.4 / 35.5-55.4 / 55.5-125.4 /
125.5-225.4 / 225.5-325.4 -> 0-50 / 51-100 / 101-150 / 151-200 / 201-300 / 301-500;
PM10 0-54 / 55-154 / 155-254 / 255-354 / 355-424 / 425-604. PM2.5 is truncated to 0.1,
PM10 to an integer; I = (I_hi - I_lo) / (C_hi - C_lo) * (C - C_lo) + I_lo, rounded.
"""

from __future__ import annotations

import pytest

from streetsense.gateway.derived.epa_aqi import EPA_AQI, truncate
from streetsense.gateway.derived.index import round_half_up
from streetsense.gateway.derived.nowcast import nowcast

PM25_CASES = [
    (0.0, 0),
    (9.0, 50),  # top of Good
    (9.05, 50),  # truncated to 9.0
    (9.1, 51),  # bottom of Moderate
    (12.0, 56),  # 49/26.3 * 2.9 + 51 = 56.40 -> 56
    (20.3, 72),  # 49/26.3 * 11.2 + 51 = 71.87 -> 72
    (35.4, 100),
    (35.49, 100),  # truncated to 35.4
    (35.5, 101),
    (55.4, 150),
    (55.5, 151),
    (125.4, 200),
    (125.5, 201),
    (225.4, 300),
    (225.5, 301),
    (275.45, 400),  # truncated 275.4: 199/99.9 * 49.9 + 301 = 400.40 -> 400
    (325.4, 500),
]
PM10_CASES = [
    (54.0, 50),
    (54.9, 50),  # truncated to 54
    (55.0, 51),
    (100.0, 73),  # 49/99 * 45 + 51 = 73.27 -> 73
    (154.0, 100),
    (155.0, 101),
    (254.0, 150),
    (255.0, 151),
    (354.0, 200),
    (355.0, 201),
    (424.0, 300),
    (425.0, 301),
    (604.0, 500),
]


@pytest.mark.parametrize(("c", "expected"), PM25_CASES)
def test_pm25_2024_breakpoints(c: float, expected: int) -> None:
    """PM2.5 sub-index with the 2024 table matches the hand calculation around each edge."""
    value, beyond = EPA_AQI.sub_index("pm2_5", c)
    assert (round_half_up(value), beyond) == (expected, False)


@pytest.mark.parametrize(("c", "expected"), PM10_CASES)
def test_pm10_breakpoints(c: float, expected: int) -> None:
    """PM10 sub-index matches the hand calculation around each edge."""
    value, beyond = EPA_AQI.sub_index("pm10", c)
    assert (round_half_up(value), beyond) == (expected, False)


@pytest.mark.parametrize(("pollutant", "c"), [("pm2_5", 325.5), ("pm10", 605.0)])
def test_beyond_the_index(pollutant: str, c: float) -> None:
    """Above the top breakpoint the AQI is 500, flagged beyond the index."""
    assert EPA_AQI.sub_index(pollutant, c) == (500.0, True)
    result = EPA_AQI.daily({pollutant: (c, 24)})
    assert result.as_payload()["beyond_index"] is True


@pytest.mark.parametrize(
    ("pollutant", "c", "cut"),
    [("pm2_5", 35.49, 35.4), ("pm2_5", 9.1, 9.1), ("pm2_5", 0.3 * 3, 0.9), ("pm10", 154.99, 154.0)],
)
def test_truncation_cuts_never_rounds(pollutant: str, c: float, cut: float) -> None:
    """Concentrations are truncated, and a float a hair below its decimal does not lose it."""
    assert truncate(pollutant, c) == cut


def test_hourly_nowcast_aqi_names_and_colours() -> None:
    """Hourly AQI from NowCasts: max of PM2.5 and PM10, EPA name and colour of its band."""
    # PM2.5 steady 40 -> NowCast 40.0: 49/19.9 * 4.5 + 101 = 112.08 -> 112 (USG, orange)
    # PM10 steady 100 -> 73
    result = EPA_AQI.hourly({"pm2_5": nowcast([40.0] * 12), "pm10": nowcast([100.0] * 12)})
    payload = result.as_payload()
    assert (payload["value"], payload["dominant"]) == (112, "pm2_5")
    assert payload["name"] == "Unhealthy for Sensitive Groups"
    assert payload["colour"] == [255, 126, 0]
    assert payload["sub_indices"] == {"pm2_5": 112, "pm10": 73}
    assert payload["hours_used"] == 12
