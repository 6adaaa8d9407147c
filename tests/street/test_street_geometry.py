"""The street model's geometry: footprints over zones, each zone the union of what is over it.

Hand-computed cases: a vehicle of length L at speed v occupies a zone of length D for
(L + D) / v; what is abreast or closer than D merges; a narrow zone sees a motorbike's rider
part only when the frame passes beside it; a stop over the zones lengthens both occupancies.
"""

from __future__ import annotations

import pytest

from streetsense.hil.street import LAYOUTS, Layout, Trajectory, body, union
from streetsense.hil.street_scenarios import Street, edges

PAIR = LAYOUTS["pair"]  # 2 lanes of 3.5 m, zones 0.5 m long across the lane, 2 m apart
SUBLANE = LAYOUTS["sublane"]  # 3 zones of 1.2 m across each 3.6 m lane


def _edges(street: Street, until: float = 60.0) -> list[tuple[float, int, int, int]]:
    return [(round(t, 6), pair, det, level)
            for t, pair, det, level in edges(street.advance(until), street.layout.pairs)]


def test_car_occupies_each_zone_for_length_plus_zone_over_speed() -> None:
    """A 4.5 m car at 36 km/h: each zone occupied (4.5 + 0.5) / 10 = 0.5 s, B 0.2 s after A."""
    street = Street(PAIR)
    street.scripted(body("car", 4.5, 1.7), lane=0, speed_kmh=36.0, direction=1, t=1.0)
    assert _edges(street) == [(1.0, 0, 0, 1), (1.2, 0, 1, 1), (1.5, 0, 0, 0), (1.7, 0, 1, 0)]


def test_reverse_direction_crosses_b_first() -> None:
    """A vehicle in direction -1 reaches zone B first, then A after spacing / speed."""
    street = Street(PAIR)
    street.scripted(body("car", 4.5, 1.7), lane=1, speed_kmh=36.0, direction=-1, t=1.0)
    assert _edges(street) == [(1.0, 1, 1, 1), (1.2, 1, 0, 1), (1.5, 1, 1, 0), (1.7, 1, 0, 0)]


def test_abreast_motorbikes_merge_over_a_lane_wide_zone() -> None:
    """Two motorbikes side by side, 1 m apart longitudinally, make one occupancy of a zone
    across the lane, from the first front to the last rear."""
    street = Street(PAIR)
    bike = body("motorbike", 1.9, 0.7)
    street.scripted(bike, 0, 36.0, 1, t=1.0, y=0.9)
    street.scripted(bike, 0, 36.0, 1, t=1.1, y=2.6)
    a = [e for e in _edges(street) if e[2] == 0]
    assert a == [(1.0, 0, 0, 1), (1.34, 0, 0, 0)]  # 1.1 + (1.9 + 0.5) / 10


def test_abreast_motorbikes_are_apart_over_sublane_zones() -> None:
    """The same pair over three 1.2 m zones: each bike in its own zone, two occupancies."""
    street = Street(SUBLANE)
    bike = body("motorbike", 1.9, 0.7)
    street.scripted(bike, 0, 36.0, 1, t=1.0, y=0.6)  # zone 0: 0..1.2 m
    street.scripted(bike, 0, 36.0, 1, t=1.1, y=3.0)  # zone 2: 2.4..3.6 m
    a = [e for e in _edges(street) if e[2] == 0]
    assert a == [(1.0, 0, 0, 1), (1.1, 2, 0, 1), (1.24, 0, 0, 0), (1.34, 2, 0, 0)]


@pytest.mark.parametrize(("gap_m", "occupancies"), [(0.3, 1), (0.8, 2)])
def test_followers_closer_than_the_zone_length_merge(gap_m: float, occupancies: int) -> None:
    """Two cars in file merge on a 0.5 m zone when the gap is shorter than the zone."""
    street = Street(PAIR)
    car = body("car", 4.0, 1.7)
    street.scripted(car, 0, 18.0, 1, t=1.0)
    street.scripted(car, 0, 18.0, 1, t=1.0 + (4.0 + gap_m) / 5.0)
    rises = [e for e in _edges(street) if e[1:] == (0, 0, 1)]
    assert len(rises) == occupancies


