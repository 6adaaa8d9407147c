"""Named street scenarios over a detector layout, with per-vehicle ground truth.

A `Street` drives vehicles (hil_tests/street_flow.py, or scripted at constant speed) over the
zones of a `Layout` (hil_tests/street.py) and yields, as time advances, the *presence
changes* of each zone: +1 when a vehicle's footprint comes over it, -1 when it leaves. A
detector reads occupied while its count is above zero: the union of the vehicles over it
(`edges()` computes it; the GPIO server does the same for the emulated board). `plan()` runs a
scenario to the end and returns those changes with the `Passage` of every vehicle that
crossed the zones: class, size, lanes, when and how fast.

Scenarios (per lane, both lanes in direction +1):

- ``free_flow``: 1,200 vehicles/h, Hanoi mix, single file near the lane centre, car-following.
- ``dense_motorbikes``: 6,600 motorbikes/h anywhere across the lane, so two or three abreast
  (REFERENCE.md: 6,000-7,200/h/lane measured in Hanoi).
- ``signal_queue``: 2,400 vehicles/h (85 % motorbikes) spread across the lane, a signal 12 m
  downstream (60 s cycle, 30 s green, 3 s amber), so the red-light queue stands on the zones
  and moves off at green: stop-and-go.
- ``mixed_bus``: 3,600 vehicles/h with 6 % buses and trucks, motorbikes beside them.
- ``lane_change``: 1,800 vehicles/h in single file; 20 % change lane over the zones and 5 %
  (motorbikes) ride on the lane line.
- ``single_file``: the emulator's burst before the street model (3,000/h, constant speeds,
  at least 0.3 s clear on a detector between vehicles of a lane, lane centre).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .street import CLASSES, Body, Layout, Trajectory, Zone, random_body
from .street_flow import (
    DT_S,
    Arrival,
    Road,
    Signal,
    draw,
    poisson_arrivals,
    random_driving,
)

HANOI_MIX = {"motorbike": 0.85, "car": 0.12, "heavy": 0.03}
MIN_GAP_S = 0.3  # single_file: clear time on a detector between two vehicles of a lane
# single_file speeds, km/h (the emulator's former generator)
SCRIPTED_KMH = {"motorbike": (15.0, 50.0), "car": (15.0, 55.0), "heavy": (10.0, 40.0)}
_WARMUP_S = 40.0
_DRAIN_S = 300.0  # at most this long after the last arrival for the road to empty

Change = tuple[float, int, int, int]  # (time s, pair, det, +1 enters / -1 leaves)


@dataclass(frozen=True)
class Scenario:
    """What a street does: demand per lane, class mix, where riders place themselves
    ("file": near the lane centre, "spread": anywhere across the lane), an optional signal,
    shares of lane changes and of motorbikes riding on the lane line."""

    name: str
    vehicles_per_hour: float
    mix: dict[str, float] = field(default_factory=lambda: dict(HANOI_MIX))
    place: str = "spread"
    signal: Signal | None = None
    lane_change_share: float = 0.0
    line_share: float = 0.0
    scripted: bool = False


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("free_flow", 1200, place="file"),
        Scenario("dense_motorbikes", 6600, {"motorbike": 1.0}),
        Scenario("signal_queue", 2400, {"motorbike": 0.85, "car": 0.15},
                 signal=Signal(stop_x=12.0, cycle_s=60.0, green_s=30.0, amber_s=3.0)),
        Scenario("mixed_bus", 3600, {"motorbike": 0.80, "car": 0.14, "heavy": 0.06}),
        Scenario("lane_change", 1800, place="file", lane_change_share=0.2, line_share=0.05),
        Scenario("single_file", 3000, scripted=True),
    )
}


@dataclass(frozen=True)
class Passage:
    """Ground truth of one vehicle over the zones. `lane` is where its front crossed the
    second zone line, `first_lane` the first; `t_first` when its front reached the first
    zone line; `speed_kmh` its speed as its front passed midway between the zone lines;
    `straddling`: its footprint crossed a lane line there."""

    id: int
    cls: str
    length_m: float
    width_m: float
    direction: int
    lane: int
    first_lane: int
    t_first: float
    speed_kmh: float
    straddling: bool

    @property
    def lane_change(self) -> bool:
        return self.lane != self.first_lane


def counts(passages: Iterable[Passage], lanes: int) -> list[dict[str, int]]:
    """Per lane (where vehicles crossed the second zone line), vehicles per class."""
    out = [dict.fromkeys(CLASSES, 0) for _ in range(lanes)]
    for p in passages:
        out[p.lane][p.cls] += 1
    return out


def scenario_truth(passages: list[Passage], lanes: int) -> dict[str, Any]:
    """A scenario's ground truth as JSON: ``vehicles``, ``counts`` per lane and class (where
    vehicles crossed the second zone line), ``lane_changes`` and ``last_s`` (when the last
    vehicle's front reached the zones, in the passages' time)."""
    return {
        "vehicles": len(passages),
        "counts": counts(passages, lanes),
        "lane_changes": sum(1 for p in passages if p.lane_change),
        "last_s": max((p.t_first for p in passages), default=0.0),
    }


class SingleFile:
    """When scripted vehicles may come: each keeps MIN_GAP_S clear on both zones of its lane
    after the lane's previous one (the rule of the emulator before the street model)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._free = [[0.0, 0.0] for _ in range(layout.lanes)]  # per lane and zone: clear from

    def start(self, lane: int, length_m: float, speed_kmh: float, direction: int,
              not_before: float) -> float:
        """The time the vehicle's front may reach its first zone line (and book it)."""
        v = speed_kmh / 3.6
        occupied = (length_m + self.layout.zone_length_m) / v
        transit = self.layout.spacing_m / v
        first, second = (0, 1) if direction > 0 else (1, 0)
        free = self._free[lane]
        start = max(not_before, free[first] + MIN_GAP_S, free[second] + MIN_GAP_S - transit)
        free[first], free[second] = start + occupied, start + transit + occupied
        return start


