"""Vehicles from zone-pair detections (pure logic, no hardware): each counted once, classed
only when measured, the doubtful ones counted as `unknown`.

ssnode/traffic.py pairs each zone pair's two occupancies and hands over, per pair (pair =
lane * sublanes + k, numbered across the road), `paired(pair, direction, first, second)` with
the (rise, fall) of the first and second zone the vehicle crossed, or `unpaired(pair, det,
occupancy)`. A detector reports the union of what is over it (REFERENCE.md "Traffic
counting"), so:

1. One vehicle over adjacent zones (a car over two or three sub-lane zones, a motorbike on a
   lane line) is one vehicle: detections of adjacent pairs, same direction, whose occupancies
   agree at both ends on both zones (within _SAME_US + 1/32 of the occupancy: one rigid body),
   or, for a motorbike-length detection, nest: the other strictly inside it and at most 3/4
   as long (a zone that only the rider, handlebar and mirrors reach; a motorbike is widest in
   its middle), or overlap in time at both zones while one of them fits no vehicle (rule 3):
   a vehicle moving across the zones leaves such parts in each (`straddling` when the
   detections are in two lanes).
2. An unpaired occupancy overlapping an adjacent pair's occupancy at the same zone line is
   part of that vehicle (moving across, it left one zone or came into the other between the
   zone lines); one seen first in one pair and then in the next one (transit and on-times
   of one vehicle) is a vehicle changing lanes (or sub-lanes) between the zones; any other is
   a vehicle one detector missed, counted as unclassified. All are in the `unpaired` counter.
   A vehicle is counted in the lane it was in at the second zone (where its occupancy was
   longest); `lane_changes` counts those that were in another lane at the first.
3. Coifman's dual-loop checks (Coifman 1999, TRR 1683), allowing the speed to change at a
   constant rate: the four edges must fit one vehicle whose acceleration is one traffic has
   and that kept moving (`_fit`). If not (vehicles merged differently at the two zones, a
   stop against the zones) speed and length are not measured: class unknown
   (`inconsistent`).
4. Length = speed x mean on-time - zone length; longer than `length_max_mm` is no vehicle:
   class unknown.
5. A congested lane (the last _RECENT speeds average below 10 km/h, or its first zones were
   occupied over 60 % of the last 15-30 s) queues and merges vehicles over the zones: nothing
   is classed heavy there, a heavy length is unknown.
6. Sub-lane zones narrower than the narrowest car (_CAR_MIN_WIDTH_MM): a detection in one zone
   only is a two-wheeler's, so a car or heavy length there is merged motorbikes: unknown.

Speeds are averaged over vehicles with a measured speed: time-mean (arithmetic) and space-mean
(harmonic: n spacing / sum of transits). Events are held _HOLD_US before they are final, so
the other zones' detections of the same vehicle can join them (longer while a neighbour pair
has an occupancy from their time it has not decided on).
"""

from collections import deque

try:
    from micropython import const
except ImportError:  # CPython: the tests run the same module

    def const(x):  # type: ignore[misc]  # the stubs type const generically
        return x


CLASS_MOTORBIKE = const(0)
CLASS_CAR = const(1)
CLASS_HEAVY = const(2)
CLASS_UNKNOWN = const(3)  # counted, not classed: no consistent measurement
CLASS_UNPAIRED = const(4)  # seen by one detector only: no speed at all
CLASS_NAMES = ("motorbike", "car", "heavy", "unknown", "unpaired")
_CLASSES = const(5)

_HOLD_US = const(1000000)  # a detection waits at least this long for its other zones
_KEEP_US = const(8000000)  # counted detections stay this long to absorb late unpaired ones
_SAME_US = const(10000)  # IRQ jitter: one rigid body's edges agree this well
_PENDING_MAX = const(48)
_RECENT = const(4)  # speeds of the last vehicles of a lane, for the congested state
_CONGESTED_DKMH = const(100)  # 10 km/h
_CONGESTED_OCC_PCT = const(60)
_OCC_BUCKET_US = const(15000000)
_CAR_MIN_WIDTH_MM = const(1500)  # the narrowest cars are about 1.6 m wide
# mm/s2: beyond what vehicles do in traffic (urban starts stay below ~3 m/s2, firm braking
# ~4-5 m/s2; only emergency stops reach 7-8): edges that need more are not one vehicle.
_ACCEL_MAX = const(4000)
_DECEL_MAX = const(6000)

