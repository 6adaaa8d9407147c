"""Vehicle detection from pairs of presence detectors (pure logic, no hardware).

A zone pair is detector A (upstream) and B (downstream), ``spacing_mm`` apart: speed =
spacing / (rise_second - rise_first), length = speed x occupancy - detector_length
(REFERENCE.md "Traffic counting": the dual-loop method). Each lane has ``sublanes`` pairs
side by side (1: one pair across the lane; more: a sub-lane array of narrow zones, so that
vehicles abreast are seen apart); pairs are numbered across the road, pair = lane *
sublanes + k. This module debounces each detector and pairs its occupancies per zone pair;
ssnode/vehicles.py turns the pairs' detections into counted vehicles.

The GPIO IRQ calls ``on_edge()``, which only writes a preallocated ring; an asyncio task
calls ``process(now_us)`` and, once per interval, ``report(interval_s)``. Outputs are
integers: speed in 0.1 km/h, length in cm, occupancy in 0.1 %.
"""

from array import array
from collections import deque

try:
    from micropython import const
except ImportError:  # CPython: the tests run the same module

    def const(x):  # type: ignore[misc]  # the stubs type const generically
        return x


from .vehicles import (  # noqa: F401  # the classes are this module's API too
    CLASS_CAR,
    CLASS_HEAVY,
    CLASS_MOTORBIKE,
    CLASS_NAMES,
    CLASS_UNKNOWN,
    CLASS_UNPAIRED,
    Vehicles,
)

DET_A = const(0)
DET_B = const(1)

# ESP32 ticks_us() wraps at 2**30 (MICROPY_PY_TIME_TICKS_PERIOD on 32-bit ports). The mask
# is a small int there; 2**30 itself would be a heap-allocated big int.
TICKS_MASK = const(0x3FFFFFFF)
_AGAINST_US = const(150000)
_HABIT = const(4)


def ticks_diff(new, old, mask=TICKS_MASK):
    """``new - old`` in a tick space that wraps at ``mask + 1`` (a power of two), like
    ``time.ticks_diff`` but for any period, so the unix port can test the ESP32 wrap."""
    d = (new - old) & mask
    half = (mask >> 1) + 1
    if d >= half:
        # Two subtractions keep every intermediate a small int on a 32-bit port.
        d -= half
        d -= half
    return d


def _div_round(num, den):
    return (2 * num + den) // (2 * den)