def test_rider_part_alone_reaches_a_neighbour_zone() -> None:
    """A motorbike whose frame runs beside zone 1 (its rider and mirrors over it) occupies
    zone 1 only while the full-width middle passes: later and shorter than zone 0."""
    street = Street(SUBLANE)
    street.scripted(body("motorbike", 2.0, 0.7), 0, 36.0, 1, t=1.0, y=0.9)  # frame 0.7..1.1
    seen = _edges(street)
    a = {e[1]: e[0] for e in seen if e[2] == 0 and e[3] == 1}
    falls = {e[1]: e[0] for e in seen if e[2] == 0 and e[3] == 0}
    assert a[0] == 1.0 and falls[0] == pytest.approx(1.25)  # (2.0 + 0.5) / 10
    assert a[1] == pytest.approx(1.05)  # the rider part starts 0.25 x 2 m behind the front
    assert falls[1] == pytest.approx(1.05 + (0.42 * 2.0 + 0.5) / 10)


def test_a_stop_over_both_zones_lengthens_both_occupancies() -> None:
    """A car that stops 8 s with its body over A and B: both occupancies include the stop,
    and the rising and falling edges keep the transit times of its approach and departure."""
    traj = Trajectory(1, 0.0)
    traj.add(0.0, 0.0, 5.0, 0.0, 1.75, 0.0)  # front at the first zone line, 5 m/s
    traj.add(0.7, 3.5, 5.0, 0.0, 1.75, 0.0)
    traj.add(0.7, 3.5, 0.0, 0.0, 1.75, 0.0)  # stands with its front 3.5 m on
    traj.add(8.7, 3.5, 5.0, 0.0, 1.75, 0.0)
    car = body("car", 4.2, 1.7)
    zones = PAIR.zones()
    a, b = traj.occupancy(car, zones[0]), traj.occupancy(car, zones[1])
    assert a == [(0.0, pytest.approx(8.7 + (4.2 + 0.5 - 3.5) / 5))]
    assert b == [(pytest.approx(0.4), pytest.approx(8.7 + (4.2 + 2.5 - 3.5) / 5))]


def test_lane_change_between_the_zones_moves_the_occupancy_across() -> None:
    """A motorbike moving 3.5 m to the left while it crosses the zones occupies lane 0's A
    zone and lane 1's B zone, and straddles both at the line."""
    traj = Trajectory(1, 0.0)
    traj.add(0.0, -1.0, 10.0, 0.0, 1.2, 10.0)  # 10 m/s forward, 10 m/s across (a sketch)
    traj.add(0.5, 4.0, 10.0, 0.0, 6.2, 0.0)
    bike = body("motorbike", 1.9, 0.7)
    zones = PAIR.zones()  # (pair 0, A), (pair 0, B), (pair 1, A), (pair 1, B)
    assert traj.occupancy(bike, zones[0])  # lane 0, A
    assert not traj.occupancy(bike, zones[1])  # lane 0, B: it has left lane 0 by then
    assert traj.occupancy(bike, zones[3])  # lane 1, B


def test_union_merges_touching_and_keeps_open_ends() -> None:
    """union() merges overlapping and touching spans; an open end swallows what follows."""
    assert union([(3.0, 4.0), (1.0, 2.0), (2.0, 2.5)]) == [(1.0, 2.5), (3.0, 4.0)]
    assert union([(1.0, None), (2.0, 3.0)]) == [(1.0, None)]


def test_layout_settings_and_bad_layouts() -> None:
    """A layout gives the node's settings for it; zones that cannot fit are refused."""
    assert SUBLANE.settings() == {"lanes": 2, "sublanes": 3, "detector_spacing_cm": 200,
                                  "detector_length_cm": 50, "detector_width_cm": 120}
    assert len(SUBLANE.zones()) == 12
    with pytest.raises(ValueError, match="do not fit"):
        Layout(sublanes=3, zone_width_m=1.5)
    with pytest.raises(ValueError, match="spacing"):
        Layout(spacing_m=0.4)
