"""VN_AQI (Decision 1459/QĐ-TCMT, 2019) against values worked by hand from its tables.

Bảng 2 (µg/m³) — Ii: 0, 50, 100, 150, 200, 300, 400, 500;
PM2.5: 0, 25, 50, 80, 150, 250, 350, 500; PM10: 0, 50, 150, 250, 350, 420, 500, 600.
Công thức 2: AQIx = (I(i+1) - Ii) / (BP(i+1) - BPi) * (C - BPi) + Ii, rounded to an integer.
"""

from __future__ import annotations

import pytest

from streetsense.gateway.derived.index import round_half_up
from streetsense.gateway.derived.nowcast import nowcast
from streetsense.gateway.derived.tables import VN_AQI_CATEGORIES
from streetsense.gateway.derived.vn_aqi import VN_AQI

PM25_CASES = [
    (0.0, 0),  # bottom of the table
    (12.5, 25),  # 50/25 * 12.5 = 25
    (25.0, 50),  # BP2: top of Tốt
    (25.2, 50),  # 50/25 * 0.2 + 50 = 50.4 -> 50
    (25.25, 51),  # 50.5 -> 51 (halves round up)
    (25.5, 51),  # 50/25 * 0.5 + 50 = 51
    (50.0, 100),  # BP3
    (50.2, 100),  # 50/30 * 0.2 + 100 = 100.33 -> 100
    (50.3, 101),  # 50/30 * 0.3 + 100 = 100.5 -> 101
    (80.0, 150),  # BP4
    (80.7, 151),  # 50/70 * 0.7 + 150 = 150.5 -> 151
    (150.0, 200),  # BP5
    (150.5, 201),  # 100/100 * 0.5 + 200 = 200.5 -> 201
    (250.0, 300),  # BP6
    (250.5, 301),  # 100/100 * 0.5 + 300 = 300.5 -> 301
    (350.0, 400),  # BP7
    (425.0, 450),  # 100/150 * 75 + 400 = 450
    (500.0, 500),  # BP8 "≥500"
]
PM10_CASES = [
    (50.0, 50),  # BP2
    (51.0, 51),  # 50/100 * 1 + 50 = 50.5 -> 51
    (150.0, 100),  # BP3
    (151.0, 101),  # 50/100 * 1 + 100 = 100.5 -> 101
    (250.0, 150),  # BP4
    (251.0, 151),  # 150.5 -> 151
    (350.0, 200),  # BP5
    (350.35, 201),  # 100/70 * 0.35 + 200 = 200.5 -> 201
    (420.0, 300),  # BP6
    (420.4, 301),  # 100/80 * 0.4 + 300 = 300.5 -> 301
    (500.0, 400),  # BP7
    (550.0, 450),  # 100/100 * 50 + 400 = 450
    (600.0, 500),  # BP8 "≥600"
]


@pytest.mark.parametrize(("c", "expected"), PM25_CASES)
def test_pm25_sub_index_at_and_around_every_breakpoint(c: float, expected: int) -> None:
    """PM2.5 sub-index matches the hand calculation from Bảng 2 at and around each BPi."""
    value, beyond = VN_AQI.sub_index("pm2_5", c)
    assert (round_half_up(value), beyond) == (expected, False)


@pytest.mark.parametrize(("c", "expected"), PM10_CASES)
def test_pm10_sub_index_at_and_around_every_breakpoint(c: float, expected: int) -> None:
    """PM10 sub-index matches the hand calculation from Bảng 2 at and around each BPi."""
    value, beyond = VN_AQI.sub_index("pm10", c)
    assert (round_half_up(value), beyond) == (expected, False)


@pytest.mark.parametrize(("pollutant", "c"), [("pm2_5", 612.0), ("pm10", 700.0)])
def test_above_the_table_is_500_and_flagged(pollutant: str, c: float) -> None:
    """Above the last row ("≥500" / "≥600") the index is 500 and marked beyond the table."""
    assert VN_AQI.sub_index(pollutant, c) == (500.0, True)