# Entry fields: a list per detection.
_T, _PAIR, _DIR, _R1, _F1, _R2, _F2, _GROUP, _DONE = range(9)


class Vehicles:
    """Counts, events and counters from zone-pair detections (see the module docstring)."""

    def __init__(self, *, lanes, sublanes, spacing_mm, detector_length_mm, detector_width_mm,
                 motorbike_max_mm, car_max_mm, length_max_mm, max_transit_us, diff,
                 undecided, events_max):  # fmt: skip
        self.lanes = lanes
        self._sub = sublanes
        self._spacing = spacing_mm
        self._det_len = detector_length_mm
        self._narrow = sublanes > 1 and detector_width_mm < _CAR_MIN_WIDTH_MM
        self._moto_max = motorbike_max_mm
        self._car_max = car_max_mm
        self._len_max = length_max_mm
        self._max_transit = max_transit_us
        self._diff = diff  # ticks_diff(new, old) in the counter's tick space
        # undecided(pair, before): that pair holds an occupancy begun before `before` that it
        # has not paired or given up yet (ssnode/traffic.py)
        self._undecided = undecided
        self._pending = []
        self._group = 0
        self._events: deque = deque((), events_max + 1)  # noqa: RUF037
        self._events_max = events_max
        self.events_dropped = 0
        self.counters = {"unpaired": 0, "lane_changes": 0, "straddling": 0, "inconsistent": 0}
        self._recent = [0] * (lanes * _RECENT)  # last speeds per lane (0: none yet)
        self._recent_i = [0] * lanes
        self._occ = [0] * (lanes * 2)  # first-zone occupancy, this and the last bucket
        self._occ_start = None
        self._now = 0
        self._reset_interval()

    # -- input ------------------------------------------------------------------------------
    def paired(self, pair, direction, first, second, now):
        """A vehicle crossed `pair`'s zones: (rise, fall) at its first and second zone."""
        entry = [now, pair, direction, first[0], first[1], second[0], second[1], -1, 0]
        self._join(entry)
        self._add(entry)
        for e in self._pending:  # unpaired parts of it that came first
            if not e[_DIR] and not e[_DONE] and e[_R2] in (0, direction) \
                    and abs(e[_PAIR] - pair) == 1 \
                    and self._overlap((e[_R1], e[_F1]), self._at(entry, e[_GROUP])):  # fmt: skip
                e[_DONE] = 1
                self._part(entry, e[_PAIR], e[_GROUP], (e[_R1], e[_F1]), now)

    def unpaired(self, pair, det, occ, now, direction):
        """Detector `det` of `pair` saw `occ` = (rise, fall) that its partner never did; the
        pair's traffic goes in `direction` (the last one paired there; 0: none yet)."""
        self.counters["unpaired"] += 1
        for e in self._pending:
            if e[_DIR] and direction in (0, e[_DIR]) and abs(e[_PAIR] - pair) == 1 \
                    and e[_F1] != e[_R1] and e[_F2] != e[_R2] \
                    and self._overlap(occ, self._at(e, det)):  # fmt: skip
                self._part(e, pair, det, occ, now)  # a part of that vehicle (rule 2)
                return
        for e in self._pending:
            if not e[_DIR] and not e[_DONE] and abs(e[_PAIR] - pair) == 1 \
                    and e[_GROUP] != det and e[_R2] in (0, direction) \
                    and self._crossed(e, pair, det, occ, now):  # fmt: skip
                return
        # An unpaired entry joins no group: _GROUP holds its detector, _R2 its direction.
        self._add([now, pair, 0, occ[0], occ[1], direction, 0, det, 0])

    def _part(self, e, pair, det, occ, now):
        """Occupancy `occ` at detector `det` of `pair` is part of detection `e`'s vehicle: a
        member of its group with that zone's occupancy only (an empty one at the other), so
        that _finish can take it as the vehicle's longest there. None once `e` is counted."""
        if e[_DONE]:
            return
        r1, f1, r2, f2 = e[_R1], e[_R1], e[_R2], e[_R2]
        if (det == 0) == (e[_DIR] > 0):
            r1, f1 = occ
        else:
            r2, f2 = occ
        self._add([now, pair, e[_DIR], r1, f1, r2, f2, e[_GROUP], 0])

    def lane_occupancy(self, lane, occupied_us):
        """Book `occupied_us` of lane `lane`'s first zones (for the congested state)."""
        self._occ[2 * lane] += occupied_us

    # -- grouping (rules 1 and 2) -----------------------------------------------------------
    def _at(self, e, det):
        """Entry `e`'s (rise, fall) at detector `det` (0 = A)."""
        if (det == 0) == (e[_DIR] > 0):
            return e[_R1], e[_F1]
        return e[_R2], e[_F2]

    def _tol(self, a, b):
        longer = max(self._diff(a[1], a[0]), self._diff(b[1], b[0]))
        return _SAME_US + (longer >> 5)

    def _agree(self, a, b):
        tol = self._tol(a, b)
        return abs(self._diff(a[0], b[0])) <= tol and abs(self._diff(a[1], b[1])) <= tol

    def _overlap(self, a, b):
        return self._diff(a[1], b[0]) > 0 and self._diff(b[1], a[0]) > 0

    def _nested(self, inner, outer):
        """`inner` strictly inside `outer` and at most 3/4 as long."""
        tol = self._tol(inner, outer)
        on_in, on_out = self._diff(inner[1], inner[0]), self._diff(outer[1], outer[0])
        return (self._diff(inner[0], outer[0]) > tol and self._diff(outer[1], inner[1]) > tol
                and 4 * on_in <= 3 * on_out)  # fmt: skip

    def _rigid(self, a, b):
        """Detections `a`, `b` agree at both ends at both zones: one rigid body."""
        return self._agree((a[_R1], a[_F1]), (b[_R1], b[_F1])) and \
            self._agree((a[_R2], a[_F2]), (b[_R2], b[_F2]))

    def _same(self, a, b):
        """Detections `a`, `b` (adjacent pairs, same direction) of one vehicle (rule 1)."""
        a1, a2, b1, b2 = (a[_R1], a[_F1]), (a[_R2], a[_F2]), (b[_R1], b[_F1]), (b[_R2], b[_F2])
        if self._rigid(a, b):
            return True
        if (self._measure(a)[0] is None or self._measure(b)[0] is None) \
                and self._overlap(a1, b1) and self._overlap(a2, b2):  # fmt: skip
            return True  # a part that fits no vehicle, beside one: a vehicle moving across
        if self._diff(a1[1], a1[0]) < self._diff(b1[1], b1[0]):
            a, a1, a2, b, b1, b2 = b, b1, b2, a, a1, a2
        # `a` is the longer: a motorbike's, with `b` only its middle at both zones?
        length = self._measure(a)[1]
        return (length is not None and length < self._moto_max
                and self._nested(b1, a1) and self._nested(b2, a2))  # fmt: skip

    def _join(self, entry):
        """Put `entry` in the group of the detections of its vehicle (rule 1), or a new one.
        A detection of a vehicle counted already (the pairing of its zone took longer) is
        marked counted too."""
        for e in self._pending:
            gap = abs(e[_PAIR] - entry[_PAIR])
            if not e[_DIR] or e[_DIR] != entry[_DIR] or not 0 < gap <= 2 \
                    or e[_F1] == e[_R1] or e[_F2] == e[_R2]:  # a part: it is in a group
                continue
            # Two pairs apart, in one lane: a rigid body wider than the zone between (a car
            # whose detection in the middle zone comes later).
            if gap == 1:
                if not self._same(e, entry):
                    continue
            elif e[_PAIR] // self._sub != entry[_PAIR] // self._sub or not self._rigid(e, entry):
                continue
            if e[_DONE]:
                entry[_GROUP], entry[_DONE] = e[_GROUP], 1
                return
            if entry[_GROUP] < 0:
                entry[_GROUP] = e[_GROUP]
            elif e[_GROUP] != entry[_GROUP]:
                old = e[_GROUP]
                for other in self._pending:
                    if other[_DIR] and other[_GROUP] == old:
                        other[_GROUP] = entry[_GROUP]
        if entry[_GROUP] < 0:
            self._group += 1
            entry[_GROUP] = self._group

    def _crossed(self, e, pair, det, occ, now):
        """Unpaired `e` (its detector in e[_GROUP]) and `occ` (detector `det` of `pair`, next
        to e's) are one vehicle moving across between the zones: then count it, and True."""
        mine = (e[_R1], e[_F1])
        if self._diff(occ[0], mine[0]) > 0:
            first, first_det, second, pairs = mine, e[_GROUP], occ, (e[_PAIR], pair)
        else:
            first, first_det, second, pairs = occ, det, mine, (pair, e[_PAIR])
        direction = 1 if first_det == 0 else -1
        if not 0 < self._diff(second[0], first[0]) <= self._max_transit:
            return False
        if e[_R2] not in (0, direction) or self._fit(first, second)[0] is None:
            return False
        e[_DONE] = 1
        # One group of two detections, each with its pair's occupancy only (_finish takes
        # the longest at each zone).
        self._group += 1
        g = self._group
        r1, r2 = first[0], second[0]
        self._add([now, pairs[0], direction, r1, first[1], r2, r2, g, 0])
        self._add([now, pairs[1], direction, r1, r1, r2, second[1], g, 0])
        return True

    # -- finishing -------------------------------------------------------------------------
    def process(self, now):
        """Count the groups that have waited _HOLD_US and whose neighbour pairs hold nothing
        undecided from their time (at most max_transit more: then the neighbour gives up);
        forget counted detections after _KEEP_US."""
        self._now = now
        self._rotate(now)
        diff = self._diff
        pending = self._pending
        groups = {}  # type: dict
        for e in pending:
            if e[_DONE]:
                continue
            if e[_DIR] == 0:
                if diff(now, e[_T]) >= _HOLD_US:
                    e[_DONE] = 1
                    self._count(e[_PAIR] // self._sub, CLASS_UNPAIRED, 0, 0, 0, e[_R1], 0)
                continue
            groups.setdefault(e[_GROUP], []).append(e)
        for members in groups.values():
            if self._ready(members, now):
                self._finish(members)
        self._pending = [e for e in pending if not e[_DONE] or diff(now, e[_T]) < _KEEP_US]

    def _ready(self, members, now):
        diff = self._diff
        waited = min(diff(now, e[_T]) for e in members)
        if waited < _HOLD_US:
            return False
        if waited >= _HOLD_US + self._max_transit:
            return True
        pairs = [e[_PAIR] for e in members]
        end = members[0][_F2]
        for e in members:
            if diff(e[_F2], end) > 0:
                end = e[_F2]
        for p in pairs:
            for q in (p - 1, p + 1):
                if 0 <= q < self.lanes * self._sub and q not in pairs and self._undecided(q, end):
                    return False
        return True

    def _add(self, entry):
        self._pending.append(entry)
        if len(self._pending) > _PENDING_MAX:
            oldest = self._pending[0]
            if oldest[_DIR] and not oldest[_DONE]:
                self._finish([e for e in self._pending if e[_DIR] and e[_GROUP] == oldest[_GROUP]
                              and not e[_DONE]])  # fmt: skip
            self._pending.pop(0)

    def _finish(self, members):
        """Count the vehicle of one group of detections: measured on the longest occupancy
        at each zone (a vehicle moving across leaves all of it in one pair at the first zone
        and in another at the second), in the lane it was in at the second zone."""
        first = second = members[0]
        for e in members:
            e[_DONE] = 1
            if self._diff(e[_F1], e[_R1]) > self._diff(first[_F1], first[_R1]):
                first = e
            if self._diff(e[_F2], e[_R2]) > self._diff(second[_F2], second[_R2]):
                second = e
        lane = second[_PAIR] // self._sub
        if first[_PAIR] // self._sub != lane:
            self.counters["lane_changes"] += 1
        elif any(e[_PAIR] // self._sub != lane for e in members):
            self.counters["straddling"] += 1
        direction, r1 = first[_DIR], first[_R1]
        transit, length = self._fit((r1, first[_F1]), (second[_R2], second[_F2]))
        if transit is None:
            self.counters["inconsistent"] += 1
            self._count(lane, CLASS_UNKNOWN, direction, 0, 0, r1, 0)
            return
        speed = _div_round(self._spacing * 36000, transit)
        self._remember(lane, speed)
        if length > self._len_max:
            cls, length = CLASS_UNKNOWN, 0
        elif length < self._moto_max:
            cls = CLASS_MOTORBIKE
        elif len(members) == 1 and self._narrow:
            cls = CLASS_UNKNOWN  # one narrow zone: merged two-wheelers (rule 6)
        elif length < self._car_max:
            cls = CLASS_CAR
        elif self._congested(lane):
            cls = CLASS_UNKNOWN  # queues merge over the zones (rule 5)
        else:
            cls = CLASS_HEAVY
        self._count(lane, cls, direction, speed, length, r1, transit)

    def _measure(self, e):
        """(rise transit us, length mm) of detection `e`: see `_fit`."""
        return self._fit((e[_R1], e[_F1]), (e[_R2], e[_F2]))

    def _fit(self, first, second):
        """(rise transit us, length mm) of a vehicle whose front reached the first zone, then
        the second, and whose rear left them, at these four edges; or (None, None) when the
        edges fit no vehicle (rule 3).

        Coifman's checks assume one speed; here the speed may change at a constant rate, as
        it does moving off from a queue: the rise transit gives the speed at its middle (v1),
        the fall transit at its own (v2), and the length is the distance the front travelled
        while the first zone was occupied, minus the zone. The edges fit one vehicle if that
        rate is one a vehicle can have (_ACCEL_MAX, _DECEL_MAX) and it kept moving."""
        diff = self._diff
        rise, fall = diff(second[0], first[0]), diff(second[1], first[1])
        on = diff(first[1], first[0])
        if rise <= 0 or fall <= 0 or on <= 0:
            return None, None
        # Times from the first rise, in us; speeds in mm/s.
        m1, m2 = rise >> 1, on + (fall >> 1)
        v1, v2 = self._spacing * 1000000 // rise, self._spacing * 1000000 // fall
        if m2 <= m1:
            return None, None
        accel = (v2 - v1) * 1000000 // (m2 - m1)  # mm/s2
        end = diff(second[1], first[0])
        v_end = v1 + (v2 - v1) * (end - m1) // (m2 - m1)
        v_start = v1 - (v2 - v1) * m1 // (m2 - m1)
        if not -_DECEL_MAX <= accel <= _ACCEL_MAX or v_end <= 0 or v_start <= 0:
            return None, None
        v_mid_on = v1 + (v2 - v1) * ((on >> 1) - m1) // (m2 - m1)
        length = v_mid_on * on // 1000000 - self._det_len
        return rise, max(length, 0)

    # -- congested state (rule 5) ------------------------------------------------------------
    def _remember(self, lane, speed):
        i = self._recent_i[lane]
        self._recent[lane * _RECENT + i] = speed
        self._recent_i[lane] = (i + 1) % _RECENT

    def _rotate(self, now):
        if self._occ_start is None:
            self._occ_start = now
        elif self._diff(now, self._occ_start) >= _OCC_BUCKET_US:
            self._occ_start = now
            for lane in range(self.lanes):
                self._occ[2 * lane + 1] = self._occ[2 * lane]
                self._occ[2 * lane] = 0

    def _congested(self, lane):
        recent = self._recent[lane * _RECENT : (lane + 1) * _RECENT]
        if 0 not in recent and sum(recent) < _CONGESTED_DKMH * _RECENT:
            return True
        span = _OCC_BUCKET_US + self._diff(self._now, self._occ_start or self._now)
        occupied = self._occ[2 * lane] + self._occ[2 * lane + 1]
        return 100 * occupied > _CONGESTED_OCC_PCT * span

    # -- output ----------------------------------------------------------------------------
    def _count(self, lane, cls, direction, speed, length_mm, t, transit):
        self._counts[lane * _CLASSES + cls] += 1
        if transit:
            self._speed_sum[lane] += speed
            self._speed_n[lane] += 1
            self._transit_sum[lane] += transit
        ev = self._events
        ev.append((lane, direction, speed, (length_mm + 5) // 10, cls, t))
        if len(ev) > self._events_max:
            ev.popleft()  # the consumer fell behind: keep the newest, count the loss
            self.events_dropped += 1

    def pop_event(self):
        """The oldest ``(lane, direction, speed_dkmh, length_cm, class, rise_ticks)``, or
        None. Direction +1 (A then B), -1 (B then A), 0 unpaired; speed and length 0 when
        not measured."""
        return self._events.popleft() if self._events else None

    def _reset_interval(self):
        n = self.lanes
        self._counts = [0] * (n * _CLASSES)
        self._speed_sum, self._speed_n, self._transit_sum = [0] * n, [0] * n, [0] * n

    def report(self, lane):
        """Lane `lane` since the interval began: (counts per class as CLASS_*, time-mean and
        space-mean speed in 0.1 km/h, 0 when no speed was measured)."""
        n = self._speed_n[lane]
        time_mean = _div_round(self._speed_sum[lane], n) if n else 0
        space_mean = _div_round(n * self._spacing * 36000, self._transit_sum[lane]) if n else 0
        return self._counts[lane * _CLASSES : (lane + 1) * _CLASSES], time_mean, space_mean

    def reset_interval(self):
        self._reset_interval()


def _div_round(num, den):
    return (2 * num + den) // (2 * den)
