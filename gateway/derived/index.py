"""What VN_AQI and the EPA AQI share: linear interpolation in a band, rounding, the
category of a value, and the overall index as the maximum over pollutants."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .nowcast import NowCast
from .tables import Category, Segment

__all__ = ["IndexMethod", "IndexResult", "combine", "interpolate", "round_half_up"]


def round_half_up(x: float) -> int:
    """Nearest integer, halves up (both methods say "round to an integer"; Python's ``round``
    would send 40.5 to 40). The value is first rounded to 6 decimals so that a product landing
    a hair below a half (109.49999999999999 for 109.5) rounds as the hand calculation does."""
    return math.floor(round(x, 6) + 0.5)


def interpolate(concentration: float, segments: Sequence[Segment]) -> tuple[float, bool]:
    """The unrounded sub-index of ``concentration`` and whether it lies beyond the table
    (then the index is the table's top, 500).

    The first band whose upper breakpoint is not below the value is used:
    ``I = (I_hi - I_lo) / (C_hi - C_lo) * (C - C_lo) + I_lo``."""
    c = max(concentration, 0.0)
    for seg in segments:
        if c <= seg.c_hi:
            return (seg.i_hi - seg.i_lo) / (seg.c_hi - seg.c_lo) * (c - seg.c_lo) + seg.i_lo, False
    return float(segments[-1].i_hi), True


def _category(value: int, categories: Sequence[Category]) -> Category:
    for cat in categories:
        if value <= cat.hi:
            return cat
    return categories[-1]


@dataclass(frozen=True)
class IndexResult:
    """One index (VN_AQI or EPA AQI) over all pollutants for one hour or day."""

    value: int | None
    category: Category | None
    dominant: str | None
    sub_indices: Mapping[str, int | None]
    hours_used: int
    beyond_index: bool

    @property
    def insufficient(self) -> bool:
        """No pollutant had enough data by the method's own rules."""
        return self.value is None

    def as_payload(self) -> dict[str, Any]:
        """The JSON object published under ``vn_aqi`` / ``epa_aqi``."""
        cat = self.category
        return {
            "value": self.value,
            "category": cat.key if cat else None,
            "name": cat.name if cat else None,
            "name_en": cat.name_en if cat else None,
            "colour": list(cat.rgb) if cat else None,
            "dominant": self.dominant,
            "sub_indices": dict(self.sub_indices),
            "hours_used": self.hours_used,
            "insufficient": self.insufficient,
            "beyond_index": self.beyond_index,
        }


def combine(
    sub: Mapping[str, tuple[float, bool] | None],
    hours_used: Mapping[str, int],
    categories: Sequence[Category],
) -> IndexResult:
    """Overall index = the largest rounded sub-index; its pollutant is the dominant one.

    ``sub`` maps pollutant → (unrounded sub-index, beyond the table) or None when that
    pollutant had too little data. Ties go to the first pollutant in ``sub``'s order."""
    rounded = {p: (round_half_up(s[0]) if s else None) for p, s in sub.items()}
    valid = {p: v for p, v in rounded.items() if v is not None}
    if not valid:
        return IndexResult(None, None, None, rounded, max(hours_used.values(), default=0), False)
    dominant = max(valid, key=valid.__getitem__)
    beyond = sub[dominant]
    return IndexResult(
        value=valid[dominant],
        category=_category(valid[dominant], categories),
        dominant=dominant,
        sub_indices=rounded,
        hours_used=hours_used.get(dominant, 0),
        beyond_index=bool(beyond and beyond[1]),
    )


@dataclass(frozen=True)
class IndexMethod:
    """An index defined by its breakpoint tables, its categories and how a concentration is
    prepared before the table is read (EPA truncates; VN_AQI uses the value as it is)."""

    segments: Mapping[str, Sequence[Segment]]
    categories: Sequence[Category]
    prepare: Callable[[str, float], float]

    @property
    def pollutants(self) -> tuple[str, ...]:
        """The pollutants this method has a table for."""
        return tuple(self.segments)

    def sub_index(self, pollutant: str, concentration: float) -> tuple[float, bool]:
        """Unrounded sub-index of a concentration in µg/m³, and whether it is beyond the
        table."""
        return interpolate(self.prepare(pollutant, concentration), self.segments[pollutant])

    def hourly(self, nowcasts: Mapping[str, NowCast]) -> IndexResult:
        """The hourly index from each pollutant's NowCast."""
        sub = {
            p: (None if nc.value is None else self.sub_index(p, nc.value))
            for p, nc in nowcasts.items()
        }
        return combine(sub, {p: nc.hours_used for p, nc in nowcasts.items()}, self.categories)

    def daily(self, means: Mapping[str, tuple[float | None, int]]) -> IndexResult:
        """The daily index from each pollutant's (24-hour mean or None, hours in it)."""
        sub = {p: (None if m is None else self.sub_index(p, m)) for p, (m, _) in means.items()}
        return combine(sub, {p: n for p, (_, n) in means.items()}, self.categories)