def single_file_arrivals(rng: random.Random, vehicles_per_hour: float, mix: dict[str, float],
                         ) -> Iterator[tuple[float, Body, float]]:
    """Endless nominal arrivals on one lane from time 0, (time, body, speed km/h): headways
    exponential with a MIN_GAP_S floor, classes from `mix`, speeds from SCRIPTED_KMH."""
    headway, t = 3600 / vehicles_per_hour, 0.0
    while True:
        t += max(MIN_GAP_S, rng.expovariate(1 / headway))
        cls = draw(rng, mix)
        yield t, random_body(cls, rng), rng.uniform(*SCRIPTED_KMH[cls])


def scripted_trajectory(layout: Layout, lane: int, speed_kmh: float, direction: int, t: float,
                        y: float | None = None) -> Trajectory:
    """Constant speed along the lane (centre, or `y`), front at the first zone line at `t`."""
    x0 = 0.0 if direction > 0 else layout.spacing_m + layout.zone_length_m
    traj = Trajectory(direction, x0)
    traj.add(t, 0.0, speed_kmh / 3.6, 0.0, layout.lane_centre(lane) if y is None else y, 0.0)
    return traj


def presence(zones: list[Zone], bod: Body, traj: Trajectory) -> list[Change]:
    """The presence changes one vehicle makes over `zones` (its whole known trajectory)."""
    out: list[Change] = []
    for zone in zones:
        for on, off in traj.occupancy(bod, zone):
            out.append((on, zone.pair, zone.det, 1))
            if off is not None:
                out.append((off, zone.pair, zone.det, -1))
    return out


@dataclass
class _Tracked:
    body: Body
    traj: Trajectory
    spans: dict[int, list[tuple[float, float | None]]] = field(default_factory=dict)
    settled: bool = False


