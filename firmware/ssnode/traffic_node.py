"""Traffic kind app: zone pairs of presence detectors on Pin IRQs (one pair per lane, or a
sub-lane array of `sublanes` narrow pairs side by side), vehicles out as EVENTs, counts per
interval as DATA, the estimator's counters in STATUS.

The IRQ handler only stamps the edge (time.ticks_us(), masked to the ESP32's 2**30 tick
period) into ssnode/traffic.py's ring: allocation-free, so it runs as a hard IRQ and the
timestamp is taken at the edge, not when the VM gets round to it. A task drains the ring when
the handler's ThreadSafeFlag fires or every _TICK_MS (debounce bursts settle and partners time
out with the clock, not only with edges).

Per vehicle: EVENT 1 with lane, dir, speed_dkmh, length_cm and class (1 motorbike, 2 car,
3 heavy, 4 unknown: counted, not measured well enough for a class; then without length, and
without speed when none fits), or only the lane for a vehicle seen by one detector (SPEC.md
§5.4). Events are shed (counted, logged once per interval) while node.queue_pressure() is
above _SHED_PRESSURE; the counts never are. Per `report_interval_s`, per lane (channel
instance = lane): motorbikes, cars, heavy_vehicles, unknown_vehicles, unclassified_vehicles
(seen by one detector only), speed_mean (time-mean) and speed_space_mean (harmonic) in
0.1 km/h (when any speed was measured) and occupancy of the lane's A zones in 0.1 %.
"""

import asyncio
import time

from micropython import const

from streetsense.protocol import messages as m
from streetsense.protocol.names import (
    VEHICLE_CAR,
    VEHICLE_HEAVY,
    VEHICLE_MOTORBIKE,
    VEHICLE_UNKNOWN,
)

from .stats import div_round
from .traffic import CLASS_UNKNOWN, CLASS_UNPAIRED, TICKS_MASK, TrafficCounter

_MOTORBIKES = const(16)
_CARS = const(17)
_HEAVY = const(18)
_SPEED_MEAN = const(19)
_OCCUPANCY = const(20)
_UNCLASSIFIED = const(21)
_UNKNOWN = const(22)
_SPEED_SPACE_MEAN = const(23)
_TICK_MS = const(100)
_SHED_PRESSURE = 0.8
_STUCK_MS = const(90000)  # occupied this long: a dead detector or a parked vehicle
_MAX_LANES = const(4)
_MAX_PAIRS = const(6)  # zone pairs the board wires (ssnode/hw.py DETECTOR_PINS)
# The wire's vehicle class (SPEC §5.4) of each class the counter gives, by its CLASS_* index.
_WIRE_CLASSES = (VEHICLE_MOTORBIKE, VEHICLE_CAR, VEHICLE_HEAVY, VEHICLE_UNKNOWN)
# Settings that shape the counter, in _build()'s order (a tuple: MicroPython's dicts do not
# keep insertion order), with their valid ranges (ints).
_SETTINGS = (
    ("lanes", 1, _MAX_LANES),
    ("sublanes", 1, 3),
    ("detector_spacing_cm", 20, 2000),
    ("detector_length_cm", 0, 1000),
    ("detector_width_cm", 20, 1000),
    ("motorbike_max_cm", 50, 2000),
    ("car_max_cm", 100, 3000),
    ("length_max_cm", 300, 3000),
    ("debounce_ms", 0, 500),
)


