"""ssnode.vehicles: vehicles from zone-pair detections in mixed traffic, on MicroPython and CPython.

Each case is a few vehicles of the street model (hil_tests/street.py: footprints over zones,
each zone the union of what is over it) whose edges go through the firmware as the node's
task runs it (mp_traffic.py). The cases are the ones issue 14 measured on the former
counter: abreast motorbikes, a car over several zones, a motorbike on the lane line, a lane
change between the zones, a stop over the zones, a creeping platoon.
"""

from __future__ import annotations

from typing import Any

import pytest

from streetsense.hil.street import LAYOUTS, Layout, Trajectory, body
from streetsense.hil.street_scenarios import Street, edges, scripted_trajectory
from tests.firmware import traffic_gen as tg

PAIR, SUBLANE = LAYOUTS["pair"], LAYOUTS["sublane"]
STEP_US = 100_000
BIKE, CAR = body("motorbike", 1.9, 0.7), body("car", 4.2, 1.7)
Vehicle = tuple[Any, Trajectory]


def _spec(layout: Layout, vehicles: list[Vehicle], **config: int) -> dict[str, Any]:
    """The firmware run over these vehicles, with the node's settings for `layout`."""
    street = Street(layout)
    for bod, traj in vehicles:
        street.add(bod, traj)
    out = [[pair, det, level, round(t * 1e6)]
           for t, pair, det, level in edges(street.advance(120.0), layout.pairs)]
    s = layout.settings()
    cfg = {"lanes": s["lanes"], "sublanes": s["sublanes"],
           "spacing_mm": s["detector_spacing_cm"] * 10,
           "detector_length_mm": s["detector_length_cm"] * 10,
           "detector_width_mm": s["detector_width_cm"] * 10, "car_max_mm": 6000, **config}
    return {"config": cfg, "edges": out, "start_us": 0, "step_us": STEP_US,
            "steps": out[-1][3] // STEP_US + 60, "report_steps": 1200, "drain": True}


def _at(layout: Layout, bod: Any, lane: int, kmh: float, t: float,
        y: float | None = None) -> Vehicle:
    return bod, scripted_trajectory(layout, lane, kmh, 1, t, y)


def _classes(res: dict[str, Any]) -> list[int]:
    return [e[4] for e in sorted(res["events"], key=lambda e: e[5])]


def test_motorbikes_abreast_over_a_sublane_array_are_two(run) -> None:
    """Two motorbikes side by side, 0.4 m apart longitudinally: a sub-lane array counts two
    motorbikes (a pair across the lane sees one 2.3 m occupancy: one motorbike)."""
    bikes = [_at(SUBLANE, BIKE, 0, 30.0, 1.0, y=0.6), _at(SUBLANE, BIKE, 0, 30.0, 1.048, y=3.0)]
    res = run(_spec(SUBLANE, bikes))
    assert res["totals"][0] == [2, 0, 0, 0, 0]
    bikes = [_at(PAIR, BIKE, 0, 30.0, 1.0, y=0.6), _at(PAIR, BIKE, 0, 30.0, 1.048, y=2.9)]
    assert run(_spec(PAIR, bikes))["totals"][0] == [1, 0, 0, 0, 0]


def test_car_over_three_sublane_zones_is_one_car(run) -> None:
    """A 1.7 m wide car centred in a lane of three 1.2 m zones occupies all three with the
    same edges: one car, with its speed and length."""
    res = run(_spec(SUBLANE, [_at(SUBLANE, CAR, 0, 36.0, 1.0)]))
    assert res["totals"][0] == [0, 1, 0, 0, 0]
    [event] = res["events"]
    assert abs(event[2] - 360) <= 1 and abs(event[3] - 420) <= 2


def test_motorbike_with_its_rider_over_the_next_zone_is_one(run) -> None:
    """A motorbike whose frame runs in zone 0 and whose rider and mirrors reach zone 1: zone 1
    sees a shorter occupancy inside zone 0's, and the motorbike counts once."""
    spec = _spec(SUBLANE, [_at(SUBLANE, BIKE, 0, 25.0, 1.0, y=0.95)])
    assert {e[0] for e in spec["edges"]} == {0, 1}  # frame 0.75-1.15 m, rider 0.6-1.3 m
    assert run(spec)["totals"][0] == [1, 0, 0, 0, 0]


def test_motorbike_on_the_lane_line_is_counted_once(run) -> None:
    """A motorbike riding on the line between two lanes, each with a pair across it: both
    pairs see it; it counts once, and `straddling` says so."""
    res = run(_spec(PAIR, [_at(PAIR, BIKE, 0, 30.0, 1.0, y=3.5)]))
    assert [sum(lane[i] for lane in res["totals"]) for i in range(5)] == [1, 0, 0, 0, 0]
    assert res["counters"]["straddling"] == 1


def test_lane_change_between_the_zones_is_counted_once_in_the_new_lane(run) -> None:
    """A motorbike that crosses the lane line while over the zones (3 m/s across): mostly in
    lane 0 at zone A, mostly in lane 1 at zone B; one motorbike, in lane 1, and a lane
    change in the counters (the former counter: one in each lane)."""
    traj = Trajectory(1, 0.0)
    traj.add(1.0, 0.0, 8.0, 0.0, 2.9, 3.0)  # centre 2.9 m -> 4.7 m: the line is at 3.5 m
    traj.add(1.6, 4.8, 8.0, 0.0, 4.7, 0.0)
    res = run(_spec(PAIR, [(BIKE, traj)]))
    assert res["totals"] == [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert res["counters"]["lane_changes"] == 1


def test_car_stopped_over_both_zones_is_unknown_not_heavy(run) -> None:
    """A 4.2 m car that stops 8 s over both zones (a red light) measured 70.9 m, heavy, on the
    former counter: now it counts as one vehicle of unknown class."""
    traj = Trajectory(1, 0.0)
    traj.add(1.0, 0.0, 8.3, 0.0, 1.75, 0.0)
    traj.add(1.0 + 3.0 / 8.3, 3.0, 0.0, 0.0, 1.75, 0.0)  # front 3 m on: over A and B
    traj.add(9.0 + 3.0 / 8.3, 3.0, 8.3, 0.0, 1.75, 0.0)
    res = run(_spec(PAIR, [(CAR, traj)]))
    assert res["totals"][0] == [0, 0, 0, 1, 0]


def test_creeping_motorbikes_with_short_gaps_are_never_a_heavy(run) -> None:
    """Twenty motorbikes creeping at 8 km/h with 0.3 m gaps merge over a 0.5 m zone (the former
    counter: one heavy 43.7 m long): no heavy, and what is counted is of unknown class."""
    bikes = [_at(PAIR, BIKE, 0, 8.0, 1.0 + i * 2.2 / (8 / 3.6)) for i in range(20)]
    res = run(_spec(PAIR, bikes))
    moto, car, heavy, unknown, unpaired = res["totals"][0]
    assert heavy == 0 and unknown >= 1 and moto + car + unpaired == 0


def test_accelerating_motorbike_is_measured(run) -> None:
    """A motorbike moving off from a queue (1.5 m/s2 from 10 km/h): its on-times and transits
    differ, yet it is one motorbike with its speed at the zones' middle and its length."""
    traj = Trajectory(1, 0.0)
    traj.add(1.0, 0.0, 10 / 3.6, 1.5, 1.75, 0.0)
    res = run(_spec(PAIR, [(BIKE, traj)]))
    assert res["totals"][0] == [1, 0, 0, 0, 0]
    [event] = res["events"]
    t_mid = (-(10 / 3.6) + ((10 / 3.6) ** 2 + 2 * 1.5 * 1.0) ** 0.5) / 1.5  # front at 1 m
    assert abs(event[2] / 10 - (10 / 3.6 + 1.5 * t_mid) * 3.6) < 0.5
    assert abs(event[3] - 190) <= 10


def test_edges_that_fit_no_vehicle_are_unknown_without_speed(run) -> None:
    """A's occupancy 0.3 s, B's 3 s at a 0.2 s transit: no single vehicle does that; it counts
    as unknown, without speed, and `inconsistent` says so."""
    spec = {"config": {"lanes": 1, "spacing_mm": 2000, "detector_length_mm": 500},
            "edges": [[0, 0, 1, 1_000_000], [0, 1, 1, 1_200_000], [0, 0, 0, 1_300_000],
                      [0, 1, 0, 4_200_000]],
            "start_us": 0, "step_us": STEP_US, "steps": 100, "report_steps": 1200}
    res = run(spec)
    assert res["totals"] == [[0, 0, 0, 1, 0]]
    assert res["events"][0][2] == 0 and res["counters"]["inconsistent"] == 1


def test_congested_lane_has_no_heavy(run) -> None:
    """After vehicles at 6-9 km/h (a congested lane) a 9 m heavy length is unknown; the same
    vehicle in flowing traffic is a heavy."""
    heavy = tg.Vehicle(0, 1, 9.0, 9000, gap_s=1.0, cls=tg.HEAVY)
    slow = [tg.Vehicle(0, 1, 6.0 + i, 1900, gap_s=1.0) for i in range(4)]
    res = run(_gen_spec([*slow, heavy]))
    assert res["totals"] == [[4, 0, 0, 1, 0]]
    res = run(_gen_spec([*[tg.Vehicle(0, 1, 30.0, 1900)] * 4, heavy]))
    assert res["totals"] == [[4, 0, 1, 0, 0]]


def test_time_mean_and_space_mean_speeds(run) -> None:
    """Vehicles at 10 and 40 km/h: time-mean 25 km/h, space-mean (harmonic) 16 km/h."""
    res = run(_gen_spec([tg.Vehicle(0, 1, 10.0, 1900), tg.Vehicle(0, 1, 40.0, 1900)]))
    assert res["reports"][0][0][5:7] == [250, 160]


def _gen_spec(vehicles: list[tg.Vehicle]) -> dict[str, Any]:
    out, end_us = tg.edges(vehicles)
    return {"config": {"lanes": 1, "spacing_mm": tg.SPACING_MM,
                       "detector_length_mm": tg.DETECTOR_MM},
            "edges": [list(e) for e in out], "start_us": 0, "step_us": STEP_US,
            "steps": end_us // STEP_US + 60, "report_steps": 1200}


@pytest.mark.parametrize("layout", ["pair", "sublane"])
def test_lane_occupancy_is_the_union_of_its_first_zones(run, layout: str) -> None:
    """A car alone in lane 0 for 0.5 s of a 10 s interval: 5 % occupancy on either layout
    (over three sub-lane zones as over one across the lane)."""
    lay = LAYOUTS[layout]
    spec = _spec(lay, [_at(lay, CAR, 0, 36.0, 1.0)])
    spec["report_steps"] = 100
    res = run(spec)
    assert res["reports"][0][0][7] == round(1000 * (4.2 + 0.5) / 10 / 10)
