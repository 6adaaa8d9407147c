"""The street under a traffic node: vehicle footprints moving over detection zones.

Physics only, nothing of the firmware. A detection zone (an inductive loop, a magnetometer's
field, an IR beam, a ToF spot) is a rectangle on the road, and it reports *occupied* while any
part of any vehicle's plan-view footprint is over it: the union of the vehicles over it
(REFERENCE.md "Traffic counting"). So vehicles abreast, or closer behind one another than the
zone is long, make one occupancy; a vehicle over two zones occupies both; a vehicle changing
lanes between two zones is seen in one lane first and in the other next.

Coordinates: x along the road in metres, the first zone's leading edge at 0; y across it,
lane n spanning [n w, (n + 1) w] for a lane width w. A vehicle moving in direction +1 travels
towards +x, and -1 towards -x. Its trajectory is a list of segments of constant acceleration
(and constant lateral speed), so the time its footprint enters or leaves a zone is solved
exactly, not sampled.

Footprints (manufacturers' plan-view dimensions, length x width incl. mirrors): motorbikes,
the Honda Wave Alpha 1,914 x 688 mm, Vision 1,871 x 686 mm, Air Blade 1,870 x 687 mm: a
narrow frame (wheels, footboard, ~0.4 m) the whole length and the rider with handlebars and
mirrors at full width over the middle (from a quarter to two thirds of the length). Cars
(Hyundai Grand i10 3,815 x 1,680 mm, Toyota Vios 4,425 x 1,730 mm, Innova 4,735 x 1,830 mm):
rectangles; so are buses and trucks (a Hanoi city bus is 10-12 m x 2.5 m).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLASSES = ("motorbike", "car", "heavy")
# Metres: length range, width range per class (the models above; trucks 7.5-9 m, buses 12 m).
DIMENSIONS_M = {
    "motorbike": ((1.80, 2.00), (0.65, 0.75)),
    "car": ((3.70, 4.90), (1.65, 1.85)),
    "heavy": ((7.50, 12.0), (2.30, 2.50)),
}
_FRAME_WIDTH_M = 0.4  # a motorbike's wheels, frame and footboard
_RIDER_FROM, _RIDER_TO = 0.25, 0.67  # the full-width part, as shares of the length from the front
_MERGE_S = 1e-6  # a clear gap shorter than a microsecond is no gap on any detector


@dataclass(frozen=True)
class Part:
    """A rectangle of a footprint: `behind_m` behind the vehicle's front, centred laterally."""

    behind_m: float
    length_m: float
    width_m: float


@dataclass(frozen=True)
class Body:
    """A vehicle's class and plan-view footprint."""

    cls: str
    length_m: float
    width_m: float
    parts: tuple[Part, ...]


def body(cls: str, length_m: float, width_m: float) -> Body:
    """The footprint of a vehicle of class `cls` (see the module docstring)."""
    if cls not in CLASSES:
        raise ValueError(f"unknown vehicle class {cls!r}: use {CLASSES}")
    if cls == "motorbike":
        rider = Part(_RIDER_FROM * length_m, (_RIDER_TO - _RIDER_FROM) * length_m, width_m)
        parts: tuple[Part, ...] = (Part(0.0, length_m, min(width_m, _FRAME_WIDTH_M)), rider)
    else:
        parts = (Part(0.0, length_m, width_m),)
    return Body(cls, length_m, width_m, parts)


def random_body(cls: str, rng: random.Random) -> Body:
    """A vehicle of class `cls` with dimensions drawn from DIMENSIONS_M."""
    (l_lo, l_hi), (w_lo, w_hi) = DIMENSIONS_M[cls]
    return body(cls, rng.uniform(l_lo, l_hi), rng.uniform(w_lo, w_hi))


def class_of_length(length_m: float) -> str:
    """The class a vehicle of this length is built as by `vehicle()`-style single vehicles."""
    return "motorbike" if length_m < 2.5 else "car" if length_m < 6.0 else "heavy"


@dataclass(frozen=True)
class Zone:
    """One detection zone: detector `det` (0 = A, 1 = B) of zone pair `pair` in `lane`."""

    pair: int
    det: int
    lane: int
    x0: float
    x1: float
    y0: float
    y1: float


