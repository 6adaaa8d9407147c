"""NowCast (Decision 1459 §2.2.1 a; EPA PM NowCast) worked by hand, with missing hours."""

from __future__ import annotations

import pytest

from streetsense.gateway.derived.nowcast import nowcast


def test_steady_hours_give_the_same_value() -> None:
    """Twelve equal hours: w = 1 and the NowCast is that value."""
    nc = nowcast([30.0] * 12)
    assert (nc.value, nc.weight, nc.hours_used) == (30.0, 1.0, 12)


def test_weight_above_half_is_min_over_max() -> None:
    """c = 20, 16, -, 12: w = 12/20 = 0.6; (20 + 0.6*16 + 0.6^3*12) / (1 + 0.6 + 0.216)."""
    nc = nowcast([20.0, 16.0, None, 12.0])
    # numerator 20 + 9.6 + 2.592 = 32.192; denominator 1.816 -> 17.7269
    assert nc.weight == pytest.approx(0.6)
    assert nc.value == pytest.approx(32.192 / 1.816)
    assert nc.hours_used == 3


def test_weight_is_floored_at_one_half() -> None:
    """c = 40, 10, 10: w* = 0.25 -> 0.5; (40 + 5 + 2.5) / 1.75 = 27.142857."""
    nc = nowcast([40.0, 10.0, 10.0])
    assert nc.weight == 0.5
    assert nc.value == pytest.approx(47.5 / 1.75)


def test_missing_current_hour_still_valid_with_two_of_three() -> None:
    """c1 missing, c2 = 10, c3 = 20: valid; w = 0.5; (0.5*10 + 0.25*20) / 0.75 = 13.33."""
    nc = nowcast([None, 10.0, 20.0])
    assert nc.value == pytest.approx(10 / 0.75)
    assert nc.hours_used == 2


@pytest.mark.parametrize(
    "hours",
    [
        [30.0, None, None, 10.0, 10.0],  # only c1 of c1..c3
        [None, None, 30.0] + [10.0] * 9,  # only c3, even with 10 older hours
        [],
    ],
)
def test_fewer_than_two_of_the_three_latest_hours_is_insufficient(
    hours: list[float | None],
) -> None:
    """Without 2 of c1, c2, c3 there is no NowCast ("không có dữ liệu")."""
    nc = nowcast(hours)
    assert nc.value is None and nc.weight is None
    assert nc.hours_used == sum(1 for h in hours if h is not None)


def test_only_twelve_hours_count() -> None:
    """A 13th hour back is outside the window."""
    assert nowcast([10.0] * 12 + [1000.0]).value == 10.0


def test_all_zero_hours() -> None:
    """Clean air (all zeros) gives 0, not a division by zero."""
    assert nowcast([0.0, 0.0, 0.0]).value == 0.0
