"""The NowCast: a weighted mean of the last 12 hourly means, used by both indices for PM.

VN_AQI, Decision 1459/QĐ-TCMT §2.2.1(a): c1 is the current hour's mean, c12 the one 11 hours
before; w* = Cmin / Cmax over the 12 hours; w = 1/2 if w* ≤ 1/2, else w = w*;
NowCast = Σ w^(i-1)·ci / Σ w^(i-1). A missing ci gets weight 0, and the NowCast exists only
if at least 2 of c1, c2, c3 are present ("không có dữ liệu" otherwise).

The decision writes the w = 1/2 case as Σ (1/2)^i·ci without the denominator. With all 12
hours present that differs from the general formula only by the factor 1 - 2⁻¹² (0.02 %);
with a missing hour (weight 0, as the decision says) the unnormalised sum would shrink the
value by that hour's share, so the normalised form is used for both cases.

EPA's PM NowCast (TAD EPA-454/B-24-002, "How the NowCast is calculated"; EPA's "PM NowCast"
fact sheet) is the same computation: weight factor 1 - (max - min)/max = min/max, floored at
0.5 ("if less than 0.5, set it equal to 0.5": the same weight), at least 2 of the 3 most recent
hours valid. It runs on the raw hourly means; only the result is truncated (see ``epa_aqi``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WINDOW_HOURS", "NowCast", "nowcast"]

WINDOW_HOURS = 12
_MIN_WEIGHT = 0.5


@dataclass(frozen=True)
class NowCast:
    """A NowCast value (None when there are too few recent hours) and what it used."""

    value: float | None
    weight: float | None
    hours_used: int


def nowcast(hourly: Sequence[float | None]) -> NowCast:
    """NowCast of ``hourly`` = [c1, c2, …]: the current hour first, None for a missing hour.

    Only the first 12 entries count. Negative means (sensor offset) count as 0."""
    window = [None if c is None else max(c, 0.0) for c in hourly[:WINDOW_HOURS]]
    present = [(i, c) for i, c in enumerate(window) if c is not None]
    if sum(1 for c in window[:3] if c is not None) < 2:
        return NowCast(None, None, len(present))
    c_max = max(c for _, c in present)
    c_min = min(c for _, c in present)
    # All hours zero: every weight is equal, so any w gives 0; take 1.
    weight = max(c_min / c_max, _MIN_WEIGHT) if c_max > 0 else 1.0
    num = sum(weight**i * c for i, c in present)
    den = sum(weight**i for i, _ in present)
    return NowCast(num / den, weight, len(present))
