"""Traffic generator for the traffic-node tests: vehicles -> exact detector edge sequences.

Geometry (same as firmware/ssnode/traffic.py): each detector has a detection zone
``detector_length_mm`` long; detector B's zone starts ``spacing_mm`` after A's. A vehicle
of length L at speed v whose front reaches its first zone at t0 makes that detector rise at
t0 and fall at t0 + (L + D) / v; the second detector rises at t0 + S / v and falls at
t0 + (S + L + D) / v. Timestamps are integer microseconds, wrapped at the ticks period.
"""

import random
from dataclasses import dataclass

SPACING_MM = 3000
DETECTOR_MM = 500
DEBOUNCE_US = 20_000
TICKS_PERIOD = 1 << 30
MOTORBIKE, CAR, HEAVY, UNKNOWN, UNPAIRED = 0, 1, 2, 3, 4

# Lengths kept clear of the classifier's 2.5 m / 6.5 m thresholds so counts are exact.
LENGTH_MM = {MOTORBIKE: (1500, 2200), CAR: (3500, 5500), HEAVY: (7500, 12000)}
# Hanoi urban mix: about 85 % motorbikes (Telraam-style two-wheeler / car / heavy split).
HANOI_MIX = ((MOTORBIKE, 0.85), (CAR, 0.12), (HEAVY, 0.03))


@dataclass(frozen=True)
class Vehicle:
    lane: int
    direction: int  # +1: A then B, -1: B then A
    speed_kmh: float
    length_mm: int
    gap_s: float = 1.0  # minimum clear time on both detectors after the previous vehicle
    cls: int = MOTORBIKE
    bounce: bool = False  # add glitches shorter than the debounce time
    only: int | None = None  # 0 or 1: seen by that detector only (the other misses it)


def classify(length_mm: int) -> int:
    """The class the firmware must find for a true length (thresholds 2.5 m, 6.5 m)."""
    return MOTORBIKE if length_mm < 2500 else CAR if length_mm < 6500 else HEAVY


def speed_dkmh(v: Vehicle) -> int:
    """Expected speed in 0.1 km/h."""
    return round(v.speed_kmh * 10)


def _occupancies(v: Vehicle, t0_us: float) -> dict[int, tuple[float, float]]:
    mm_per_us = v.speed_kmh / 3.6 / 1000  # km/h -> m/s -> mm/us
    occ = (v.length_mm + DETECTOR_MM) / mm_per_us
    transit = SPACING_MM / mm_per_us
    first, second = (0, 1) if v.direction > 0 else (1, 0)
    return {first: (t0_us, t0_us + occ), second: (t0_us + transit, t0_us + transit + occ)}


def edges(
    vehicles: list[Vehicle], *, start_us: int = 0, seed: int = 0
) -> tuple[list[tuple[int, int, int, int]], int]:
    """Edges ``(lane, detector, level, t_us)`` sorted by time, and the unwrapped end time.

    Vehicles are placed in order, per lane, as early as their ``gap_s`` allows on both
    detectors; lanes run in parallel from ``start_us``.
    """
    rng = random.Random(seed)
    last_fall: dict[tuple[int, int], float] = {}
    raw: list[tuple[float, int, int, int]] = []
    end = float(start_us)
    for v in vehicles:
        rel = _occupancies(v, 0.0)
        t0 = float(start_us) + 1000.0
        for det, (rise, _fall) in rel.items():
            prev = last_fall.get((v.lane, det))
            if prev is not None:
                t0 = max(t0, prev + v.gap_s * 1e6 - rise)
        for det, (rise, fall) in _occupancies(v, t0).items():
            last_fall[(v.lane, det)] = fall
            end = max(end, fall)
            if v.only is not None and det != v.only:
                continue
            raw.append((rise, v.lane, det, 1))
            raw.append((fall, v.lane, det, 0))
            if v.bounce:
                raw.extend(_bounces(rng, v.lane, det, rise, fall))
    raw.sort()
    out = [(lane, det, level, round(t) % TICKS_PERIOD) for t, lane, det, level in raw]
    return out, round(end)


def _bounces(rng: random.Random, lane: int, det: int, rise: float, fall: float):
    """Chatter right after the rise, a dropout mid-occupancy and a spike after the fall,
    each shorter than the debounce time and as far from real edges as the filter needs."""
    g = DEBOUNCE_US
    # Chatter: rise (real) - fall - rise within a few ms: the firmware must keep the first.
    a = rise + rng.uniform(300, 4000)
    yield (a, lane, det, 0)
    yield (a + rng.uniform(200, 4000), lane, det, 1)
    mid = (rise + fall) / 2
    yield (mid, lane, det, 0)  # dropout through a motorbike's frame
    yield (mid + rng.uniform(500, g * 0.8), lane, det, 1)
    s = fall + g * 1.5  # spike while idle, after the real fall has settled
    yield (s, lane, det, 1)
    yield (s + rng.uniform(500, g * 0.8), lane, det, 0)


def hanoi_lane(
    rng: random.Random, lane: int, direction: int, duration_s: float, per_hour: int
) -> list[Vehicle]:
    """Vehicles for one lane at about ``per_hour`` with the Hanoi class mix."""
    out: list[Vehicle] = []
    classes = [c for c, _ in HANOI_MIX]
    weights = [w for _, w in HANOI_MIX]
    headway_s = 3600 / per_hour
    t = 0.0
    while True:
        cls = rng.choices(classes, weights)[0]
        lo, hi = LENGTH_MM[cls]
        length = rng.randint(lo, hi)
        speed = rng.uniform(10, 45) if cls == HEAVY else rng.uniform(12, 60)
        occ_s = (length + DETECTOR_MM) / 1000 / (speed / 3.6)
        gap = 0.3 + rng.expovariate(1 / max(0.05, headway_s - occ_s - 0.3))
        t += occ_s + gap
        if t > duration_s:
            return out
        out.append(Vehicle(lane, direction, speed, length, gap, cls))


def expected_counts(vehicles: list[Vehicle], lanes: int) -> list[list[int]]:
    """Per lane ``[motorbike, car, heavy, unknown, unpaired]``."""
    out = [[0, 0, 0, 0, 0] for _ in range(lanes)]
    for v in vehicles:
        out[v.lane][UNPAIRED if v.only is not None else classify(v.length_mm)] += 1
    return out
