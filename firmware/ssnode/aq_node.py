"""Air-quality kind app: PM, CO2, T/RH/P sampled on a schedule, reported per interval.

Every `sample_interval_s` each working sensor is sampled (ssnode/aq_sensors.py); every
`report_interval_s` one DATA carries `[channel, exponent, mean, min, max, count]` per channel
that has samples (SPEC.md §5.3: PM in 0.1 µg/m³, CO2 in ppm, T in 0.01 °C, RH in 0.01 %RH,
P in 0.01 hPa). The first DATA goes out as soon as every working sensor has a sample (the PM
sensor after its warm-up), covering the time since boot.

PM duty cycle: when the report interval leaves room for it (interval >= PM window + twice the
warm-up), the PM sensor sleeps after each report and wakes `pm_warmup_s` before the last
_PM_WINDOW_SAMPLES samples of the next interval, so its laser runs only for those.

Faults: a sensor failing _FAULT_AFTER samples in a row, or sending the very same values for
`stuck_after_s`, gets a `node.faults` entry (sent in STATUS) and a warning; it is retried
every sample and the entry goes when it answers (with changing values) again.
The other sensors go on. Calibration: `calibration` maps a quantity name to an offset in its
unit, added to every sample; the `calibrate` command sets offsets from reference values, except
for CO2: there it runs the SCD41's forced recalibration against the reference (datasheet
§3.7.1), so the sensor itself reads right again. The SCD41's automatic self-calibration is off
unless `co2_asc` is true.
"""

import asyncio
import time

from micropython import const

from streetsense.protocol import messages as m

from . import config as config_file
from .aq_sensors import PmSensor, make_sensors
from .drivers.errors import SensorMissing
from .stats import Stats, div_round