class Street:
    """Vehicles over the zones of `layout`: driven per `scenario` (`arrive_until()` sets how
    long vehicles keep coming, at `vehicles_per_hour` per lane and `mix`), or added one by
    one with `scripted()`."""

    def __init__(self, layout: Layout, scenario: Scenario | None = None, seed: int = 0) -> None:
        self.layout = layout
        self.scenario = scenario
        self.zones = layout.zones()
        self.rng = random.Random(seed)
        self.road = Road(layout, seed=seed, signal=scenario.signal if scenario else None)
        self.t = 0.0
        self.passages: list[Passage] = []
        self.vehicles_per_hour = scenario.vehicles_per_hour if scenario else 0.0
        self.mix = dict(scenario.mix) if scenario else dict(HANOI_MIX)
        self._arrivals: deque[Arrival] = deque()
        self._arrivals_to = 0.0
        self._tracked: dict[int, _Tracked] = {}
        self._scripted_ids = 0
        # single_file: per lane the nominal arrivals and the next one; the clear-gap rule
        self._script_arrivals: list[Iterator[tuple[float, Body, float]]] = []
        self._script_next: list[tuple[float, Body, float]] = []
        self._single_file = SingleFile(layout)
        self._skipped = False  # skip() ran last: advance() must start the zones as they are

    def lines(self, direction: int) -> tuple[float, float, float, float]:
        """x of the first and second zone lines a vehicle in `direction` crosses (the zones'
        leading edges for it), of the site midway, and of the far end of the zones."""
        lay = self.layout
        near, far = 0.0, lay.spacing_m + lay.zone_length_m
        if direction > 0:
            return near, lay.spacing_m, lay.site_x, far
        return far, lay.zone_length_m, lay.site_x + lay.zone_length_m, near

    # -- vehicles -------------------------------------------------------------------------------
    def scripted(self, body: Body, lane: int, speed_kmh: float, direction: int, t: float,
                 y: float | None = None) -> None:
        """A vehicle at constant speed whose front reaches its first zone line at `t`."""
        self.add(body, scripted_trajectory(self.layout, lane, speed_kmh, direction, t, y))

    def add(self, body: Body, traj: Trajectory) -> None:
        """A vehicle on a trajectory of its own (complete, or open-ended at constant speed)."""
        self._scripted_ids -= 1
        self._tracked[self._scripted_ids] = _Tracked(body, traj)

    def arrive_until(self, end: float) -> None:
        """Let the scenario's vehicles arrive until `end` (street time)."""
        if self.scenario is None or end <= self._arrivals_to:
            return
        if not self.scenario.scripted:
            new = [self._arrival(t, lane) for lane in range(self.layout.lanes)
                   for t in poisson_arrivals(self.rng, self.vehicles_per_hour,
                                             self._arrivals_to, end)]
            self._arrivals.extend(sorted(new, key=lambda a: a.t))
        self._arrivals_to = end

    def _arrival(self, t: float, lane: int) -> Arrival:
        sc, rng, lay = self.scenario, self.rng, self.layout
        assert sc is not None
        cls = draw(rng, self.mix)
        bod = random_body(cls, rng)
        centre, half_lane = lay.lane_centre(lane), lay.lane_width_m / 2
        room = max(0.0, half_lane - bod.width_m / 2 - 0.1)
        if cls == "motorbike" and lay.lanes > 1 and rng.random() < sc.line_share:
            line = lay.lane_width_m * (lane + (1 if lane + 1 < lay.lanes else 0))
            y_range = (line - 0.2, line + 0.2)
        elif sc.place == "file" or cls != "motorbike":
            y_range = (centre - min(room, 0.3), centre + min(room, 0.3))
        else:
            y_range = (centre - room, centre + room)
        arr = Arrival(t, lane, bod, random_driving(cls, rng), rng.uniform(*y_range), y_range)
        if lay.lanes > 1 and rng.random() < sc.lane_change_share:
            to = lane + 1 if lane + 1 < lay.lanes else lane - 1
            duration = rng.uniform(1.5, 3.0) if cls == "motorbike" else rng.uniform(3.0, 5.0)
            # Half done (on the lane line) within 1.5 m of the site, between the zone lines.
            # Cars take 3-5 s (Toledo & Zohar 2007, TRR 1999: 4.6 s on average); motorbikes,
            # narrower and nimbler, less (assumed).
            arr.change = (lay.site_x + rng.uniform(-1.5, 1.5), lay.lane_centre(to), duration)
        return arr

    def _script_until(self, t: float) -> None:
        """single_file: the vehicles whose nominal arrival is before `t` + 5 s (so they are
        known before they come), placed by the clear-gap rule."""
        end = min(t + 5.0, self._arrivals_to)
        if not self._script_arrivals:
            self._script_arrivals = [single_file_arrivals(self.rng, self.vehicles_per_hour,
                                                          self.mix)
                                     for _ in range(self.layout.lanes)]
            self._script_next = [next(g) for g in self._script_arrivals]
        for lane, arrivals in enumerate(self._script_arrivals):
            while self._script_next[lane][0] < end:
                nominal, bod, kmh = self._script_next[lane]
                start = self._single_file.start(lane, bod.length_m, kmh, 1, nominal)
                self.scripted(bod, lane, kmh, 1, start)
                self._script_next[lane] = next(arrivals)

    # -- time ---------------------------------------------------------------------------------
    def advance(self, t: float) -> list[Change]:
        """Drive to street time `t`; the presence changes in (previous t, t], in time order."""
        if self.scenario is not None and self.scenario.scripted:
            self._script_until(t)
        elif self.scenario is not None:
            self.road.run(t, self._feed)
            self._track()
        out: list[Change] = []
        for vid, tr in list(self._tracked.items()):
            if not tr.traj.segments or tr.traj.segments[0][0] > t:
                continue
            tr.spans = self._spans(tr, t)
            for z, intervals in tr.spans.items():
                zone = self.zones[z]
                for on, off in intervals:
                    if self.t < on <= t:
                        out.append((on, zone.pair, zone.det, 1))
                    elif self._skipped and on <= self.t and (off is None or off > self.t):
                        # Over the zone when the changes start (after skip()): it is there
                        # from that moment, so every -1 has its +1.
                        out.append((self.t, zone.pair, zone.det, 1))
                    if off is not None and self.t < off <= t:
                        out.append((off, zone.pair, zone.det, -1))
            if self._past(tr, t) and all(off is not None for iv in tr.spans.values()
                                         for _, off in iv):
                self.passages.append(self._passage(vid, tr))
                del self._tracked[vid]
        self.t = t
        self._skipped = False
        out.sort(key=lambda c: (c[0], -c[3]))
        return out

    def _track(self) -> None:
        """Follow the road's vehicles from when they come near the zones."""
        for u in self.road.active + self.road.finished:
            if u.traj.segments and not u.tracked:
                u.tracked = True
                self._tracked[u.id] = _Tracked(u.body, u.traj)
        self.road.finished.clear()

    def skip(self, t: float) -> None:
        """Drive to street time `t` without computing presence changes (a warm-up): only
        for a scenario street, and only while no change is wanted before `t`."""
        self.road.run(t, self._feed)
        self._track()
        for vid, tr in list(self._tracked.items()):
            if self._past(tr, t):
                del self._tracked[vid]
        self.t = t
        self._skipped = True

    def _feed(self, t: float) -> None:
        while self._arrivals and self._arrivals[0].t <= t + DT_S:
            self.road.arrive(self._arrivals.popleft())

    def _past(self, tr: _Tracked, t: float) -> bool:
        """The vehicle's rear is beyond the zones (and 0.5 m more)."""
        if tr.traj.end is not None and tr.traj.end <= t:
            return True  # the road records a vehicle until its rear is past the zones
        s, _, _ = tr.traj.state_at(t)
        far = self.lines(tr.traj.direction)[3]
        return s - tr.body.length_m > tr.traj.travel(far, far)[0] + 0.5

    def _spans(self, tr: _Tracked, t: float) -> dict[int, list[tuple[float, float | None]]]:
        """Per zone index, this vehicle's occupancy as known at `t` (open past it)."""
        end = tr.traj.end
        tr.traj.end = t if end is None else min(end, t)
        try:
            out = {}
            for z, zone in enumerate(self.zones):
                spans = tr.traj.occupancy(tr.body, zone)
                if spans:
                    out[z] = [(on, None if off is None or off >= t else off) for on, off in spans]
            return out
        finally:
            tr.traj.end = end

    def _passage(self, vid: int, tr: _Tracked) -> Passage:
        traj, lay = tr.traj, self.layout
        first, second, site, _ = (traj.travel(x, x)[0] for x in self.lines(traj.direction))
        times = [traj.time_at(s) for s in (first, second, site)]
        t_first, t_second, t_site = (t if t is not None else traj.segments[0][0] for t in times)
        _, v, y = traj.state_at(t_site)
        half = tr.body.width_m / 2
        lines = [lay.lane_width_m * k for k in range(1, lay.lanes)]
        return Passage(
            id=vid, cls=tr.body.cls, length_m=tr.body.length_m, width_m=tr.body.width_m,
            direction=traj.direction, lane=lay.lane_at(traj.state_at(t_second)[2]),
            first_lane=lay.lane_at(traj.state_at(t_first)[2]), t_first=t_first,
            speed_kmh=v * 3.6, straddling=any(abs(y - line) < half for line in lines),
        )

    def clear(self) -> bool:
        """No vehicle over or between the zones (0.5 m around them) now."""
        for tr in self._tracked.values():
            if tr.traj.segments[0][0] > self.t:
                continue
            s, _, _ = tr.traj.state_at(self.t)
            near, _, _, far = self.lines(tr.traj.direction)
            p0, _ = tr.traj.travel(near, near)
            p1, _ = tr.traj.travel(far, far)
            if s >= p0 - 0.5 and s - tr.body.length_m <= p1 + 0.5:
                return False
        return True

    def start_clear(self, warmup_s: float = _WARMUP_S) -> float:
        """Warm a scenario street up for `warmup_s`, then on to the first moment no vehicle is
        near the zones (so nothing is half over them when its changes start; in traffic too
        dense for that within another `warmup_s`, it starts as it is); returns it."""
        t = self.t + warmup_s
        limit = t + warmup_s
        self.arrive_until(t)
        self.skip(t)
        while not self.clear() and t < limit:
            t += DT_S
            self.arrive_until(t)
            self.skip(t)
        return t

    @property
    def idle(self) -> bool:
        """Nothing on the road, nothing waiting, nothing more to arrive."""
        return not (self._tracked or self.road.active or self.road.waiting or self._arrivals)