class TrafficCounter:
    """Counts and classifies vehicles on ``lanes`` lanes of ``sublanes`` zone pairs each from
    detector edges."""

    # debounce_us = 20 ms: below a quarter of the shortest real occupancy (a 1.5 m motorbike
    # over a 0.5 m zone at 80 km/h stays 90 ms) and far below the shortest real gap (~300 ms
    # between Hanoi motorbikes), yet above the few-ms dropouts a light barrier shows through
    # a motorbike's frame and the chatter of a loop detector's relay output.
    # max_transit_us: a partner rise later than this is another vehicle (3 m at 3 km/h).
    # stuck_us: a detector high this long is stuck (or a vehicle parks on it): stop waiting.
    # length_max_mm: nothing on a city street is longer (a road train: 20 m).
    def __init__(
        self, *, lanes=1, sublanes=1, spacing_mm=3000, detector_length_mm=500,
        detector_width_mm=3500, debounce_us=20000, motorbike_max_mm=2500, car_max_mm=6500,
        length_max_mm=20000, max_transit_us=3600000, stuck_us=90000000,
        ticks_mask=TICKS_MASK, ring_size=256, queue_max=16, events_max=64, flag=None,
    ):  # fmt: skip
        self.lanes = lanes
        self.sublanes = sublanes
        self.pairs = pairs = lanes * sublanes
        self._debounce = debounce_us
        self._max_transit = max_transit_us
        self._stuck = stuck_us
        self._mask = ticks_mask
        self._flag = flag
        # Ring of raw edges: timestamps in 'L', (pair << 2 | det << 1 | level) in a bytearray.
        # Single producer (IRQ) / single consumer (task): each side owns one index.
        self._ring_t = array("L", [0] * ring_size)
        self._ring_k = bytearray(ring_size)
        self._ring_n = ring_size
        self._head = 0
        self._tail = 0
        self.edges_dropped = 0
        n = pairs * 2
        # Debounce filter per detector: a "burst" is a run of raw edges each closer than
        # debounce_us to the previous one; it settles to one transition stamped with the
        # burst's first edge (so bounce does not skew speed), or to none if it ends at the
        # level it started from (a glitch).
        self._stable = bytearray(n)
        self._raw = bytearray(n)
        self._in_burst = bytearray(n)
        self._burst_t = [0] * n
        self._last_t = [0] * n
        self._open_t = [0] * n  # rise time of the current (stable-high) occupancy
        # Completed occupancies (rise, fall) per detector, paired FIFO per zone pair: vehicles
        # over one pair cannot overtake between two detectors a few metres apart.
        # MicroPython's deque takes (iterable, maxlen) positionally only.
        self._queue: list = [deque((), queue_max + 1) for _ in range(n)]  # noqa: RUF037
        self._queue_max = queue_max
        # Per pair its habit: +n / -n after n vehicles in a row paired in direction +1 / -1
        # (up to _HABIT: settled; 0: none yet), and the last transit.
        self._dir = [0] * pairs
        self._transit = [0] * pairs
        self._now = 0
        self._fresh = True  # no time seen yet: _now is not comparable to anything
        # Lane occupancy: time any of the lane's A zones is occupied (the union).
        self._a_busy = [0] * lanes
        self._a_open = [0] * lanes
        self._occ_us = [0] * lanes  # this interval's
        self._vehicles = Vehicles(
            lanes=lanes, sublanes=sublanes, spacing_mm=spacing_mm,
            detector_length_mm=detector_length_mm, detector_width_mm=detector_width_mm,
            motorbike_max_mm=motorbike_max_mm, car_max_mm=car_max_mm,
            length_max_mm=length_max_mm, max_transit_us=max_transit_us,
            diff=self._ticks_diff, undecided=self._undecided, events_max=events_max,
        )  # fmt: skip

    def _ticks_diff(self, new, old):
        return ticks_diff(new, old, self._mask)

    def _undecided(self, pair, before):
        """Pair `pair` holds an occupancy begun before `before` that it has not paired or
        given up on yet (queued, or still on)."""
        mask = self._mask
        for i in (2 * pair, 2 * pair + 1):
            for occ in self._queue[i]:
                if ticks_diff(before, occ[0], mask) > 0:
                    return True
            if self._stable[i] and ticks_diff(before, self._open_t[i], mask) > 0:
                return True
        return False

    @property
    def events_dropped(self):
        return self._vehicles.events_dropped

    def counters(self):
        """Since start: unpaired occupancies, lane changes, vehicles over a lane line,
        inconsistent detections, edges dropped by a full ring."""
        out = dict(self._vehicles.counters)
        out["edges_dropped"] = self.edges_dropped
        return out

    def on_edge(self, pair, detector, level, t_us):
        """Record one raw edge. Allocation-free: safe in a hard IRQ handler."""
        head = self._head
        nxt = head + 1 if head + 1 < self._ring_n else 0
        if nxt == self._tail:
            # Full: drop the newest so the stored edges stay in order; counted, not silent.
            self.edges_dropped += 1
            return
        self._ring_t[head] = t_us
        self._ring_k[head] = (pair << 2) | (detector << 1) | (level & 1)
        self._head = nxt  # publish only after the slot is written
        if self._flag is not None:
            self._flag.set()  # wake the task; ThreadSafeFlag.set() is IRQ-safe

    def process(self, now_us=None):
        """Drain the ring, settle debounce bursts older than ``now_us``, pair occupancies."""
        tail = self._tail
        while tail != self._head:
            k = self._ring_k[tail]
            self._edge(k >> 1, k & 1, self._ring_t[tail])
            tail = tail + 1 if tail + 1 < self._ring_n else 0
            self._tail = tail  # frees the slot for the IRQ
        if now_us is not None:
            self._now = now_us  # the caller's ticks_us(): later than every edge drained
        now = self._now
        for i in range(self.pairs * 2):
            if self._in_burst[i] and ticks_diff(now, self._last_t[i], self._mask) >= self._debounce:
                self._settle(i)
        for pair in range(self.pairs):
            self._pair(pair, now)
        self._vehicles.process(now)

    def _edge(self, i, level, t):
        if self._fresh or ticks_diff(t, self._now, self._mask) > 0:
            self._now = t
            self._fresh = False
        if self._in_burst[i] and ticks_diff(t, self._last_t[i], self._mask) >= self._debounce:
            self._settle(i)
        if not self._in_burst[i]:
            if level == self._stable[i]:
                return  # repeated level (an edge lost to a full ring): nothing changes
            self._in_burst[i] = 1
            self._burst_t[i] = t
        self._raw[i] = level
        self._last_t[i] = t

    def _settle(self, i):
        self._in_burst[i] = 0
        level = self._raw[i]
        if level == self._stable[i]:
            return  # the burst came back to where it started: a glitch
        self._stable[i] = level
        t = self._burst_t[i]
        if not i & 1:
            self._lane_a(i >> 1, level, t)
        if level:
            self._open_t[i] = t
            return
        q = self._queue[i]
        q.append((self._open_t[i], t))
        if len(q) > self._queue_max:
            # The partner has not answered for queue_max vehicles: give up on the oldest.
            self._unpaired(i, q.popleft())

    def _lane_a(self, pair, level, t):
        """Lane occupancy is the time any of its A zones is occupied, booked as it ends."""
        lane = pair // self.sublanes
        busy = self._a_busy[lane]
        if level:
            # Bursts settle in processing order: keep the earliest rise of the union.
            if not busy or ticks_diff(t, self._a_open[lane], self._mask) < 0:
                self._a_open[lane] = t
            self._a_busy[lane] = busy + 1
        elif busy:
            self._a_busy[lane] = busy - 1
            if busy == 1:
                occupied = ticks_diff(t, self._a_open[lane], self._mask)
                self._occ_us[lane] += occupied
                self._vehicles.lane_occupancy(lane, occupied)

    def _pair(self, pair, now):
        qa, qb = self._queue[2 * pair], self._queue[2 * pair + 1]
        mask = self._mask
        while qa or qb:
            if qa and qb:
                if not self._match(pair, qa, qb, now):
                    return
                continue
            q, other = (qa, 2 * pair + 1) if qa else (qb, 2 * pair)
            rise = q[0][0]
            if self._stable[other]:
                # The partner is occupied now: wait for it, unless its occupancy started too
                # long after this one (and after it ended) or it has been high so long that it
                # is stuck. Occupancies that overlap are one vehicle however long it took from
                # one zone to the other: a queue stops vehicles over the zones.
                d = ticks_diff(self._open_t[other], rise, mask)
                on = ticks_diff(q[0][1], rise, mask)
                if (d <= self._max_transit or d < on) and not self._stuck_at(other, now):
                    return
            elif ticks_diff(now, rise, mask) <= self._max_transit + self._debounce:
                return  # the partner may still rise (or its rise is still settling)
            self._unpaired(other ^ 1, q.popleft())

    def _reach(self, first):
        """How late the second zone may rise after `first` (rise, fall) for one vehicle: within
        max_transit, or while the first is still occupied (a stop between the zones)."""
        on = ticks_diff(first[1], first[0], self._mask)
        return on if on > self._max_transit else self._max_transit

    def _stuck_at(self, i, now):  # high for stuck_us: a dead sensor or a parked vehicle
        return ticks_diff(now, self._open_t[i], self._mask) >= self._stuck

    def _busy(self, i, now):  # an occupancy in progress may be the better partner: wait
        return self._in_burst[i] or (self._stable[i] and not self._stuck_at(i, now))

    def _match(self, pair, qa, qb, now):
        """Pair or drop the queue heads; False means wait for more edges."""
        # Hypotheses: heads together, or one head seen by one detector only (then the next
        # entry of the other queue is its partner's partner). A vehicle crosses both zones at
        # nearly one speed, so its two occupancies agree: the smallest disagreement wins and
        # the pair's last direction breaks ties (identical vehicles, missed by one detector).
        mask = self._mask
        best = best_score = best_near = best_dir = -1
        for h in range(3):
            if (h & 1) >= len(qa) or (h >> 1) >= len(qb):
                continue
            a, b = qa[h & 1], qb[h >> 1]
            d = ticks_diff(b[0], a[0], mask)
            if not (0 < d <= self._reach(a) or 0 < -d <= self._reach(b)):
                continue
            direction = 1 if d > 0 else -1
            err = ticks_diff(b[1], b[0], mask) - ticks_diff(a[1], a[0], mask)
            score = 2 * (err if err >= 0 else -err)
            habit = self._dir[pair]
            if direction * habit < 0:
                score += 1
                if habit >= _HABIT or -habit >= _HABIT:
                    # Against a settled habit costs as much as on-times _AGAINST_US apart: in
                    # traffic that speeds up or slows down, on-times differ more than that.
                    score += 2 * _AGAINST_US
            # Then the transit nearest the pair's last one: followers drive at similar speeds.
            near = abs(abs(d) - self._transit[pair]) if self._transit[pair] else h
            if best < 0 or score < best_score or (score == best_score and near < best_near):
                best, best_score, best_near, best_dir = h, score, near, direction
        if best < 0:
            # No hypothesis fits: the earlier head lost its partner.
            det = 0 if ticks_diff(qb[0][0], qa[0][0], mask) > 0 else 1
            self._unpaired(2 * pair + det, (qa, qb)[det].popleft())
            return True
        if (len(qa) < 2 and self._busy(2 * pair, now)) or (
            len(qb) < 2 and self._busy(2 * pair + 1, now)
        ):
            return False
        if best_dir * self._dir[pair] < 0:
            # Against the pair's habit: first let the partner the habit predicts show up.
            later = qa[best & 1][0] if best_dir < 0 else qb[best >> 1][0]
            if ticks_diff(now, later, mask) <= self._max_transit + self._debounce:
                return False
        if best == 1:
            self._unpaired(2 * pair, qa.popleft())
        elif best == 2:
            self._unpaired(2 * pair + 1, qb.popleft())
        else:
            a, b = qa.popleft(), qb.popleft()
            streak = self._dir[pair]
            if best_dir * streak > 0:
                self._dir[pair] = streak + best_dir if -_HABIT < streak < _HABIT else streak
            else:
                self._dir[pair] = best_dir
            self._transit[pair] = abs(ticks_diff(b[0], a[0], mask))
            if best_dir > 0:
                self._vehicles.paired(pair, 1, a, b, self._now)
            else:
                self._vehicles.paired(pair, -1, b, a, self._now)
        return True

    def _unpaired(self, i, occupancy):
        # Detector i saw it, its partner did not: no speed, so no length and no class (a
        # class from occupancy alone would need an assumed speed, 5-60 km/h in Hanoi: x12).
        streak = self._dir[i >> 1]
        self._vehicles.unpaired(i >> 1, i & 1, occupancy, self._now,
                                (streak > 0) - (streak < 0))

    def pop_event(self):
        """The oldest per-vehicle event ``(lane, direction, speed_dkmh, length_cm, class,
        rise_ticks)``, or None (ssnode/vehicles.py)."""
        return self._vehicles.pop_event()

    def report(self, interval_s, now_us=None):
        """Per lane ``(motorbike, car, heavy, unknown, unpaired, time_mean_dkmh,
        space_mean_dkmh, occupancy_dpct)`` since the last report, then reset. Speeds are over
        the vehicles with a measured speed (0 if none); occupancy is the share of
        ``interval_s`` that any of the lane's A zones was occupied, in 0.1 %."""
        self.process(now_us)
        out = []
        for lane in range(self.lanes):  # report() runs once a minute: allocation is fine here
            counts, time_mean, space_mean = self._vehicles.report(lane)
            occ = _div_round(self._occ_us[lane], interval_s * 1000) if interval_s > 0 else 0
            # (MicroPython has no unpacking in tuple displays.)
            out.append(tuple(counts) + (time_mean, space_mean, min(occ, 1000)))  # noqa: RUF005
            self._occ_us[lane] = 0
        self._vehicles.reset_interval()
        return out
