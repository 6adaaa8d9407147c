"""Traffic flow per lane: vehicles/hour by class, PCU/hour (TCVN 4054:2005 defaults),
occupancy and mean speed, and the TrafficDeriver's ``traffic`` payload."""

from __future__ import annotations

import pytest

from streetsense.gateway.derived import TrafficDeriver
from streetsense.gateway.derived.pcu import lane_flows, pcu_factors
from streetsense.gateway.derived.tables import PCU_TCVN_4054_2005
from tests.derived.derived_support import T0, MemoryStore, data_message

TWO_LANES = {
    "motorbikes": 41, "cars": 5, "heavy_vehicles": 1, "speed_mean": 28.5, "occupancy": 12.3,
    "motorbikes_1": 30, "cars_1": 0, "heavy_vehicles_1": 0, "speed_mean_1": 24.0,
    "occupancy_1": 3.0,
}


def test_default_factors_are_tcvn_4054_plain_terrain_row() -> None:
    """Motorbike 0.3, car 1.0, heavy (3+ axles / large bus) 2.5; unknown (not in the
    standard) one passenger car unit."""
    assert PCU_TCVN_4054_2005 == {"motorbikes": 0.3, "cars": 1.0, "heavy_vehicles": 2.5,
                                  "unknown_vehicles": 1.0}


def test_flow_and_pcu_sums_per_lane(store: MemoryStore) -> None:
    """60-s interval: counts x 60 per hour; PCU = (41*0.3 + 5*1.0 + 1*2.5) * 60 = 1188."""
    message = data_message("traffic", T0 + 60, TWO_LANES, interval_s=60, seq=3)
    [(subtopic, payload)] = TrafficDeriver().on_data(object(), message, store)
    assert subtopic == "traffic"
    lane0, lane1 = payload["lanes"]
    assert lane0 == {
        "lane": 0,
        "counts": {"motorbikes": 41, "cars": 5, "heavy_vehicles": 1, "unknown_vehicles": 0,
                   "total": 47},
        "vehicles_per_hour": {"motorbikes": 2460, "cars": 300, "heavy_vehicles": 60,
                              "unknown_vehicles": 0, "total": 2820},
        "pcu_per_hour": 1188.0,  # 12.3 + 5 + 2.5 = 19.8 PCU in the minute
        "occupancy_pct": 12.3,
        "speed_mean_kmh": 28.5,
        "speed_space_mean_kmh": None,  # this node sent none
    }
    # lane 1: 30 motorbikes * 0.3 * 60 = 540 PCU/h, 1800 veh/h
    assert (lane1["lane"], lane1["pcu_per_hour"]) == (1, 540.0)
    assert lane1["vehicles_per_hour"]["total"] == 1800
    assert payload["total"] == {"vehicles_per_hour": 4620, "pcu_per_hour": 1728.0}
    assert (payload["node"], payload["ts"], payload["interval_s"]) == (
        "HN-0042", "2026-12-04T00:01:00Z", 60,
    )
    assert store.saved == {}  # traffic needs no state


def test_configured_factors_replace_the_defaults() -> None:
    """With motorbike 0.25 (an urban-street choice), 5-min counts scale by 12 per hour."""
    factors = pcu_factors({"motorbikes": 0.25})
    [lane] = lane_flows({"motorbikes": {"value": 100}, "cars": {"value": 10}}, 300, factors)
    # (100*0.25 + 10*1.0) * 12 = 420; heavy missing counts as 0
    assert lane["pcu_per_hour"] == 420.0
    assert lane["counts"]["heavy_vehicles"] == 0
    assert lane["speed_mean_kmh"] is None and lane["occupancy_pct"] is None


@pytest.mark.parametrize(
    ("overrides", "word"), [({"bicycles": 0.2}, "unknown"), ({"cars": -1}, ">= 0")]
)
def test_bad_factor_config_is_rejected(overrides: dict[str, float], word: str) -> None:
    """An unknown class or a negative factor fails at start-up with a message naming it."""
    with pytest.raises(ValueError, match=word):
        TrafficDeriver(pcu=overrides)


def test_unknown_class_counts_in_flow_at_one_pcu() -> None:
    """Vehicles of unknown class (congested, merged) are in the total flow and count one PCU
    each; both mean speeds are passed on."""
    readings = {"motorbikes": {"value": 20}, "unknown_vehicles": {"value": 6},
                "speed_mean": {"value": 12.4}, "speed_space_mean": {"value": 9.8}}
    [lane] = lane_flows(readings, 60, pcu_factors())
    assert lane["counts"]["unknown_vehicles"] == 6 and lane["counts"]["total"] == 26
    assert lane["vehicles_per_hour"]["unknown_vehicles"] == 360
    assert lane["pcu_per_hour"] == round((20 * 0.3 + 6 * 1.0) * 60, 1)  # 720.0
    assert (lane["speed_mean_kmh"], lane["speed_space_mean_kmh"]) == (12.4, 9.8)
    assert pcu_factors({"unknown_vehicles": 0.5})["unknown_vehicles"] == 0.5


def test_empty_lane_has_no_speed() -> None:
    """No vehicle in the interval: the node's 0 km/h is reported as no speed."""
    [lane] = lane_flows({"motorbikes": {"value": 0}, "speed_mean": {"value": 0}}, 60,
                        pcu_factors())
    assert lane["speed_mean_kmh"] is None and lane["vehicles_per_hour"]["total"] == 0


def test_non_traffic_or_interval_less_messages_publish_nothing(store: MemoryStore) -> None:
    """Air-quality data, a traffic message without interval_s or without counts: nothing."""
    deriver = TrafficDeriver()
    for message in (
        data_message("air-quality", T0, {"pm2_5": 10.0}),
        data_message("traffic", T0, {"motorbikes": 3}, interval_s=None),
        data_message("traffic", T0, {"occupancy": 3.0}),
    ):
        assert deriver.on_data(object(), message, store) == []