@dataclass(frozen=True)
class Layout:
    """Where the zones are: per lane `sublanes` zone pairs side by side (1: one pair across the
    lane), each zone `zone_length_m` long and `zone_width_m` wide (None: the lane's width
    shared out), B's leading edge `spacing_m` after A's. Pair index = lane * sublanes + k,
    k counted across the road like the lanes."""

    lanes: int = 2
    sublanes: int = 1
    lane_width_m: float = 3.5
    spacing_m: float = 2.0
    zone_length_m: float = 0.5
    zone_width_m: float | None = None

    def __post_init__(self) -> None:
        if self.lanes < 1 or self.sublanes < 1:
            raise ValueError("a layout has at least one lane and one zone pair per lane")
        if self.spacing_m < self.zone_length_m:
            raise ValueError("zone B must start after zone A ends (spacing >= zone length)")
        if self.sublanes * self.width_m > self.lane_width_m + 1e-9:
            raise ValueError(f"{self.sublanes} zones of {self.width_m} m do not fit a "
                             f"{self.lane_width_m} m lane")

    @property
    def width_m(self) -> float:
        return self.zone_width_m or self.lane_width_m / self.sublanes

    @property
    def pairs(self) -> int:
        return self.lanes * self.sublanes

    def zones(self) -> list[Zone]:
        """Every zone, in (pair, det) order; the pairs of a lane centred in it."""
        out = []
        w = self.width_m
        for lane in range(self.lanes):
            left = lane * self.lane_width_m + (self.lane_width_m - self.sublanes * w) / 2
            for k in range(self.sublanes):
                y0 = left + k * w
                for det, x0 in ((0, 0.0), (1, self.spacing_m)):
                    zone = Zone(lane * self.sublanes + k, det, lane, x0, x0 + self.zone_length_m,
                                y0, y0 + w)
                    out.append(zone)
        return out

    @property
    def site_x(self) -> float:
        """Midway between the zones' leading edges: where a passage's spot speed is taken."""
        return self.spacing_m / 2

    def lane_at(self, y: float) -> int:
        """The lane a lateral position is in (clamped to the road)."""
        return min(self.lanes - 1, max(0, int(y // self.lane_width_m)))

    def lane_centre(self, lane: int) -> float:
        return (lane + 0.5) * self.lane_width_m

    def settings(self) -> dict[str, int]:
        """The traffic node's settings for this layout (firmware/ssnode/traffic_node.py)."""
        return {
            "lanes": self.lanes,
            "sublanes": self.sublanes,
            "detector_spacing_cm": round(self.spacing_m * 100),
            "detector_length_cm": round(self.zone_length_m * 100),
            "detector_width_cm": round(self.width_m * 100),
        }


def layout_for(settings: Mapping[str, Any]) -> Layout:
    """The layout a traffic node with these settings expects (firmware/ssnode/config.py
    defaults for what is not set); lanes are 3.5 m wide, or as wide as their zones."""
    sublanes = int(settings.get("sublanes", 1))
    width = int(settings.get("detector_width_cm", 350)) / 100
    lane = round(max(3.5, sublanes * width), 3)
    return Layout(lanes=int(settings.get("lanes", 2)), sublanes=sublanes, lane_width_m=lane,
                  spacing_m=int(settings.get("detector_spacing_cm", 200)) / 100,
                  zone_length_m=int(settings.get("detector_length_cm", 50)) / 100,
                  zone_width_m=min(width, lane / sublanes))


# The layouts the benchmark and the docs compare. `pair` is the node's default: a pair of
# 0.5 m zones across the lane (IR beams, a ToF pair), 2 m apart. `loops` is the most common
# inductive loop, 6 ft x 6 ft (1.83 m), in the usual 20 ft (6.1 m) leading-edge speed trap
# (Coifman 1999). `sublane` is three 1.2 m wide pairs across a 3.6 m lane.
LAYOUTS = {
    "pair": Layout(),
    "loops": Layout(spacing_m=6.1, zone_length_m=1.83, zone_width_m=1.83),
    "sublane": Layout(sublanes=3, lane_width_m=3.6, zone_width_m=1.2),
}


@dataclass
class Trajectory:
    """Where a vehicle is: its front's travel distance s (m, growing) and its lateral centre y,
    as segments ``(t, s, v, a, y, vy)`` of constant acceleration a and lateral speed vy, each
    lasting until the next one's t. Absolute x = x0 + direction * s."""

    direction: int
    x0: float
    segments: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)
    end: float | None = None  # when the last segment ends (None: still being driven)

    def add(self, t: float, s: float, v: float, a: float, y: float, vy: float) -> None:
        last = self.segments[-1] if self.segments else None
        if last is not None and not (v or a or vy or last[2] or last[3] or last[5]):
            return  # standing still, as in the segment before: that one goes on
        self.segments.append((t, s, v, a, y, vy))

    def _spans(self) -> list[tuple[tuple[float, float, float, float, float, float], float]]:
        segs = self.segments
        ends = [seg[0] for seg in segs[1:]] + [math.inf if self.end is None else self.end]
        return list(zip(segs, ends, strict=True))

    def time_at(self, s_target: float) -> float | None:
        """When the front first reaches travel distance `s_target` (None: not yet)."""
        for seg, end in self._spans():
            tau = _reach(seg, s_target, end - seg[0])
            if tau is not None:
                return seg[0] + tau
        return None

    def state_at(self, t: float) -> tuple[float, float, float]:
        """(s, v, y) at time t, from the last segment started by then (or the first); after
        `end`, where it was at the end."""
        seg = self.segments[0]
        for later in self.segments[1:]:
            if later[0] > t:
                break
            seg = later
        if self.end is not None:
            t = min(t, self.end)  # the record ends: it stays where it was then
        tau = max(0.0, t - seg[0])
        _, s, v, a, y, vy = seg
        return s + v * tau + a * tau * tau / 2, v + a * tau, y + vy * tau

    def travel(self, x0: float, x1: float) -> tuple[float, float]:
        """A road interval [x0, x1] as travel distances, in increasing order."""
        a, b = self.direction * (x0 - self.x0), self.direction * (x1 - self.x0)
        return (a, b) if a <= b else (b, a)

    def occupancy(self, bod: Body, zone: Zone) -> list[tuple[float, float | None]]:
        """The times any part of `bod` is over `zone`: [(on, off)], off None if still on."""
        p0, p1 = self.travel(zone.x0, zone.x1)
        out: list[tuple[float, float | None]] = []
        for seg, end in self._spans():
            duration = end - seg[0]
            for part in bod.parts:
                # Longitudinally over the zone while the front is in [p0 + behind, p1 + behind
                # + length]; laterally while the centre is within half the widths of the zone.
                span = _between(seg, p0 + part.behind_m, p1 + part.behind_m + part.length_m,
                                duration)
                if span is None:
                    continue
                lat = _lateral(seg, zone.y0 - part.width_m / 2, zone.y1 + part.width_m / 2,
                               span)
                if lat is not None:
                    on, off = seg[0] + lat[0], seg[0] + lat[1]
                    out.append((on, None if math.isinf(off) else off))
        return union(out)


def _reach(seg: tuple[float, ...], s_target: float, duration: float) -> float | None:
    """Time into `seg` at which the front reaches `s_target`, if within `duration`."""
    _, s, v, a, _, _ = seg
    d = s_target - s
    if d <= 0:
        return 0.0
    if a == 0:
        tau = d / v if v > 0 else math.inf
    else:
        disc = v * v + 2 * a * d
        if disc < 0:
            return None  # decelerates to a stop before reaching it
        tau = 2 * d / (v + math.sqrt(disc))  # the stable root of s + v t + a t^2 / 2 = target
    return tau if tau <= duration else None


def _between(seg: tuple[float, ...], lo: float, hi: float,
             duration: float) -> tuple[float, float] | None:
    """The time span within `seg` (relative) in which the front is in [lo, hi]."""
    start = _reach(seg, lo, duration)
    if start is None:
        return None
    leave = _reach(seg, hi, duration)
    if leave is not None and leave <= start and seg[1] >= hi:
        return None  # already past the end when the segment starts
    return start, (duration if leave is None else leave)


def _lateral(seg: tuple[float, ...], lo: float, hi: float,
             span: tuple[float, float]) -> tuple[float, float] | None:
    """The part of `span` in which the lateral centre is strictly inside (lo, hi)."""
    y, vy = seg[4], seg[5]
    a, b = span
    if vy == 0:
        return span if lo < y < hi else None
    t_lo, t_hi = (lo - y) / vy, (hi - y) / vy
    if t_lo > t_hi:
        t_lo, t_hi = t_hi, t_lo
    a, b = max(a, t_lo), min(b, t_hi)
    return (a, b) if a < b else None


def union(spans: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    """Overlapping or touching spans merged (off None = still on, i.e. open-ended)."""
    out: list[tuple[float, float | None]] = []
    for on, off in sorted(spans, key=lambda s: s[0]):
        if out:
            last_on, last_off = out[-1]
            if last_off is None:
                continue
            if on <= last_off + _MERGE_S:
                out[-1] = (last_on, None if off is None else max(last_off, off))
                continue
        out.append((on, off))
    return out
