"""The EPA/Barkjohn PM2.5 correction (hand-computed values, the published break points) and the
``pm_correction`` block it adds to ``data`` messages."""

from __future__ import annotations

import itertools

import pytest

from streetsense.gateway.derived import PmCorrection, epa_2021
from tests.derived.derived_support import T0, data_message


def test_us_wide_line_hand_computed() -> None:
    """0.524 x 50 - 0.0862 x 70 + 5.75 = 25.916; at RH 0 it is 0.524 x cf1 + 5.75."""
    assert epa_2021(50.0, 70.0) == pytest.approx(25.916)
    assert epa_2021(100.0, 0.0) == pytest.approx(58.15)


def test_extended_form_meets_the_published_anchor_points() -> None:
    """The line gives 300 µg/m³ at CF=1 570 and 50 % RH, the quadratic 400 at 611 (Barkjohn
    et al. 2022, abstract); the blend between stays between the two forms and rises."""
    assert epa_2021(569.99, 50.0) == pytest.approx(300.0, abs=0.2)
    assert epa_2021(611.0, 50.0) == pytest.approx(400.0, abs=0.2)
    assert epa_2021(611.0, 90.0) == epa_2021(611.0, 10.0)  # no RH term in smoke
    blend = [epa_2021(cf1, 50.0) for cf1 in range(570, 612, 5)]
    assert all(a < b for a, b in itertools.pairwise(blend))
    assert epa_2021(1000.0, 50.0) == pytest.approx(4.21e-4 * 1e6 + 392 + 3.44)


def test_clean_humid_air_gives_zero_not_a_negative() -> None:
    """2 µg/m³ at 95 % RH: 1.048 - 8.189 + 5.75 < 0 -> 0."""
    assert epa_2021(2.0, 95.0) == 0.0


def _air(readings: dict[str, float]) -> dict[str, object]:
    return data_message("air-quality", T0 + 300, readings)


def test_data_block_carries_raw_and_corrected_with_the_method() -> None:
    """With CF=1 PM2.5 and RH the block has the corrected value; raw readings stay as sent."""
    message = _air({"pm2_5": 31.0, "pm2_5_cf1": 46.0, "humidity": 80.0})
    PmCorrection("epa-2021").amend_data(message)
    # 0.524 x 46 - 0.0862 x 80 + 5.75 = 22.958
    assert message["pm_correction"] == {"method": "epa-2021", "rh_above_95": False,
                                        "pm2_5": {"value": 23.0, "unit": "ug/m3"}}
    assert message["readings"]["pm2_5"]["value"] == 31.0  # type: ignore[index]


def test_readings_above_95_percent_rh_are_flagged() -> None:
    """RH 97 %: corrected, and flagged; with method none the flag is still there."""
    for method in ("epa-2021", "none"):
        message = _air({"pm2_5": 60.0, "pm2_5_cf1": 90.0, "humidity": 97.0})
        PmCorrection(method).amend_data(message)
        block = message["pm_correction"]
        assert block["rh_above_95"] is True and block["method"] == method  # type: ignore[index]
        assert (block["pm2_5"] is None) == (method == "none")  # type: ignore[index]


def test_missing_inputs_are_named_and_nothing_is_guessed() -> None:
    """An SDS011 node (no CF=1) without RH: no corrected value, the missing readings listed;
    messages without PM or of other kinds get no block."""
    message = _air({"pm2_5": 31.0, "pm10": 50.0})
    PmCorrection().amend_data(message)
    assert message["pm_correction"] == {"method": "epa-2021", "pm2_5": None,
                                        "rh_above_95": None,
                                        "missing": ["pm2_5_cf1", "humidity"]}
    for other in (_air({"co2": 500.0}), data_message("traffic", T0 + 60, {"cars": 3})):
        PmCorrection().amend_data(other)
        assert "pm_correction" not in other


def test_unknown_method_is_refused() -> None:
    """A method name the gateway does not know is an error at start-up."""
    with pytest.raises(ValueError, match="epa-2021"):
        PmCorrection("lrapa")
