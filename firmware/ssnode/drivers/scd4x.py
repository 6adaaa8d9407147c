"""Sensirion SCD4x (SCD40/SCD41) CO2 sensor over I2C, address 0x62.

Source: Sensirion "Datasheet SCD4x" v1.3 (September 2022): Table 9 (§3.4) command list and
execution times, §3.5.2 read_measurement conversions, §3.7 field calibration, §3.11 CRC (see
sensirion.py).

Commands are 16-bit big-endian without CRC; a word written with a command, and every 16-bit
word the sensor returns, is followed by its CRC-8. After a command the host must wait its
execution time before the next I2C access; the driver remembers when the sensor is free again
instead of sleeping after each command. read_measurement empties the sensor's buffer: a second
read in the same 5 s period is NACKed (§3.5.2), so callers ask data_ready first.
"""

import time

from micropython import const

from .errors import ChecksumError, SensorMissing
from .sensirion import crc8

_NAME = "SCD4x"
ADDR = const(0x62)
_START_PERIODIC = const(0x21B1)  # measurement every 5 s
_READ_MEASUREMENT = const(0xEC05)  # 1 ms
_STOP_PERIODIC = const(0x3F86)  # 500 ms
_DATA_READY = const(0xE4B8)  # 1 ms
_SERIAL = const(0x3682)  # 1 ms
_VARIANT = const(0x202F)  # 1 ms; SCD41 answers 0x1408 (upper bits)
_FORCED_RECALIBRATION = const(0x362F)  # 400 ms, idle only (§3.7.1)
FRC_MS = const(400)
_SET_ASC = const(0x2416)  # 1 ms, idle only (§3.7.2)
_GET_ASC = const(0x2313)  # 1 ms, idle only (§3.7.3)
_FRC_FAILED = const(0xFFFF)


class SCD4x:
    """Driver; `i2c` is anything with writeto(addr, buf)/readfrom_into(addr, buf)."""

    def __init__(self, i2c, addr=ADDR):
        self._i2c = i2c
        self._addr = addr
        self._cmd = bytearray(2)
        self._cmd_arg = bytearray(5)  # a command with one argument word and its CRC
        self._rx = bytearray(9)  # up to three words with their CRCs
        self._free_at = time.ticks_ms()

    def _wait_free(self):
        d = time.ticks_diff(self._free_at, time.ticks_ms())
        if d > 0:
            time.sleep_ms(d)

    def _command(self, cmd, exec_ms, arg=None):
        self._wait_free()
        c = self._cmd if arg is None else self._cmd_arg
        c[0] = cmd >> 8
        c[1] = cmd & 0xFF
        if arg is not None:
            c[2] = arg >> 8
            c[3] = arg & 0xFF
            c[4] = crc8(c, 2, 4)
        try:
            self._i2c.writeto(self._addr, c)
        except OSError as e:
            raise SensorMissing(_NAME, f"no answer at I2C 0x{self._addr:02x} ({e})") from None
        # +1: ticks_ms truncates, so a bare exec_ms could end up to 1 ms short.
        self._free_at = time.ticks_add(time.ticks_ms(), exec_ms + 1)

    def _read_words(self, cmd, count, exec_ms):
        self._command(cmd, exec_ms)
        return self._fetch_words(count)

    def _fetch_words(self, count):
        self._wait_free()
        rx = memoryview(self._rx)[: 3 * count]
        try:
            self._i2c.readfrom_into(self._addr, rx)
        except OSError as e:
            raise SensorMissing(_NAME, f"read failed at I2C 0x{self._addr:02x} ({e})") from None
        words = []
        for i in range(0, 3 * count, 3):
            crc = crc8(rx, i, i + 2)
            if crc != rx[i + 2]:
                raise ChecksumError(_NAME, crc, rx[i + 2])
            words.append((rx[i] << 8) | rx[i + 1])
        return words

    def start_periodic(self):
        """Start measuring every 5 s (first result after about 5 s)."""
        self._command(_START_PERIODIC, 0)

    def stop_periodic(self):
        """Stop measuring; the sensor accepts the next command 500 ms later."""
        self._command(_STOP_PERIODIC, 500)

    def data_ready(self):
        """True when a new measurement can be read (least significant 11 bits non-zero)."""
        return self._read_words(_DATA_READY, 1, 1)[0] & 0x07FF != 0

    def read_measurement(self):
        """(co2_ppm, t_centi_c, rh_centi_pct): T = -45 + 175 w / 2^16, RH = 100 w / 2^16."""
        co2, t, rh = self._read_words(_READ_MEASUREMENT, 3, 1)
        t_centi = ((17500 * t + 32768) >> 16) - 4500
        rh_centi = (10000 * rh + 32768) >> 16
        return co2, t_centi, rh_centi

    def serial_number(self):
        """48-bit serial number (three words, most significant first)."""
        w = self._read_words(_SERIAL, 3, 1)
        return (w[0] << 32) | (w[1] << 16) | w[2]

    def variant(self):
        """Raw get_sensor_variant word (0x1408 for an SCD41)."""
        return self._read_words(_VARIANT, 1, 1)[0]

    def set_asc(self, enabled):
        """Automatic self-calibration on or off (idle only; volatile: the sensor forgets it at
        power-up, where ASC is on)."""
        self._command(_SET_ASC, 1, 1 if enabled else 0)

    def asc_enabled(self):
        """Whether automatic self-calibration is on (idle only)."""
        return self._read_words(_GET_ASC, 1, 1)[0] == 1

    def start_forced_recalibration(self, target_ppm):
        """Begin a forced recalibration against `target_ppm` (idle only, after > 3 min of
        periodic measurement in that air and a stop); its answer is ready FRC_MS later."""
        self._command(_FORCED_RECALIBRATION, FRC_MS, target_ppm)

    def forced_recalibration_result(self):
        """The correction (ppm) the sensor made, or None if it failed (answer 0xFFFF)."""
        word = self._fetch_words(1)[0]
        return None if word == _FRC_FAILED else word - 0x8000
