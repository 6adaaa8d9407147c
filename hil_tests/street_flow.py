"""Vehicles driving a street (for hil_tests/street.py): car-following, a signal, lateral places.

Longitudinal motion is the Intelligent Driver Model (Treiber, Hennecke & Helbing 2000,
Phys. Rev. E 62, 1805), stepped every 0.1 s with the ballistic update of Treiber & Kanagaraj
(2015, Physica A 419): each step is a segment of constant acceleration, which
street.Trajectory solves exactly. Parameters are of the order given for city traffic in
Treiber & Kesting, "Traffic Flow Dynamics" (2013); motorbikes get shorter time gaps and
standstill gaps (assumed: with them one file carries ~3,000 motorbikes/h, so two or three
abreast give the 6,000-7,200/h/lane measured in Hanoi, REFERENCE.md).

Mixed traffic has no lanes to follow in: a vehicle follows the nearest vehicle ahead whose
footprint overlaps its own laterally, plus a clearance (the "strip" idea of Mathew, Munigety
& Bajpai, "Strip-based approach for the simulation of mixed traffic conditions", J. Comput.
Civ. Eng., ASCE). So motorbikes ride abreast, pass beside a car, and queue side by side at a
red light, which is a standing obstacle at the stop line, as usual in car-following models;
at amber a vehicle stops only if it comfortably can. Arrivals are Poisson per lane; a vehicle
waits at the entry until the gap ahead of the lateral place it picks is safe.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .street import Body, Layout, Trajectory

DT_S = 0.1
_MAX_DECEL = 9.0  # m/s², a tyre's limit on dry asphalt
_LOOKAHEAD_M = 150.0
_LONGEST_M = 12.5  # no vehicle is longer
_BESIDE_M = 15.0  # entering riders line up beside vehicles this close to the entry
_FREE_M = 40.0  # a gap this long is as good as an empty road
_KMH = 3.6


@dataclass(frozen=True)
class Driving:
    """IDM parameters: desired speed v0 (m/s), time gap T (s), standstill gap s0 (m),
    acceleration a and comfortable deceleration b (m/s²)."""

    v0: float
    time_gap: float
    s0: float
    a: float
    b: float

    def accel(self, v: float, gap: float, dv: float) -> float:
        """IDM acceleration behind a leader `gap` m ahead, approached at `dv` m/s."""
        s_star = self.s0 + max(0.0, v * self.time_gap + v * dv / (2 * math.sqrt(self.a * self.b)))
        return self.a * (1 - (v / self.v0) ** 4 - (s_star / max(gap, 0.01)) ** 2)

    def free(self, v: float) -> float:
        return self.a * (1 - (v / self.v0) ** 4)


# Per class: ranges of (v0 km/h, T s, s0 m, a m/s², b m/s²), drawn uniformly per vehicle.
DRIVING = {
    "motorbike": ((25.0, 40.0), (0.6, 1.0), (0.5, 1.0), (1.5, 2.5), (2.5, 3.0)),
    "car": ((25.0, 45.0), (1.0, 1.5), (1.5, 2.5), (1.0, 1.5), (1.5, 2.0)),
    "heavy": ((20.0, 35.0), (1.3, 1.8), (2.0, 3.0), (0.7, 1.0), (1.5, 1.5)),
}


def random_driving(cls: str, rng: random.Random, speed_kmh: tuple[float, float] | None = None,
                   ) -> Driving:
    v0, t, s0, a, b = DRIVING[cls]
    lo, hi = speed_kmh or v0
    return Driving(rng.uniform(lo, hi) / _KMH, rng.uniform(*t), rng.uniform(*s0),
                   rng.uniform(*a), rng.uniform(*b))


@dataclass(frozen=True)
class Signal:
    """A fixed-time signal with its stop line `stop_x` m downstream of the first zone."""

    stop_x: float
    cycle_s: float = 60.0
    green_s: float = 27.0
    amber_s: float = 3.0
    offset_s: float = 0.0

    def phase(self, t: float) -> str:
        p = (t + self.offset_s) % self.cycle_s
        return "green" if p < self.green_s else "amber" if p < self.green_s + self.amber_s \
            else "red"


@dataclass
class SimVehicle:
    """A vehicle on the road: travel distance s of its front from its entry, speed v, lateral
    centre y (and lateral speed vy during a lane change)."""

    id: int
    body: Body
    driving: Driving
    traj: Trajectory
    s: float
    v: float
    y: float
    vy: float = 0.0
    change_at_s: float | None = None  # a lane change crosses the line with its front here
    change_to_y: float = 0.0
    change_s: float = 3.0  # how long the lane change takes
    change_steps: int = 0  # steps of the lane change still to go
    tracked: bool = False  # a Street follows it already

    def band(self, clearance: float) -> tuple[float, float]:
        """The lateral band this vehicle needs: its width (and, changing lanes, the way to
        its target), plus half the clearance each side."""
        half = self.body.width_m / 2 + clearance / 2
        lo, hi = self.y, self.y
        if self.vy:
            lo, hi = min(self.y, self.change_to_y), max(self.y, self.change_to_y)
        return lo - half, hi + half


@dataclass
class Arrival:
    """A vehicle waiting to enter: its lane, body, driving, the lateral centre it wants and
    the range it would take (m), and a lane change (x where it is half done, to y, duration
    s: it starts half its duration before, at the speed it then has)."""

    t: float
    lane: int
    body: Body
    driving: Driving
    want_y: float
    y_range: tuple[float, float]
    change: tuple[float, float, float] | None = None


@dataclass
class Road:
    """The vehicles between the entry (`entry_m` upstream of the first zone) and the exit
    (`exit_m` downstream of the last). Trajectories are recorded only near the zones."""

    layout: Layout
    seed: int = 0
    signal: Signal | None = None
    entry_m: float = 80.0
    exit_m: float = 40.0
    clearance_m: float = 0.2  # lateral room riders keep to the vehicle beside them
    t: float = 0.0
    active: list[SimVehicle] = field(default_factory=list)
    waiting: list[Arrival] = field(default_factory=list)
    finished: list[SimVehicle] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._ids = 0
        self._zone_lo = -self.entry_m  # x of the entry: travel distance 0
        last = self.layout.spacing_m + self.layout.zone_length_m
        # Record from the front 1 m before the first zone until the rear is 1 m past the last.
        self._record = (self.entry_m - 1.0, self.entry_m + last + 1.0)
        self._exit_s = self.entry_m + last + self.exit_m

    def arrive(self, arrival: Arrival) -> None:
        self.waiting.append(arrival)

    # -- stepping ---------------------------------------------------------------------------
    def step(self) -> None:
        t, dt = self.t, DT_S
        self._enter(t)
        order = sorted(self.active, key=lambda u: -u.s)
        accels = [self._accel(i, u, order, t) for i, u in enumerate(order)]
        for u, a in zip(order, accels, strict=True):
            self._move(u, a, t, dt)
        self.t = t + dt
        done = [u for u in self.active if u.s - u.body.length_m > self._exit_s]
        for u in done:
            self.active.remove(u)
            u.traj.end = self.t
            self.finished.append(u)

    def run(self, until: float, arrivals: Callable[[float], None] | None = None) -> None:
        """Step until time `until`; `arrivals(t)` is called first at every step."""
        while self.t < until - 1e-9:
            if arrivals is not None:
                arrivals(self.t)
            self.step()

    def _accel(self, i: int, u: SimVehicle, order: list[SimVehicle], t: float) -> float:
        d = u.driving
        acc = d.free(u.v)
        lo, hi = u.band(self.clearance_m)
        # The leader is the vehicle ahead, laterally in the way, whose rear is nearest.
        gap, leader = _LOOKAHEAD_M, None
        for j in range(i - 1, -1, -1):
            lead = order[j]
            if lead.s - u.s > gap + _LONGEST_M:
                break  # every vehicle further on ends further on
            llo, lhi = lead.band(self.clearance_m)
            if llo < hi and lo < lhi and lead.s - lead.body.length_m - u.s < gap:
                gap, leader = lead.s - lead.body.length_m - u.s, lead
        if leader is not None:
            acc = min(acc, d.accel(u.v, gap, u.v - leader.v))
        stop = self._stop_line(u, t)
        if stop is not None:
            acc = min(acc, d.accel(u.v, stop, u.v))
        return max(-_MAX_DECEL, acc)

    def _stop_line(self, u: SimVehicle, t: float) -> float | None:
        """The gap to the stop line if the signal holds this vehicle, else None."""
        sig = self.signal
        if sig is None:
            return None
        gap = sig.stop_x + self.entry_m - u.s
        if gap < 0:
            return None
        phase = sig.phase(t)
        if phase == "green" or (phase == "amber" and u.v * u.v / (2 * u.driving.b) > gap):
            return None
        return gap

    def _move(self, u: SimVehicle, a: float, t: float, dt: float) -> None:
        if u.change_at_s is not None and u.s + u.v * u.change_s / 2 >= u.change_at_s:
            # A whole number of steps, so the lateral move ends on a step boundary.
            u.change_steps = max(1, round(u.change_s / dt))
            u.vy = (u.change_to_y - u.y) / (u.change_steps * dt)
            u.change_at_s = None
        lo, hi = self._record
        recording = u.s + u.v * dt + abs(a) * dt * dt >= lo and u.s - u.body.length_m <= hi
        if not recording and u.traj.segments and u.traj.end is None:
            u.traj.end = t  # its rear has passed the zones: the record ends
        if recording:
            u.traj.add(t, u.s, u.v, a, u.y, u.vy)
        if u.v + a * dt < 0:  # stops within the step (ballistic update, no reversing)
            t_stop = -u.v / a
            u.s -= u.v * u.v / (2 * a)
            u.v = 0.0
            if recording:
                u.traj.add(t + t_stop, u.s, 0.0, 0.0, u.y + u.vy * t_stop, u.vy)
        else:
            u.s += u.v * dt + a * dt * dt / 2
            u.v += a * dt
        u.y += u.vy * dt
        if u.vy:
            u.change_steps -= 1
            if u.change_steps <= 0:
                u.y, u.vy = u.change_to_y, 0.0

    # -- entry --------------------------------------------------------------------------------
    def _enter(self, t: float) -> None:
        blocked: set[int] = set()
        for arr in list(self.waiting):
            if arr.t > t or arr.lane in blocked:
                continue
            placed = self._place(arr)
            if placed is None:
                blocked.add(arr.lane)  # first come, first in: the lane's queue waits
                continue
            y, v = placed
            self.waiting.remove(arr)
            self._ids += 1
            traj = Trajectory(1, self._zone_lo)
            u = SimVehicle(self._ids, arr.body, arr.driving, traj, 0.0, v, y)
            if arr.change is not None:
                u.change_at_s = arr.change[0] + self.entry_m
                u.change_to_y, u.change_s = arr.change[1], arr.change[2]
            self.active.append(u)

    def _place(self, arr: Arrival) -> tuple[float, float] | None:
        """A lateral place with a safe gap ahead, and the speed to enter at; None: wait.
        Riders take the place they want if the road ahead of it is free; otherwise the best
        gap among a few places and those right beside the vehicles near the entry (so queues
        and platoons pack side by side)."""
        d = arr.driving
        half = arr.body.width_m / 2 + self.clearance_m / 2
        lo, hi = arr.y_range
        tries = [arr.want_y] + [self.rng.uniform(lo, hi) for _ in range(3)]
        for u in self.active:
            if u.s - u.body.length_m < _BESIDE_M:
                side = u.body.width_m / 2 + half + self.clearance_m / 2
                tries += [y for y in (u.y - side, u.y + side) if lo <= y <= hi]
        best: tuple[float, float, float, float] | None = None
        for y in tries:
            gap, lead_v = math.inf, d.v0
            for u in self.active:
                ulo, uhi = u.band(self.clearance_m)
                if ulo < y + half and y - half < uhi:
                    g = u.s - u.body.length_m
                    if g < gap:
                        gap, lead_v = g, u.v
            v = min(d.v0, lead_v)
            if gap < d.s0 + v * d.time_gap:
                continue
            score = (min(gap, _FREE_M), -abs(y - arr.want_y))
            if best is None or score > best[:2]:
                best = (*score, y, v)
        return None if best is None else (best[2], best[3])


def poisson_arrivals(rng: random.Random, rate_per_h: float, start: float, end: float,
                     ) -> list[float]:
    """Arrival times of a Poisson process of `rate_per_h` in [start, end)."""
    out: list[float] = []
    t = start
    if rate_per_h <= 0:
        return out
    while True:
        t += rng.expovariate(rate_per_h / 3600)
        if t >= end:
            return out
        out.append(t)


def draw(rng: random.Random, mix: dict[str, float]) -> str:
    classes, weights = list(mix), list(mix.values())
    return rng.choices(classes, weights)[0]