_FAULT_AFTER = const(3)
_PM_WINDOW_SAMPLES = const(6)
_PM_KINDS = ("pms5003", "sds011")
# A forced recalibration target the SCD41 can be held at: its specified range, 400-5,000 ppm
# (datasheet SCD4x, Table 1).
_CO2_REFERENCE_MIN = const(400)
_CO2_REFERENCE_MAX = const(5000)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class App:
    def __init__(self, node, board):
        self.node = node
        self._board = board
        self._wake = asyncio.Event()
        self._sensors = make_sensors(node.config, board, node.log)
        self._layout()
        self.reconfigure()

    def _layout(self):
        """Channel table over the sensors: per channel (sensor, channel number, exponent)."""
        self.sensors = [s.name for s in self._sensors]
        self._table = []  # type: list
        for s in self._sensors:
            s.base = len(self._table)
            for quantity, exponent in s.channels:
                self._table.append((s, m.channel(quantity), exponent))
        n = len(self._table)
        self._stats = Stats(n)
        self._last = [None] * n  # last sample before calibration, for `calibrate`
        self._offsets = [0] * n
        self._interval_start = time.ticks_ms()

    # -- settings and commands (called by ssnode/control.py) ---------------------------------
    def setting_error(self, name, value):
        if name == "pm_sensor":
            return None if value in _PM_KINDS else "pms5003 or sds011"
        if name == "co2_asc":
            return None if isinstance(value, bool) else "true or false"
        if name in ("pm_warmup_s", "stuck_after_s"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            return None if ok else "integer >= 0"
        if name == "calibration":
            if not isinstance(value, dict):
                return "map of quantity name to offset"
            names = self._names()
            for q, offset in value.items():
                if q not in names or not _number(offset):
                    return f"{q}: offsets for {', '.join(sorted(names))}"
            return None
        return "unknown setting"

    def reconfigure(self):
        config = self.node.config
        pm = self._sensors[0]
        if config["pm_sensor"] != pm.name:  # another PM sensor fitted: a new channel table
            self.node.faults.pop(pm.name, None)
            self._sensors[0] = PmSensor(config["pm_sensor"], self._board, self.node.log)
            self._layout()
        co2 = self._sensors[1]
        if co2.started and co2.asc != bool(config.get("co2_asc", False)):
            co2.started = False  # set up again, with the new ASC state
        calibration = config.get("calibration") or {}
        for i, (_, ch, exponent) in enumerate(self._table):
            offset = calibration.get(m.QUANTITIES[ch & 0xFF][0], 0)
            self._offsets[i] = round(offset * 10**-exponent)
        self._wake.set()  # intervals may have changed: the loop recomputes its deadlines

    def _names(self):
        return {m.QUANTITIES[ch & 0xFF][0]: i for i, (_, ch, _) in enumerate(self._table)}

    def command(self, name, args):
        """`calibrate`: offsets from reference values; for co2 a forced recalibration of the
        SCD41, which takes about a second, so the answer then comes from a coroutine."""
        if name != "calibrate":
            return None
        names = self._names()
        if not args or any(q not in names or not _number(v) for q, v in args.items()):
            listed = ", ".join(sorted(names))
            return (m.RESULT_BAD_ARGS, f"reference values (e.g. co2: 415) for: {listed}", None)
        co2 = args.get("co2")
        if co2 is not None and not _CO2_REFERENCE_MIN <= co2 <= _CO2_REFERENCE_MAX:
            return (m.RESULT_BAD_ARGS,
                    f"co2: a reference of {_CO2_REFERENCE_MIN} to {_CO2_REFERENCE_MAX} ppm", None)
        for q in args:
            if q != "co2" and self._last[names[q]] is None:
                return (m.RESULT_FAILED, f"no {q} sample yet to calibrate against", None)
        if co2 is None:
            return self._set_offsets(args, {})
        return self._recalibrate_co2(round(co2), args)

    async def _recalibrate_co2(self, target_ppm, args):
        sensor = self._sensors[1]
        if not sensor.started or sensor.name in self.node.faults:
            return (m.RESULT_FAILED, "the scd41 is not measuring", None)
        try:
            correction, measured_s = await sensor.recalibrate(target_ppm)
        except Exception as exc:  # SensorError, or OSError from the bus
            self._failed(sensor, exc)
            return (m.RESULT_FAILED, f"scd41: {exc}", None)
        if correction is None:
            return (m.RESULT_FAILED, "the scd41 refused the forced recalibration (0xFFFF): let "
                    f"it measure over 3 minutes in the reference air first (it had {measured_s} s)",
                    None)
        self.node.log(m.LOG_INFO, f"scd41 recalibrated to {target_ppm} ppm: {correction:+d} ppm")
        frc = {"reference_ppm": target_ppm, "correction_ppm": correction}
        return self._set_offsets({q: v for q, v in args.items() if q != "co2"},
                                 {"co2_frc": frc}, drop="co2")

    def _set_offsets(self, references, extra, drop=None):
        """Offsets from reference values and the last samples, saved; `drop`: a quantity whose
        offset goes (its sensor has just been recalibrated itself)."""
        names = self._names()
        calibration = dict(self.node.config.get("calibration") or {})
        calibration.pop(drop, None)
        for q, reference in references.items():
            i = names[q]
            exponent = self._table[i][2]
            offset = round(reference * 10**-exponent) - self._last[i]  # in the channel's unit
            calibration[q] = offset if exponent >= 0 else round(offset * 10**exponent, -exponent)
        self.node.config["calibration"] = calibration
        config_file.save(self.node.config)
        self.reconfigure()
        extra["calibration"] = calibration
        return (m.RESULT_OK, None, extra)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self):
        next_sample = time.ticks_ms()
        next_report = None  # None until the first report has gone out
        while True:
            config = self.node.config
            sample_ms = config["sample_interval_s"] * 1000
            report_ms = config["report_interval_s"] * 1000
            warmup_ms = config["pm_warmup_s"] * 1000
            if next_report is not None:
                # From the interval's start: a new report_interval_s takes effect at once.
                next_report = time.ticks_add(self._interval_start, report_ms)
                await self._duty(next_report, sample_ms, report_ms, warmup_ms)
            if time.ticks_diff(time.ticks_ms(), next_sample) >= 0:
                await self._sample_all(warmup_ms)
                next_sample = time.ticks_add(next_sample, sample_ms)
                if time.ticks_diff(time.ticks_ms(), next_sample) > 0:  # fell behind: skip
                    next_sample = time.ticks_add(time.ticks_ms(), sample_ms)
            now = time.ticks_ms()
            due = self._ready() if next_report is None else time.ticks_diff(now, next_report) >= 0
            if due:
                self._report(now)
                next_report = time.ticks_add(now, report_ms)
                await self._duty(next_report, sample_ms, report_ms, warmup_ms)
            wait_ms = time.ticks_diff(next_sample, now)
            if next_report is not None:
                wait_ms = min(wait_ms, time.ticks_diff(next_report, now))
                wake_at = self._pm_wake_at(next_report, sample_ms, report_ms, warmup_ms)
                if wake_at is not None and not self._sensors[0].awake:
                    wait_ms = min(wait_ms, time.ticks_diff(wake_at, now))
            await self._pause(wait_ms)

    async def _pause(self, ms):
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), max(ms, 0))
        except asyncio.TimeoutError:  # noqa: UP041  # MicroPython has no builtin TimeoutError
            pass

    def _pm_wake_at(self, next_report, sample_ms, report_ms, warmup_ms):
        """When the PM sensor must wake for the next report, or None if it stays awake."""
        window_ms = _PM_WINDOW_SAMPLES * sample_ms
        if report_ms < window_ms + 2 * warmup_ms:
            return None  # sleeping would save less than a warm-up: keep the laser on
        return time.ticks_add(next_report, -(window_ms + warmup_ms))

    async def _duty(self, next_report, sample_ms, report_ms, warmup_ms):
        pm = self._sensors[0]
        if not pm.started or pm.name in self.node.faults:
            return
        wake_at = self._pm_wake_at(next_report, sample_ms, report_ms, warmup_ms)
        try:
            if wake_at is None or time.ticks_diff(time.ticks_ms(), wake_at) >= 0:
                if not pm.awake:
                    await pm.wake()
            elif pm.awake:
                await pm.sleep()
        except Exception as exc:  # SensorError, or OSError from the UART
            self._failed(pm, exc)

    async def _sample_all(self, warmup_ms):
        for s in self._sensors:
            try:
                if not s.started:
                    await s.start()
                    s.started = True
                if s is self._sensors[0] and not s.warm(warmup_ms):
                    continue  # asleep, or its readings have not settled yet
                values = await s.sample()
            except Exception as exc:  # SensorError, or OSError/ValueError from the bus
                self._failed(s, exc)
                continue
            if values is None:
                continue
            s.failures = 0
            self._set_fault(s, self._stuck(s, values))
            for k, raw in enumerate(values):
                i = s.base + k
                self._last[i] = raw
                self._stats.add(i, raw + self._offsets[i])

    def _failed(self, s, exc):
        s.failures += 1
        if isinstance(exc, SensorMissing):
            s.started = False  # set it up again before the next sample: it may be back
        if s.failures >= _FAULT_AFTER and s.name not in self.node.faults:
            self._set_fault(s, str(exc))

    def _stuck(self, s, values):
        """A fault text if `s` has sent the very same values for `stuck_after_s`, else None.
        Real sensors jitter by a count or more (PM, CO2, pressure in Pa): a flat line for half
        an hour is a frozen sensor, not still air."""
        now = time.ticks_ms()
        if values != s.values:
            s.values = values
            s.same_since = now
            return None
        stuck_s = self.node.config["stuck_after_s"]
        if stuck_s and time.ticks_diff(now, s.same_since) >= stuck_s * 1000:
            return f"stuck: the same reading for over {stuck_s} s"
        return None

    def _set_fault(self, s, text):
        """Set (with a warning) or clear (with an info line) the fault entry of `s`."""
        faults = self.node.faults
        if text is None:
            if faults.pop(s.name, None) is not None:
                self.node.log(m.LOG_INFO, f"sensor {s.name} works again")
        elif faults.get(s.name) != text:
            faults[s.name] = text
            self.node.log(m.LOG_WARNING, f"sensor {s.name} fault: {text}")

    def _ready(self):
        """Every sensor has a sample this interval, or is faulty (first report)."""
        for s in self._sensors:
            if s.name not in self.node.faults and not self._stats.count[s.base]:
                return False
        return True

    def _report(self, now):
        readings = []
        for i, (_, ch, exponent) in enumerate(self._table):
            reading = self._stats.reading(i, ch, exponent)
            if reading is not None:
                readings.append(reading)
        interval_s = div_round(time.ticks_diff(now, self._interval_start), 1000)
        self.node.send_data(readings, interval_s)
        self._stats.reset()
        self._interval_start = now
