"""Every published table the derived values use, each with the source it was copied from.

Nothing here computes; the index modules read these tables. Pollutant keys are the gateway's
reading names (``pm2_5``, ``pm10``), traffic class keys the reading names of SPEC §5.3
(``motorbikes``, ``cars``, ``heavy_vehicles``).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "EPA_AQI_CATEGORIES",
    "EPA_AQI_SEGMENTS",
    "EPA_TRUNCATION_DECIMALS",
    "PCU_TCVN_4054_2005",
    "VN_AQI_CATEGORIES",
    "VN_AQI_SEGMENTS",
    "Category",
    "Segment",
]


class Segment(NamedTuple):
    """One band of a piecewise-linear index: concentrations ``c_lo..c_hi`` map onto
    ``i_lo..i_hi`` (µg/m³ → index)."""

    c_lo: float
    c_hi: float
    i_lo: int
    i_hi: int


class Category(NamedTuple):
    """An index band with its published name and colour."""

    lo: int
    hi: int
    key: str
    name: str
    name_en: str
    rgb: tuple[int, int, int]


# --- VN_AQI: Decision 1459/QĐ-TCMT of 12 Nov 2019, Vietnam Environment Administration,
# "Hướng dẫn kỹ thuật tính toán và công bố chỉ số chất lượng không khí Việt Nam (VN_AQI)".

# Bảng 2 (Table 2) "Các giá trị BPi đối với các thông số", µg/m³: levels i = 1..8 with
# Ii = 0, 50, 100, 150, 200, 300, 400, 500. Columns PM10 and PM2.5 as printed; the last row
# reads "≥600" and "≥500": at and above it the index is 500.
_VN_INDEX_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
_VN_BP = {
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm2_5": (0, 25, 50, 80, 150, 250, 350, 500),
}


def _continuous(bps: tuple[int, ...]) -> tuple[Segment, ...]:
    # Table 2 gives one concentration per level; band i runs from BPi to BP(i+1) (Công thức 2).
    levels = _VN_INDEX_LEVELS
    return tuple(
        Segment(bps[i], bps[i + 1], levels[i], levels[i + 1]) for i in range(len(bps) - 1)
    )


VN_AQI_SEGMENTS: dict[str, tuple[Segment, ...]] = {k: _continuous(v) for k, v in _VN_BP.items()}

# Bảng 1 (Table 1) "Khoảng giá trị AQI và đánh giá chất lượng không khí": range, quality,
# colour name, RGB. English names as in REFERENCE.md (good … hazardous).
VN_AQI_CATEGORIES: tuple[Category, ...] = (
    Category(0, 50, "good", "Tốt", "Good", (0, 228, 0)),  # Xanh
    Category(51, 100, "moderate", "Trung bình", "Moderate", (255, 255, 0)),  # Vàng
    Category(101, 150, "poor", "Kém", "Poor", (255, 126, 0)),  # Da cam
    Category(151, 200, "bad", "Xấu", "Bad", (255, 0, 0)),  # Đỏ
    Category(201, 300, "very_bad", "Rất xấu", "Very bad", (143, 63, 151)),  # Tím
    Category(301, 500, "hazardous", "Nguy hại", "Hazardous", (126, 0, 35)),  # Nâu
)


# --- US EPA AQI with the PM2.5 breakpoints of the 2024 PM NAAQS revision (final rule
# 89 FR 16202, 6 Mar 2024, effective 6 May 2024): 40 CFR Part 58 Appendix G Table 2
# "Breakpoints for the AQI", the same numbers as Table 6 of EPA's Technical Assistance Document
# for the Reporting of Daily Air Quality (EPA-454/B-24-002, May 2024). PM2.5 is in µg/m³
# truncated to 0.1, PM10 in µg/m³ truncated to an integer; the rows leave gaps (9.0 | 9.1)
# that a truncated value cannot fall into. The 2024 table joins 301-400 and 401-500 into one
# 301-500 row for both PM rows.
EPA_AQI_SEGMENTS: dict[str, tuple[Segment, ...]] = {
    "pm2_5": (
        Segment(0.0, 9.0, 0, 50),
        Segment(9.1, 35.4, 51, 100),
        Segment(35.5, 55.4, 101, 150),
        Segment(55.5, 125.4, 151, 200),
        Segment(125.5, 225.4, 201, 300),
        Segment(225.5, 325.4, 301, 500),
    ),
    "pm10": (
        Segment(0, 54, 0, 50),
        Segment(55, 154, 51, 100),
        Segment(155, 254, 101, 150),
        Segment(255, 354, 151, 200),
        Segment(355, 424, 201, 300),
        Segment(425, 604, 301, 500),
    ),
}
EPA_TRUNCATION_DECIMALS = {"pm2_5": 1, "pm10": 0}

# TAD Table 1 "AQI categories" (names) and Table 2 "AQI colors" (RGB).
EPA_AQI_CATEGORIES: tuple[Category, ...] = (
    Category(0, 50, "good", "Good", "Good", (0, 228, 0)),
    Category(51, 100, "moderate", "Moderate", "Moderate", (255, 255, 0)),
    Category(101, 150, "usg", "Unhealthy for Sensitive Groups",
             "Unhealthy for Sensitive Groups", (255, 126, 0)),
    Category(151, 200, "unhealthy", "Unhealthy", "Unhealthy", (255, 0, 0)),
    Category(201, 300, "very_unhealthy", "Very Unhealthy", "Very Unhealthy", (143, 63, 151)),
    Category(301, 500, "hazardous", "Hazardous", "Hazardous", (126, 0, 35)),
)


# --- Passenger car units: TCVN 4054:2005 "Đường ô tô — Yêu cầu thiết kế" (Highway — Design
# requirements), Bảng 2 "Hệ số quy đổi từ xe các loại ra xe con", row "Đồng bằng và đồi"
# (plain and hill terrain; the mountain row differs): bicycle 0.2, motorbike 0.3, car 1.0,
# 2-axle truck and bus under 25 seats 2.0, truck of 3+ axles and large bus 2.5, truck/bus
# with trailer 4.0.
# The node's three length classes map onto it as: motorbike → 0.3, car → 1.0, heavy
# (longer than `car_max_cm`, by default 6 m: on city streets mostly full-size buses and
# multi-axle trucks) → 2.5. Urban streets have their own design standard (TCXDVN 104:2007,
# since replaced by TCVN 13592:2022) with a speed-dependent table; it is not the default
# because its figures could not be checked against the published text here (nor could this
# row: check it against your copy of TCVN 4054:2005). Every factor is configurable
# ([derived] pcu in the gateway config).
# `unknown_vehicles` (counted, class not measurable: mostly queues and vehicles merged over
# the zones, so at least one vehicle each, often a car stopped over them or two motorbikes)
# is not in the standard: it counts as one passenger car unit, the unit itself.
PCU_TCVN_4054_2005: dict[str, float] = {
    "motorbikes": 0.3, "cars": 1.0, "heavy_vehicles": 2.5, "unknown_vehicles": 1.0,
}
