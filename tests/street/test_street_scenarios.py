"""The named street scenarios: seeded, with the traffic each one promises and its ground truth.

Each scenario is checked on what it is for (motorbikes abreast at Hanoi flows, a queue
standing on the zones, lane changes over them...), measured on the model's own output.
"""

from __future__ import annotations

import itertools
from functools import cache

import pytest

from streetsense.hil.street import LAYOUTS
from streetsense.hil.street_scenarios import MIN_GAP_S, SCENARIOS, Plan, Street, plan

PAIR = LAYOUTS["pair"]


@cache
def _plan(name: str, layout: str = "pair", seconds: float = 120.0) -> Plan:
    return plan(name, LAYOUTS[layout], seconds, seed=11)


def _per_hour_per_lane(p: Plan, cls: str | None = None) -> float:
    n = sum(1 for q in p.passages if cls is None or q.cls == cls)
    return n * 3600 / p.duration_s / p.layout.lanes


def _occupancies(p: Plan, pair: int, det: int) -> list[tuple[float, float]]:
    rises = [t for t, pr, d, level in p.edges() if (pr, d, level) == (pair, det, 1)]
    falls = [t for t, pr, d, level in p.edges() if (pr, d, level) == (pair, det, 0)]
    return list(zip(rises, falls, strict=True))


def test_plans_are_seeded() -> None:
    """The same scenario, layout and seed give the same changes and passages; another seed
    gives others."""
    a, b = plan("mixed_bus", PAIR, 30, seed=4), plan("mixed_bus", PAIR, 30, seed=4)
    assert a.changes == b.changes and a.passages == b.passages
    assert plan("mixed_bus", PAIR, 30, seed=5).changes != a.changes


def test_unknown_scenario_is_refused() -> None:
    """A scenario name that does not exist is a ValueError listing the names."""
    with pytest.raises(ValueError, match="free_flow"):
        plan("rush_hour", PAIR, 10)


def test_dense_motorbikes_ride_abreast_at_hanoi_flows() -> None:
    """dense_motorbikes: over 6,000 motorbikes/h/lane, and so many abreast that a zone across
    the lane sees far fewer occupancies than motorbikes."""
    p = _plan("dense_motorbikes")
    assert _per_hour_per_lane(p, "motorbike") >= 6000
    assert {q.cls for q in p.passages} == {"motorbike"}
    seen = sum(len(_occupancies(p, lane, 0)) for lane in range(2))
    assert seen < 0.75 * len(p.passages)


def test_signal_queue_stands_on_the_zones_and_moves_off() -> None:
    """signal_queue: at red vehicles stand on the zones (occupancies of many seconds); at
    green they cross at urban speeds; every vehicle that came passes in the end."""
    p = _plan("signal_queue")
    longest = max(off - on for lane in range(2) for on, off in _occupancies(p, lane, 0))
    assert longest > 10.0
    speeds = sorted(q.speed_kmh for q in p.passages)
    assert speeds[0] < 5.0 and speeds[len(speeds) // 2] > 10.0
    assert {q.cls for q in p.passages} == {"motorbike", "car"}
    assert 1500 <= _per_hour_per_lane(p) <= 4000  # the queue of the warm-up drains in it too


def test_free_flow_keeps_single_file_with_clear_gaps() -> None:
    """free_flow: ~1,200 vehicles/h/lane in file: a zone across the lane sees each vehicle
    alone, so occupancies equal vehicles."""
    p = _plan("free_flow")
    assert 900 <= _per_hour_per_lane(p) <= 1500
    for lane in range(2):
        mine = [q for q in p.passages if q.lane == lane]
        assert len(_occupancies(p, lane, 0)) == len(mine)


def test_lane_change_has_changes_and_line_riders() -> None:
    """lane_change: some vehicles are in another lane at the second zone line than at the
    first; more straddle the lane line between the zones."""
    p = _plan("lane_change")
    changed = [q for q in p.passages if q.lane_change]
    straddling = [q for q in p.passages if q.straddling]
    assert len(changed) >= 2 and len(straddling) >= 0.05 * len(p.passages)


def test_mixed_bus_has_heavies_among_motorbikes() -> None:
    """mixed_bus: buses and trucks among cars and motorbikes at ~3,600 vehicles/h/lane."""
    p = _plan("mixed_bus")
    assert _per_hour_per_lane(p, "heavy") > 100
    assert 2800 <= _per_hour_per_lane(p) <= 4400
    assert max(q.length_m for q in p.passages) > 9.0


def test_single_file_is_the_former_burst() -> None:
    """single_file: constant speeds at the lane centre with >= 0.3 s clear on each zone between
    the vehicles of a lane, so occupancies equal vehicles."""
    p = _plan("single_file", seconds=60.0)
    for lane in range(2):
        occ = _occupancies(p, lane, 0)
        assert len(occ) == sum(1 for q in p.passages if q.lane == lane)
        assert all(b[0] - a[1] >= MIN_GAP_S - 1e-6 for a, b in itertools.pairwise(occ))


@pytest.mark.parametrize("name", ["dense_motorbikes", "signal_queue", "mixed_bus"])
def test_footprints_never_overlap(name: str) -> None:
    """Car-following keeps every vehicle behind or beside the others: no two footprints
    overlap at any step of two minutes (lane changes aside: none in these scenarios)."""
    street = Street(LAYOUTS["sublane"], SCENARIOS[name], seed=2)
    street.arrive_until(120)
    t = 0.0
    while t < 120:
        t += 0.5
        street.skip(t)
        road = sorted(street.road.active, key=lambda u: -u.s)
        for i, u in enumerate(road):
            for w in road[i + 1:]:
                if u.s - w.s > 13:
                    break
                abreast = abs(u.y - w.y) < (u.body.width_m + w.body.width_m) / 2
                assert not (abreast and w.s > u.s - u.body.length_m), (t, u, w)