class App:
    def __init__(self, node, board):
        self.node = node
        self._board = board
        self._flag = asyncio.ThreadSafeFlag()
        self._pins = []  # type: list  # none armed yet: _build() arms them
        self.sensors = []  # type: list
        self.events_shed = 0
        self._shed_logged = 0
        self._build()

    def _settings(self):
        c = self.node.config
        return tuple(c[k] for k, _, _ in _SETTINGS)

    def _build(self):
        """Counter and IRQs from the settings (again after a CONFIG that changes them)."""
        for a, b in self._pins:
            a.irq(None)
            b.irq(None)
        self._shape = self._settings()
        lanes, sub, spacing_cm, zone_cm, width_cm, moto_cm, car_cm, max_cm, debounce_ms = \
            self._shape  # fmt: skip
        for name in self.sensors[lanes:]:  # lanes no longer watched
            self.node.faults.pop(name, None)
        self.sensors = [f"lane{lane}" for lane in range(lanes)]
        self._counter = counter = TrafficCounter(
            lanes=lanes, sublanes=sub, spacing_mm=spacing_cm * 10,
            detector_length_mm=zone_cm * 10, detector_width_mm=width_cm * 10,
            motorbike_max_mm=moto_cm * 10, car_max_mm=car_cm * 10, length_max_mm=max_cm * 10,
            debounce_us=debounce_ms * 1000, flag=self._flag,
        )  # fmt: skip
        self._sub = sub
        self._pins = self._board.detector_pins(lanes * sub)
        trigger = self._pins[0][0].IRQ_RISING | self._pins[0][0].IRQ_FALLING
        for pair, pins in enumerate(self._pins):
            for det, pin in enumerate(pins):
                pin.irq(_edge_handler(counter, pair, det), trigger, hard=True)
        self._low_ticks = [0] * (2 * lanes * sub)  # ticks each detector read occupied in a row
        self._stuck = [False] * lanes
        self._interval_start = time.ticks_ms()

    # -- settings (called by ssnode/control.py) ----------------------------------------------
    def setting_error(self, name, value):
        limits = [(lo, hi) for key, lo, hi in _SETTINGS if key == name]
        if not limits:
            return "unknown setting"
        lo, hi = limits[0]
        if not isinstance(value, int) or isinstance(value, bool):
            return "integer"
        if not lo <= value <= hi:
            return f"{lo} to {hi}"
        c = self.node.config
        if name == "motorbike_max_cm" and value >= c["car_max_cm"]:
            return "below car_max_cm"
        if name == "car_max_cm" and value <= c["motorbike_max_cm"]:
            return "above motorbike_max_cm"
        if name == "car_max_cm" and value >= c["length_max_cm"]:
            return "below length_max_cm"
        if name == "length_max_cm" and value <= c["car_max_cm"]:
            return "above car_max_cm"
        other = {"lanes": "sublanes", "sublanes": "lanes"}.get(name)
        if other and value * c[other] > _MAX_PAIRS:
            return f"lanes x sublanes at most {_MAX_PAIRS} (the board's detector pairs)"
        return None

    def counters(self):
        """For STATUS: the estimator's counters since boot (ssnode/vehicles.py)."""
        return self._counter.counters()

    def reconfigure(self):
        if self._settings() != self._shape:
            self._report()  # counts so far go out under the old settings, none are lost
            self._build()

    def command(self, name, args):
        return None  # the core's commands are all a traffic node has

    # -- the loop ------------------------------------------------------------------------------
    async def run(self):
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                await self._flag.wait()
                self._counter.process(_ticks_us())
                self._send_events()
                elapsed_ms = time.ticks_diff(time.ticks_ms(), self._interval_start)
                if elapsed_ms >= self.node.config["report_interval_s"] * 1000:
                    self._report()
        finally:
            ticker.cancel()

    async def _tick(self):
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            self._check_stuck()
            self._flag.set()

    def _send_events(self):
        node = self.node
        while True:
            event = self._counter.pop_event()
            if event is None:
                return
            if node.queue_pressure() > _SHED_PRESSURE:
                self.events_shed += 1  # the vehicle is still in the interval's counts
                continue
            lane, direction, speed_dkmh, length_cm, cls, _ = event
            args = {"lane": lane}  # unpaired: no speed, so no length or class (SPEC.md §5.4)
            if cls != CLASS_UNPAIRED:
                args["dir"] = direction
                args["class"] = _WIRE_CLASSES[cls]
                if speed_dkmh:
                    args["speed_dkmh"] = speed_dkmh
                if cls != CLASS_UNKNOWN:
                    args["length_cm"] = length_cm
            node.send_event(m.EVENT_VEHICLE, args)

    def _report(self):
        now = time.ticks_ms()
        interval_s = div_round(time.ticks_diff(now, self._interval_start), 1000)
        self._interval_start = now
        rows = self._counter.report(max(interval_s, 1), _ticks_us())
        self._send_events()  # vehicles the report's last processing completed go first
        readings = []
        for lane, row in enumerate(rows):
            moto, cars, heavy, unknown, unpaired, time_mean, space_mean, occ_dpct = row
            for quantity, value in (
                (_MOTORBIKES, moto), (_CARS, cars), (_HEAVY, heavy), (_UNKNOWN, unknown),
                (_UNCLASSIFIED, unpaired),
            ):  # fmt: skip
                readings.append([m.channel(quantity, lane), 0, value])
            if time_mean:
                readings.append([m.channel(_SPEED_MEAN, lane), -1, time_mean])
                readings.append([m.channel(_SPEED_SPACE_MEAN, lane), -1, space_mean])
            readings.append([m.channel(_OCCUPANCY, lane), -1, occ_dpct])
            self._check_pairing(lane, moto + cars + heavy + unknown, unpaired)
        self.node.send_data(readings, interval_s)
        shed = self.events_shed - self._shed_logged
        if shed:
            self._shed_logged = self.events_shed
            self.node.log(m.LOG_WARNING, f"queue full: shed {shed} vehicle events (counts kept)")

    # -- detector health ------------------------------------------------------------------------
    def _fault(self, lane, text):
        name = self.sensors[lane]
        faults = self.node.faults
        if text is None:
            if faults.pop(name, None) is not None:
                self.node.log(m.LOG_INFO, f"{name} detectors work again")
        elif faults.get(name) != text:
            faults[name] = text
            self.node.log(m.LOG_WARNING, f"{name} fault: {text}")

    def _check_pairing(self, lane, paired, unpaired):
        """Most vehicles of an interval seen by one detector only: one of them is blind."""
        if unpaired >= 3 and unpaired > paired:
            self._fault(lane, f"{unpaired} of {paired + unpaired} vehicles seen by one detector")
        elif paired:
            self._fault(lane, None)

    def _check_stuck(self):
        sub = self._sub
        for lane in range(len(self._stuck)):
            stuck = None
            for pair in range(lane * sub, (lane + 1) * sub):
                for det, pin in enumerate(self._pins[pair]):
                    i = 2 * pair + det
                    # Active low: high is a free zone.
                    self._low_ticks[i] = 0 if pin.value() else self._low_ticks[i] + 1
                    if self._low_ticks[i] * _TICK_MS >= _STUCK_MS:
                        zone = "AB"[det] if sub == 1 else f"{'AB'[det]}{pair - lane * sub}"
                        stuck = f"detector {zone} occupied for over {_STUCK_MS // 1000} s"
            if stuck is not None:
                self._fault(lane, stuck)
            elif self._stuck[lane]:
                self._fault(lane, None)
            self._stuck[lane] = stuck is not None


def _ticks_us():
    """ticks_us() in the ESP32's 2**30 period (the unix port's is longer)."""
    return time.ticks_us() & TICKS_MASK  # type: ignore[operator]  # the stubs' ticks type


def _edge_handler(counter, pair, det):
    """The hard IRQ handler of one detector (active low: occupied reads 0)."""

    def on_edge(pin):
        t_us = _ticks_us()  # first: the edge's time
        counter.on_edge(pair, det, 1 - pin.value(), t_us)

    return on_edge