def test_decision_worked_example_nowcast_and_hourly_aqi() -> None:
    """§2.3 a/b: the decision's PM2.5 series gives NowCast 20.3 and AQI(PM2.5) 41."""
    # 09:00 … 20:00 as printed; c1 is the current hour (20:00), so reverse.
    series = [26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6]
    nc = nowcast(list(reversed(series)))
    # w* = 16.5 / 26.9 = 0.613 > 1/2, so w = w*; the decision prints 20.3.
    assert nc.weight == pytest.approx(16.5 / 26.9)
    assert nc.value is not None and round(nc.value, 1) == 20.3
    result = VN_AQI.hourly({"pm2_5": nc})
    # 50/25 * 20.27 = 40.5 -> 41, as printed ("AQI(PM2.5) = … = 41").
    assert (result.value, result.dominant, result.category) == (41, "pm2_5", VN_AQI_CATEGORIES[0])


def test_decision_worked_example_daily_pm25() -> None:
    """§2.3 c: a 24-hour PM2.5 mean of 55.7 gives AQI^d 110."""
    # (150 - 100) / (80 - 50) * (55.7 - 50) + 100 = 109.5 -> 110
    result = VN_AQI.daily({"pm2_5": (55.7, 24), "pm10": (None, 3)})
    assert (result.value, result.dominant) == (110, "pm2_5")
    assert result.sub_indices == {"pm2_5": 110, "pm10": None}
    assert result.as_payload()["name"] == "Kém"


def test_overall_index_is_the_maximum_and_names_the_dominant_pollutant() -> None:
    """AQI^h = max(AQIx): PM10 160 (125) beats PM2.5 30 (60); category Kém, orange."""
    nc25 = nowcast([30.0, 30.0, 30.0])  # 50/25 * 5 + 50 = 60
    nc10 = nowcast([160.0, 160.0, 160.0])  # 50/100 * 10 + 100 = 105
    payload = VN_AQI.hourly({"pm2_5": nc25, "pm10": nc10}).as_payload()
    assert payload == {
        "value": 105,
        "category": "poor",
        "name": "Kém",
        "name_en": "Poor",
        "colour": [255, 126, 0],
        "dominant": "pm10",
        "sub_indices": {"pm2_5": 60, "pm10": 105},
        "hours_used": 3,
        "insufficient": False,
        "beyond_index": False,
    }


@pytest.mark.parametrize(
    ("value", "key", "name", "rgb"),
    [
        (50, "good", "Tốt", (0, 228, 0)),
        (51, "moderate", "Trung bình", (255, 255, 0)),
        (100, "moderate", "Trung bình", (255, 255, 0)),
        (101, "poor", "Kém", (255, 126, 0)),
        (151, "bad", "Xấu", (255, 0, 0)),
        (201, "very_bad", "Rất xấu", (143, 63, 151)),
        (300, "very_bad", "Rất xấu", (143, 63, 151)),
        (301, "hazardous", "Nguy hại", (126, 0, 35)),
    ],
)
def test_categories_follow_table_1(value: int, key: str, name: str, rgb: tuple[int, ...]) -> None:
    """Bảng 1: the band edges carry the published names and RGB colours."""
    # Reach each value through PM2.5: pick c on the band that gives exactly ``value``.
    c = next(
        seg.c_lo + (value - seg.i_lo) * (seg.c_hi - seg.c_lo) / (seg.i_hi - seg.i_lo)
        for seg in VN_AQI.segments["pm2_5"]
        if seg.i_lo <= value <= seg.i_hi
    )
    payload = VN_AQI.daily({"pm2_5": (c, 24)}).as_payload()
    assert (payload["value"], payload["category"], payload["name"]) == (value, key, name)
    assert tuple(payload["colour"]) == rgb


def test_insufficient_when_no_pollutant_has_a_nowcast() -> None:
    """With neither PM2.5 nor PM10 usable, the index is insufficient (the decision requires one)."""
    payload = VN_AQI.hourly({"pm2_5": nowcast([None, None, 10.0]), "pm10": nowcast([])})
    assert payload.as_payload()["insufficient"] is True
    assert payload.value is None and payload.category is None
