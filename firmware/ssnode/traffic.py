"""Vehicle detection from two presence detectors per lane (pure logic, no hardware).

Per lane, detector A (upstream) and B (downstream) sit ``spacing_mm`` apart: speed =
spacing / (rise_second - rise_first), length = speed x occupancy_first - detector_length
(REFERENCE.md "Traffic counting": the dual-loop method). The GPIO IRQ calls ``on_edge()``,
which only writes a preallocated ring; an asyncio task calls ``process(now_us)`` and, once
per interval, ``report(interval_s)``. Outputs are integers: speed in 0.1 km/h, length in cm,
occupancy in 0.1 %.
"""

from array import array
from collections import deque

try:
    from micropython import const
except ImportError:  # CPython: the tests run the same module

    def const(x):  # type: ignore[misc]  # the stubs type const generically
        return x


CLASS_MOTORBIKE = const(0)
CLASS_CAR = const(1)
CLASS_HEAVY = const(2)
# Seen by one detector only: no speed, so no length and no honest class (see _unpaired).
CLASS_UNPAIRED = const(3)
CLASS_NAMES = ("motorbike", "car", "heavy", "unpaired")

DET_A = const(0)
DET_B = const(1)

# ESP32 ticks_us() wraps at 2**30 (MICROPY_PY_TIME_TICKS_PERIOD on 32-bit ports). The mask
# is a small int there; 2**30 itself would be a heap-allocated big int.
TICKS_MASK = const(0x3FFFFFFF)


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
    """Counts and classifies vehicles on ``lanes`` lanes from detector edges."""

    # debounce_us = 20 ms: below a quarter of the shortest real occupancy (a 1.5 m motorbike
    # over a 0.5 m zone at 80 km/h stays 90 ms) and far below the shortest real gap (~300 ms
    # between Hanoi motorbikes), yet above the few-ms dropouts a light barrier shows through
    # a motorbike's frame and the chatter of a loop detector's relay output.
    # max_transit_us: a partner rise later than this is another vehicle (3 m at 3 km/h).
    # stuck_us: a detector high this long is stuck (or a vehicle parks on it): stop waiting.
    def __init__(
        self, *, lanes=1, spacing_mm=3000, detector_length_mm=500, debounce_us=20000,
        motorbike_max_mm=2500, car_max_mm=6500, max_transit_us=3600000, stuck_us=90000000,
        ticks_mask=TICKS_MASK, ring_size=256, queue_max=16, events_max=64, flag=None,
    ):  # fmt: skip
        self.lanes = lanes
        self._spacing = spacing_mm
        self._det_len = detector_length_mm
        self._debounce = debounce_us
        self._moto_max = motorbike_max_mm
        self._car_max = car_max_mm
        self._max_transit = max_transit_us
        self._stuck = stuck_us
        self._mask = ticks_mask
        self._flag = flag
        # Ring of raw edges: timestamps in 'L', (lane << 2 | det << 1 | level) in a bytearray.
        # Single producer (IRQ) / single consumer (task): each side owns one index.
        self._ring_t = array("L", [0] * ring_size)
        self._ring_k = bytearray(ring_size)
        self._ring_n = ring_size
        self._head = 0
        self._tail = 0
        self.edges_dropped = 0
        n = lanes * 2
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
        # Completed occupancies (rise, fall) per detector, paired FIFO per lane: vehicles in
        # one lane cannot overtake between two detectors a few metres apart.
        # MicroPython's deque takes (iterable, maxlen) positionally only.
        self._queue: list = [deque((), queue_max + 1) for _ in range(n)]  # noqa: RUF037
        self._queue_max = queue_max
        self._dir = [1] * lanes  # last paired direction and transit per lane: tie-breakers
        self._transit = [0] * lanes
        self._now = 0
        self._fresh = True  # no time seen yet: _now is not comparable to anything
        self._events: deque = deque((), events_max + 1)  # noqa: RUF037
        self._events_max = events_max
        self.events_dropped = 0
        self._reset_interval()

    def on_edge(self, lane, detector, level, t_us):
        """Record one raw edge. Allocation-free: safe in a hard IRQ handler."""
        head = self._head
        nxt = head + 1 if head + 1 < self._ring_n else 0
        if nxt == self._tail:
            # Full: drop the newest so the stored edges stay in order; counted, not silent.
            self.edges_dropped += 1
            return
        self._ring_t[head] = t_us
        self._ring_k[head] = (lane << 2) | (detector << 1) | (level & 1)
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
        for i in range(self.lanes * 2):
            if self._in_burst[i] and ticks_diff(now, self._last_t[i], self._mask) >= self._debounce:
                self._settle(i)
        for lane in range(self.lanes):
            self._pair(lane, now)

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
        if level:
            self._open_t[i] = t
            return
        rise = self._open_t[i]
        if not i & 1:
            # Lane occupancy is time-occupancy of detector A, booked when the vehicle leaves.
            self._occ_us[i >> 1] += ticks_diff(t, rise, self._mask)
        q = self._queue[i]
        q.append((rise, t))
        if len(q) > self._queue_max:
            # The partner has not answered for queue_max vehicles: give up on the oldest.
            self._unpaired(i >> 1, q.popleft())

    def _pair(self, lane, now):
        qa, qb = self._queue[2 * lane], self._queue[2 * lane + 1]
        mask = self._mask
        while qa or qb:
            if qa and qb:
                if not self._match(lane, qa, qb, now):
                    return
                continue
            q, other = (qa, 2 * lane + 1) if qa else (qb, 2 * lane)
            rise = q[0][0]
            if self._stable[other]:
                # The partner is occupied now: wait for it, unless its occupancy started out
                # of reach of this one or it has been high so long that it is stuck.
                d = ticks_diff(self._open_t[other], rise, mask)
                if -self._max_transit <= d <= self._max_transit and not self._stuck_at(other, now):
                    return
            elif ticks_diff(now, rise, mask) <= self._max_transit + self._debounce:
                return  # the partner may still rise (or its rise is still settling)
            self._unpaired(lane, q.popleft())

    def _stuck_at(self, i, now):  # high for stuck_us: a dead sensor or a parked vehicle
        return ticks_diff(now, self._open_t[i], self._mask) >= self._stuck

    def _busy(self, i, now):  # an occupancy in progress may be the better partner: wait
        return self._in_burst[i] or (self._stable[i] and not self._stuck_at(i, now))

    def _match(self, lane, qa, qb, now):
        """Pair or drop the queue heads; False means wait for more edges."""
        # Hypotheses: heads together, or one head seen by one detector only (then the next
        # entry of the other queue is its partner's partner). A vehicle crosses both zones at
        # nearly one speed, so its two occupancies agree: the smallest disagreement wins and
        # the lane's last direction breaks ties (identical vehicles, missed by one detector).
        mask = self._mask
        best = best_score = best_near = best_dir = -1
        for h in range(3):
            if (h & 1) >= len(qa) or (h >> 1) >= len(qb):
                continue
            a, b = qa[h & 1], qb[h >> 1]
            d = ticks_diff(b[0], a[0], mask)
            if not (0 < d <= self._max_transit or 0 < -d <= self._max_transit):
                continue
            direction = 1 if d > 0 else -1
            err = ticks_diff(b[1], b[0], mask) - ticks_diff(a[1], a[0], mask)
            score = 2 * (err if err >= 0 else -err) + (direction != self._dir[lane])
            # Then the transit nearest the lane's last one: followers drive at similar speeds.
            near = abs(abs(d) - self._transit[lane]) if self._transit[lane] else h
            if best < 0 or score < best_score or (score == best_score and near < best_near):
                best, best_score, best_near, best_dir = h, score, near, direction
        if best < 0:
            # No hypothesis fits: the earlier head lost its partner.
            q = qa if ticks_diff(qb[0][0], qa[0][0], mask) > 0 else qb
            self._unpaired(lane, q.popleft())
            return True
        if (len(qa) < 2 and self._busy(2 * lane, now)) or (
            len(qb) < 2 and self._busy(2 * lane + 1, now)
        ):
            return False
        if best_dir != self._dir[lane]:
            # Against the lane's habit: first let the partner the habit predicts show up.
            later = qa[best & 1][0] if best_dir < 0 else qb[best >> 1][0]
            if ticks_diff(now, later, mask) <= self._max_transit + self._debounce:
                return False
        if best == 1:
            self._unpaired(lane, qa.popleft())
        elif best == 2:
            self._unpaired(lane, qb.popleft())
        else:
            a, b = qa.popleft(), qb.popleft()
            self._dir[lane] = best_dir
            self._transit[lane] = transit = abs(ticks_diff(b[0], a[0], mask))
            if best_dir > 0:
                self._vehicle(lane, 1, transit, a, b)
            else:
                self._vehicle(lane, -1, transit, b, a)
        return True

    def _vehicle(self, lane, direction, transit_us, first, second):
        occ_us = ticks_diff(first[1], first[0], self._mask)
        # speed [0.1 km/h] = mm/us * 36000; length [mm] = mm/us * occ_us - detector length
        speed = _div_round(self._spacing * 36000, transit_us)
        length_mm = _div_round(self._spacing * occ_us, transit_us) - self._det_len
        length_mm = max(length_mm, 0)  # a vehicle shorter than the measurement error
        cls = CLASS_MOTORBIKE if length_mm < self._moto_max else CLASS_CAR
        if length_mm >= self._car_max:
            cls = CLASS_HEAVY
        self._count[lane * 4 + cls] += 1
        self._speed_sum[lane] += speed
        self._emit((lane, direction, speed, (length_mm + 5) // 10, cls))

    def _unpaired(self, lane, occupancy):
        # No speed, so no length: a class from occupancy alone would need an assumed speed
        # (5-60 km/h in Hanoi: x12 in length). Counted apart: totals stay exact, faults show.
        self._count[lane * 4 + CLASS_UNPAIRED] += 1
        self._emit((lane, 0, 0, 0, CLASS_UNPAIRED))

    def _emit(self, event):
        ev = self._events
        ev.append(event)
        if len(ev) > self._events_max:
            ev.popleft()  # the consumer fell behind: keep the newest, count the loss
            self.events_dropped += 1

    def pop_event(self):
        """The oldest per-vehicle event ``(lane, direction, speed_dkmh, length_cm, class)``,
        or None. Direction is +1 (A then B), -1 (B then A) or 0 (unpaired)."""
        return self._events.popleft() if self._events else None

    def _reset_interval(self):
        self._count, self._speed_sum = [0] * (self.lanes * 4), [0] * self.lanes
        self._occ_us = [0] * self.lanes

    def report(self, interval_s, now_us=None):
        """Per lane ``(motorbike, car, heavy, unpaired, mean_speed_dkmh, occupancy_dpct)``
        since the last report, then reset. Mean speed is over paired vehicles (0 if none);
        occupancy is the share of ``interval_s`` that detector A was occupied, in 0.1 %."""
        self.process(now_us)
        out = []
        for lane in range(self.lanes):  # report() runs once a minute: allocation is fine here
            c = self._count[lane * 4 : lane * 4 + 4]
            paired = c[0] + c[1] + c[2]
            speed = _div_round(self._speed_sum[lane], paired) if paired else 0
            occ = _div_round(self._occ_us[lane], interval_s * 1000) if interval_s > 0 else 0
            out.append((c[0], c[1], c[2], c[3], speed, min(occ, 1000)))
        self._reset_interval()
        return out