def edges(changes: Iterable[Change], pairs: int) -> list[tuple[float, int, int, int]]:
    """Presence changes -> detector edges ``(time, pair, det, level)``, level 1 occupied:
    a detector is occupied while its count is above zero (the union)."""
    count = [[0, 0] for _ in range(pairs)]
    out = []
    for t, pair, det, delta in sorted(changes, key=lambda c: (c[0], -c[3])):
        before = count[pair][det]
        count[pair][det] = after = before + delta
        if (before > 0) != (after > 0):
            out.append((t, pair, det, 1 if after > 0 else 0))
    return out


@dataclass
class Plan:
    """A scenario run to its end: presence changes and passages, times from the start."""

    scenario: str
    layout: Layout
    seed: int
    duration_s: float
    changes: list[Change]
    passages: list[Passage]

    def edges(self) -> list[tuple[float, int, int, int]]:
        return edges(self.changes, self.layout.pairs)


def plan(name: str, layout: Layout, duration_s: float, seed: int = 0,
         vehicles_per_hour: float | None = None) -> Plan:
    """Run scenario `name` on `layout`: vehicles arrive for `duration_s` after a warm-up (the
    start is the first moment after it when no vehicle is near the zones), then the road
    drains. Changes and passages are timed from that start."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ValueError(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
    street = Street(layout, scenario, seed)
    if vehicles_per_hour is not None:
        street.vehicles_per_hour = vehicles_per_hour
    start = t = 0.0 if scenario.scripted else street.start_clear()
    street.arrive_until(start + duration_s)  # `duration_s` of arrivals from the start
    changes: list[Change] = []
    limit = start + duration_s + _DRAIN_S
    while t < limit:
        t += 5.0
        changes += street.advance(t)
        if t > start + duration_s and street.idle:
            break
    passages = sorted((replace(p, t_first=p.t_first - start) for p in street.passages
                       if p.t_first >= start), key=lambda p: p.t_first)
    return Plan(name, layout, seed, duration_s, [(c[0] - start, *c[1:]) for c in changes],
                passages)


__all__ = ["HANOI_MIX", "MIN_GAP_S", "SCENARIOS", "Passage", "Plan", "Scenario", "SingleFile",
           "Street", "counts", "edges", "plan", "presence", "scenario_truth",
           "scripted_trajectory", "single_file_arrivals"]
