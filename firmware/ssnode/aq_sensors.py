"""The air-quality node's sensors behind one shape, for ssnode/aq_node.py.

Each has a `name` (as in HELLO and in `node.faults`), `channels` ((quantity, exponent) per
value), `async start()` and `async sample()`: a tuple of fixed-point integers, one per channel
(value x 10^-exponent), or None when the sensor has nothing new yet. Failures raise the
drivers' SensorError (or OSError/ValueError from a bus that is not there); after a
SensorMissing the app calls start() again before the next sample, which is what brings back a
sensor that was unplugged and plugged in again.

Commands a sensor may lose are confirmed by its reply and sent again (`_confirmed`): a
PMS5003 restarts on wake and is deaf for ~3 s, so the passive mode is set and confirmed at the
first sample after the warm-up, not right after the wake; if it still streams (the mode never
took), the sample is taken from its stream. Either way the window gets its sample.
"""
# The drivers exist once start() has run; the app samples only started sensors.
# mypy: disable-error-code="union-attr"

import asyncio
import time

from micropython import const

from .drivers.bme280 import BME280
from .drivers.errors import ChecksumError, SensorError, SensorMissing
from .drivers.pms5003 import PMS5003
from .drivers.scd4x import FRC_MS, SCD4x
from .drivers.sds011 import SDS011

PM1_0 = const(1)
PM2_5 = const(2)
PM10 = const(3)
CO2 = const(4)
TEMPERATURE = const(5)
HUMIDITY = const(6)
PRESSURE = const(7)
PM1_0_CF1 = const(8)
PM2_5_CF1 = const(9)
PM10_CF1 = const(10)
N0_3 = const(32)  # particles beyond 0.3 µm per 0.1 L; 33..37: 0.5, 1.0, 2.5, 5, 10 µm

_LOG_WARNING = const(4)
_LOG_INFO = const(6)
_PM_FRAME_MS = const(3000)  # passive answers come in ~200 ms; a stable PMS5003 streams every 2.3 s
_REPLY_MS = const(500)  # for the reply to a mode or sleep command
_TRIES = const(3)
_PMS_PASSIVE = const(0xE100)  # PMS5003 replies, CMD << 8 | DATA
_PMS_ASLEEP = const(0xE400)
_SDS_QUERY_MODE = const(0x020101)  # SDS011 replies, CMD << 16 | d1 << 8 | d2
_SDS_WORKING = const(0x060101)
_SDS_ASLEEP = const(0x060100)
_SDS_CONTINUOUS = const(0x080100)
_SCD_STOP_MS = const(510)  # stop_periodic_measurement takes 500 ms (datasheet §3.5.3)
_SCD_STALE_MS = const(20000)  # 4 missed 5 s periods: the sensor is not measuring


class _Sensor:
    """What the app tracks per sensor: its first channel's index in the report, whether it is
    set up, its failures in a row, and since when (ticks_ms) it has sent the same values."""

    base = 0
    started = False
    failures = 0
    values = None
    same_since = 0


class PmSensor(_Sensor):
    """PMS5003 or SDS011 on the PM UART, in passive (query) mode: one frame per request.

    Sleep/wake switch the fan and laser (their life is ~8,000 h of operation): the app keeps
    the sensor asleep between report windows when the interval allows, and counts the
    warm-up from `woke_ms`, since the readings settle only ~30 s after waking.
    A PMS5003 sample is 12 values: PM1/2.5/10 atmospheric and at CF=1 (0.1 µg/m³; the
    gateway's humidity correction needs CF=1) and the six particle counts per 0.1 L."""

    def __init__(self, kind, board, log):
        self.name = kind
        self._pms = kind == "pms5003"
        if self._pms:
            self.channels = [(PM1_0_CF1, -1), (PM2_5_CF1, -1), (PM10_CF1, -1),
                             (PM1_0, -1), (PM2_5, -1), (PM10, -1)]
            self.channels += [(N0_3 + k, 0) for k in range(6)]
        else:
            self.channels = [(PM2_5, -1), (PM10, -1)]
        self._board = board
        self._log = log
        self._drv = None
        self._mode_ok = False  # the passive (query) mode is confirmed since the last wake
        self.awake = False
        self.woke_ms = time.ticks_ms()

    async def start(self):
        if self._drv is None:
            uart = self._board.pm_uart()
            self._drv = PMS5003(uart) if self._pms else SDS011(uart)
        await self.wake()  # also after a SensorMissing: a re-plugged sensor powers up streaming
        if not self._pms:
            # A working period set before stays in the sensor (control protocol §5): measure
            # continuously, the app does the duty cycle.
            d = self._drv
            if not (await self._confirmed(lambda: d.set_working_period(0), _SDS_CONTINUOUS))[0]:
                raise SensorMissing(d.NAME, "no answer to the working-period command")

    async def _confirmed(self, send, reply):
        """Send a command until the sensor's reply says it took (at most _TRIES times).
        Returns (took, the last data frame streamed meanwhile or None)."""
        d = self._drv
        frame = None
        for attempt in range(1, _TRIES + 1):
            d.reply = 0
            send()
            start = time.ticks_ms()
            while time.ticks_diff(time.ticks_ms(), start) < _REPLY_MS:
                try:
                    frame = d.poll() or frame  # a sensor still streaming: keep its latest
                except ChecksumError:
                    pass
                if d.reply == reply:
                    if attempt > 1:
                        self._log(_LOG_INFO, f"{self.name}: command took on try {attempt}")
                    return True, frame
                await asyncio.sleep_ms(20)
        return False, frame

    async def wake(self):
        d = self._drv
        if self._pms:
            d.wake()  # not answered: the sensor restarts, in active mode, deaf for ~3 s
        elif not (await self._confirmed(d.work, _SDS_WORKING))[0]:
            raise SensorMissing(d.NAME, "no answer to the work command")
        self._mode_ok = False
        if not self.awake:
            self.awake = True
            self.woke_ms = time.ticks_ms()

    async def sleep(self):
        await self._confirmed(self._drv.sleep, _PMS_ASLEEP if self._pms else _SDS_ASLEEP)
        self.awake = False

    def warm(self, warmup_ms):
        return self.awake and time.ticks_diff(time.ticks_ms(), self.woke_ms) >= warmup_ms

    async def sample(self):
        d = self._drv
        d.flush()  # frames streamed before now are not this sample
        frame = None
        if not self._mode_ok:
            if self._pms:
                self._mode_ok, frame = await self._confirmed(d.set_passive, _PMS_PASSIVE)
            else:
                self._mode_ok, frame = await self._confirmed(d.set_query_mode, _SDS_QUERY_MODE)
            if not self._mode_ok:
                self._log(_LOG_WARNING, f"{self.name}: passive mode not confirmed, "
                                        "reading its stream")
        if frame is None and self._mode_ok:
            if self._pms:
                d.request()
            else:
                d.query()
        start = time.ticks_ms()
        while frame is None:
            frame = d.poll()  # raises ChecksumError for a damaged frame
            if frame is None:
                if time.ticks_diff(time.ticks_ms(), start) >= _PM_FRAME_MS:
                    self._mode_ok = False  # perhaps it restarted: confirm the mode again
                    raise SensorMissing(d.NAME, f"no data frame within {_PM_FRAME_MS} ms")
                await asyncio.sleep_ms(20)  # the link and the other tasks go on meanwhile
        if self._pms:  # in frame order; PM in integer µg/m³ -> 0.1 µg/m³, the SDS011's unit
            return tuple(w * 10 if k < 6 else w for k, w in enumerate(frame))
        return frame


