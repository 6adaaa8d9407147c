"""The air-quality node's sensors behind one shape, for ssnode/aq_node.py.

Each has a `name` (as in HELLO and in `node.faults`), `channels` ((quantity, exponent) per
value), `async start()` and `async sample()`: a tuple of fixed-point integers, one per channel
(value x 10^-exponent), or None when the sensor has nothing new yet. Failures raise the
drivers' SensorError (or OSError/ValueError from a bus that is not there); after a
SensorMissing the app calls start() again before the next sample, which is what brings back a
sensor that was unplugged and plugged in again.
"""
# The drivers exist once start() has run; the app samples only started sensors.
# mypy: disable-error-code="union-attr"

import asyncio
import time

from micropython import const

from .drivers.bme280 import BME280
from .drivers.errors import SensorMissing
from .drivers.pms5003 import PMS5003
from .drivers.scd4x import SCD4x
from .drivers.sds011 import SDS011

PM1_0 = const(1)
PM2_5 = const(2)
PM10 = const(3)
CO2 = const(4)
TEMPERATURE = const(5)
HUMIDITY = const(6)
PRESSURE = const(7)

_PM_ANSWER_MS = const(1500)  # a passive-mode PMS5003 answers within ~200 ms, an SDS011 faster
_SCD_STOP_MS = const(510)  # stop_periodic_measurement takes 500 ms (datasheet §3.5.2)
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
    warm-up from `woke_ms`, since the readings settle only ~30 s after waking."""

    def __init__(self, kind, board):
        self.name = kind
        self._pms = kind == "pms5003"
        if self._pms:
            self.channels = [(PM1_0, -1), (PM2_5, -1), (PM10, -1)]
        else:
            self.channels = [(PM2_5, -1), (PM10, -1)]
        self._board = board
        self._drv = None
        self.awake = False
        self.woke_ms = time.ticks_ms()

    async def start(self):
        if self._drv is None:
            uart = self._board.pm_uart()
            self._drv = PMS5003(uart) if self._pms else SDS011(uart)
        self.wake()  # also after a SensorMissing: a re-plugged sensor powers up streaming

    def wake(self):
        d = self._drv
        if self._pms:
            d.wake()
            d.set_passive()
        else:
            d.work()
            d.set_query_mode()
        if not self.awake:
            self.awake = True
            self.woke_ms = time.ticks_ms()

    def sleep(self):
        self._drv.sleep()
        self.awake = False

    def warm(self, warmup_ms):
        return self.awake and time.ticks_diff(time.ticks_ms(), self.woke_ms) >= warmup_ms

    async def sample(self):
        d = self._drv
        d.flush()  # a reply to wake/mode, or a frame streamed before passive mode took
        if self._pms:
            d.request()
        else:
            d.query()
        start = time.ticks_ms()
        while True:
            frame = d.poll()  # raises ChecksumError for a damaged frame
            if frame is not None:
                break
            if time.ticks_diff(time.ticks_ms(), start) >= _PM_ANSWER_MS:
                raise SensorMissing(d.NAME, f"no data frame within {_PM_ANSWER_MS} ms")
            await asyncio.sleep_ms(20)  # the link and the other tasks go on meanwhile
        if self._pms:  # integer µg/m³ -> 0.1 µg/m³, the SDS011's unit
            return (frame[0] * 10, frame[1] * 10, frame[2] * 10)
        return frame


class Co2Sensor(_Sensor):
    """SCD41 in periodic measurement (a new CO2 value every 5 s; data-ready says when)."""

    name = "scd41"

    def __init__(self, board):
        self.channels = [(CO2, 0)]
        self._board = board
        self._drv = None
        self._last_ms = time.ticks_ms()

    async def start(self):
        d = SCD4x(self._board.i2c())
        # A sensor still measuring (the node reset, the sensor kept power) refuses
        # start_periodic: stop it first, as Sensirion's drivers do at init.
        d.stop_periodic()
        await asyncio.sleep_ms(_SCD_STOP_MS)
        d.start_periodic()
        self._drv = d
        self._last_ms = time.ticks_ms()

    async def sample(self):
        d = self._drv
        if not d.data_ready():
            if time.ticks_diff(time.ticks_ms(), self._last_ms) > _SCD_STALE_MS:
                raise SensorMissing("SCD4x", f"no measurement for {_SCD_STALE_MS // 1000} s")
            return None
        co2, _, _ = d.read_measurement()
        self._last_ms = time.ticks_ms()
        return (co2,)


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


def make_sensors(config, board):
    """The PM sensor the config names, the SCD41 and the BME280."""
    return [PmSensor(config["pm_sensor"], board), Co2Sensor(board), ThpSensor(board)]
