"""Properties every index and the NowCast must have, over many generated inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streetsense.gateway.derived.epa_aqi import EPA_AQI
from streetsense.gateway.derived.index import IndexMethod
from streetsense.gateway.derived.nowcast import nowcast
from streetsense.gateway.derived.vn_aqi import VN_AQI

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None)
concentration = st.floats(min_value=0.0, max_value=800.0, allow_nan=False)


@pytest.mark.parametrize("method", [VN_AQI, EPA_AQI], ids=["vn", "epa"])
@pytest.mark.parametrize("pollutant", ["pm2_5", "pm10"])
def test_sub_index_never_falls_as_concentration_rises(method: IndexMethod, pollutant: str) -> None:
    """More pollution never gives a lower (rounded) index, and it stays within 0..500."""

    @SETTINGS
    @given(concentration, concentration)
    def check(a: float, b: float) -> None:
        lo, hi = sorted((a, b))
        i_lo = method.daily({pollutant: (lo, 24)}).value
        i_hi = method.daily({pollutant: (hi, 24)}).value
        assert i_lo is not None and i_hi is not None
        assert 0 <= i_lo <= i_hi <= 500

    check()


@SETTINGS
@given(st.lists(st.one_of(st.none(), concentration), min_size=3, max_size=12))
def test_nowcast_lies_between_the_hours_it_uses(hours: list[float | None]) -> None:
    """A weighted mean: never below the smallest nor above the largest hour present."""
    nc = nowcast(hours)
    present = [h for h in hours if h is not None]
    if nc.value is None:
        assert sum(h is not None for h in hours[:3]) < 2
    else:
        assert min(present) - 1e-9 <= nc.value <= max(present) + 1e-9
        assert nc.weight is not None and 0.5 <= nc.weight <= 1.0