class Co2Sensor(_Sensor):
    """SCD41 in periodic measurement (a new CO2 value every 5 s; data-ready says when), with
    automatic self-calibration as the `co2_asc` setting says (off by default: it assumes the
    sensor sees 400 ppm fresh air for hours every week, which a kerbside does not)."""

    name = "scd41"

    def __init__(self, board, config):
        self.channels = [(CO2, 0)]
        self._board = board
        self._config = config
        self._drv = None
        self.asc = None  # the ASC state set at the last start
        self.calibrating = False
        self._last_ms = time.ticks_ms()
        self.since_ms = time.ticks_ms()  # when the periodic measurement started

    async def start(self):
        d = SCD4x(self._board.i2c())
        # A sensor still measuring (the node reset, the sensor kept power) refuses
        # start_periodic: stop it first, as Sensirion's drivers do at init.
        d.stop_periodic()
        await asyncio.sleep_ms(_SCD_STOP_MS)
        asc = bool(self._config.get("co2_asc", False))
        d.set_asc(asc)  # volatile: set at every start, no EEPROM write (2,000 cycles)
        if d.asc_enabled() != asc:
            raise SensorError("SCD4x", "automatic self-calibration did not take")
        self.asc = asc
        self._run(d)

    def _run(self, d):
        d.start_periodic()
        self._drv = d
        self._last_ms = self.since_ms = time.ticks_ms()

    async def sample(self):
        if self.calibrating:
            return None
        d = self._drv
        if not d.data_ready():
            if time.ticks_diff(time.ticks_ms(), self._last_ms) > _SCD_STALE_MS:
                raise SensorMissing("SCD4x", f"no measurement for {_SCD_STALE_MS // 1000} s")
            return None
        co2, _, _ = d.read_measurement()
        self._last_ms = time.ticks_ms()
        return (co2,)

    async def recalibrate(self, target_ppm):
        """Forced recalibration against `target_ppm` (datasheet §3.7.1: stop, FRC, start again).
        Returns (correction in ppm or None if the sensor refused, seconds it had measured)."""
        d = self._drv
        measured_s = time.ticks_diff(time.ticks_ms(), self.since_ms) // 1000
        self.calibrating = True
        try:
            d.stop_periodic()
            await asyncio.sleep_ms(_SCD_STOP_MS)
            d.start_forced_recalibration(target_ppm)
            await asyncio.sleep_ms(FRC_MS + 10)
            correction = d.forced_recalibration_result()
            self._run(d)
        finally:
            self.calibrating = False
        return correction, measured_s


class ThpSensor(_Sensor):
    """BME280: one forced-mode measurement per sample, compensated by the driver."""

    name = "bme280"

    def __init__(self, board):
        self.channels = [(TEMPERATURE, -2), (HUMIDITY, -2), (PRESSURE, -2)]
        self._board = board
        self._drv = None

    async def start(self):
        self._drv = BME280(self._board.i2c())  # reads the trimming values

    async def sample(self):
        t_centi, p_pa, h_q10 = self._drv.read()
        # %RH in Q22.10 -> 0.01 %RH; Pa = 0.01 hPa.
        return (t_centi, (h_q10 * 100 + 512) >> 10, p_pa)


def make_sensors(config, board, log):
    """The PM sensor the config names, the SCD41 and the BME280; `log(level, text)`."""
    return [PmSensor(config["pm_sensor"], board, log), Co2Sensor(board, config), ThpSensor(board)]
