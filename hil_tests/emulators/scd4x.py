"""Command-level model of a Sensirion SCD41 CO2 sensor on I2C (address 0x62).

Source: Sensirion "Datasheet SCD4x" v1.3 (September 2022): Table 9 (§3.4) lists each command
with its execution time and whether it may be sent during periodic measurement; commands are
16-bit BE without CRC, words written or returned are 16-bit BE each followed by a CRC-8 (poly
0x31, init 0xFF, §3.11); the sensor does not acknowledge while a command executes.
§3.5.1 start_periodic_measurement: a measurement every 5 s.
§3.5.2 read_measurement: CO2 ppm, T = -45 + 175 w / 2^16, RH = 100 w / 2^16; "the measurement
  data can only be read out once per signal update interval as the buffer is emptied upon
  read-out. If no data is available in the buffer, the sensor returns a NACK."
§3.5.3 stop_periodic_measurement: 500 ms before the sensor answers again.
§3.7 field calibration: the CO2 reading is the air's plus the sensor's offset error (`drift_ppm`,
  the fault: assembly stress, ageing) plus the correction the sensor keeps (`correction_ppm`).
§3.7.1 perform_forced_recalibration (0x362F, target ppm as a word + CRC, 400 ms, idle only):
  the sensor must first have measured > 3 min in the air of the reference and been stopped;
  the answer is 0x8000 + the correction made, 0xFFFF when it failed ("because the sensor was
  not operated before"; this model also fails a run shorter than the 3 minutes, the strict
  reading of step 1). The correction moves the current reading onto the target.
§3.7.2/§3.7.3 set/get_automatic_self_calibration_enabled (0x2416 word + CRC / 0x2313, 1 ms,
  idle only); ASC is on by default, and only persist_settings would keep a change over a power
  cycle. ASC "assumes that the sensor is exposed to the atmospheric CO2 concentration of 400
  ppm at least once per week": at the end of each ASC period of measuring time (44 h first,
  156 h after: the default initial and standard periods of Sensirion's SCD4x driver
  documentation, commands 0x2445/0x244E) the lowest reading of the period is taken to be 400
  ppm. Next to a road that never sees 400 ppm, the readings drift low.
Timings on the clock's real scale: the 5 s period and the execution times; on its fast scale
(slow processes, see base.SensorClock): the 3 minutes before an FRC and the ASC periods.
"""

from __future__ import annotations

from .base import SensorClock, SensorModel

ADDR = 0x62
START_PERIODIC = 0x21B1
READ_MEASUREMENT = 0xEC05
STOP_PERIODIC = 0x3F86
DATA_READY = 0xE4B8
SERIAL = 0x3682
VARIANT = 0x202F
FORCED_RECALIBRATION = 0x362F
SET_ASC = 0x2416
GET_ASC = 0x2313
SCD41_VARIANT = 0x1408
FRC_FAILED = 0xFFFF
FRC_MIN_RUN_S = 180.0  # §3.7.1 step 1: "> 3 minutes"
ASC_TARGET_PPM = 400
ASC_INITIAL_S = 44 * 3600.0
ASC_STANDARD_S = 156 * 3600.0
# Execution times in seconds (Table 9); a command not listed takes 1 ms.
EXEC_S = {STOP_PERIODIC: 0.5, FORCED_RECALIBRATION: 0.4, START_PERIODIC: 0.0}
_ALLOWED_WHILE_MEASURING = {READ_MEASUREMENT, STOP_PERIODIC, DATA_READY}
_WITH_ARGUMENT = {FORCED_RECALIBRATION, SET_ASC}


def crc8(data: bytes) -> int:
    """Sensirion CRC-8; crc8(b"\\xbe\\xef") == 0x92 (datasheet check value)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def words(*values: int) -> bytes:
    """Words as the sensor sends them: each big-endian, followed by its CRC."""
    out = bytearray()
    for v in values:
        w = v.to_bytes(2, "big")
        out += w + bytes((crc8(w),))
    return bytes(out)


class Scd4x(SensorModel):
    """The sensor: set `co2_ppm` (the air), `temperature_c`, `humidity_pct`; `drift_ppm` is
    its offset error. Faults: `unplugged` (NACKs everything), `corrupt_next` (that many replies
    get a bad CRC on their first word)."""

    def __init__(
        self,
        *,
        co2_ppm: int = 420,
        temperature_c: float = 21.0,
        humidity_pct: float = 50.0,
        interval_s: float = 5.0,
        serial: int = 0x1234_5678_9ABC,
        clock: SensorClock | None = None,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)  # §3.5.1: 5 s
        self.co2_ppm = co2_ppm
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.serial = serial
        self.drift_ppm = 0
        self.correction_ppm = 0
        self.asc_enabled = True
        self.commands: list[int] = []
        self._measuring_since: float | None = None  # real time
        self._run_since = 0.0  # the same start on the fast scale
        self._last_run_s = 0.0  # how long (fast scale) the last run lasted before its stop
        self._consumed = 0  # index of the last measurement read out
        self._busy_until = 0.0
        self._reply = b""
        self._asc_measured_s = 0.0  # measuring time in the current ASC period
        self._asc_periods = 0
        self._asc_lowest: int | None = None
        self._asc_seen_at: float | None = None

    @property
    def measuring(self) -> bool:
        return self._measuring_since is not None

    def reading_ppm(self) -> int:
        """The CO2 value the sensor reports now."""
        return max(0, round(self.co2_ppm + self.drift_ppm + self.correction_ppm))

    def _available(self) -> int:
        """Index of the newest finished measurement (0: none yet)."""
        if self._measuring_since is None:
            return 0
        return int((self.clock.real() - self._measuring_since) / self.interval_s)

    def raw_words(self) -> tuple[int, int, int]:
        t = round((self.temperature_c + 45.0) * 65536 / 175.0)
        rh = round(self.humidity_pct * 65536 / 100.0)
        return self.reading_ppm(), max(0, min(0xFFFF, t)), max(0, min(0xFFFF, rh))

    def _asc_step(self) -> None:
        """ASC bookkeeping up to now: the lowest reading of the period; at its end, the
        correction that makes that lowest reading 400 ppm."""
        now = self.clock()
        if self._measuring_since is None or not self.asc_enabled:
            self._asc_seen_at = None
            return
        if self._asc_seen_at is not None:
            self._asc_measured_s += now - self._asc_seen_at
        self._asc_seen_at = now
        reading = self.reading_ppm()
        if self._asc_lowest is None or reading < self._asc_lowest:
            self._asc_lowest = reading
        period = ASC_INITIAL_S if self._asc_periods == 0 else ASC_STANDARD_S
        if self._asc_measured_s >= period:
            self.correction_ppm += ASC_TARGET_PPM - self._asc_lowest
            self._asc_periods += 1
            self._asc_measured_s = 0.0
            self._asc_lowest = None

    def write(self, data: bytes) -> bool:
        """An I2C write (a command, maybe with an argument word and its CRC); False = NACK."""
        now = self.clock.real()
        if self.unplugged or now < self._busy_until or len(data) < 2:
            return False
        cmd = int.from_bytes(data[:2], "big")
        if self.measuring and cmd not in _ALLOWED_WHILE_MEASURING:
            return False  # Table 9: not executable during periodic measurement
        argument = None
        if cmd in _WITH_ARGUMENT:
            if len(data) != 5 or crc8(data[2:4]) != data[4]:
                return False  # a missing argument or one with a bad CRC is not taken
            argument = int.from_bytes(data[2:4], "big")
        self._asc_step()
        self.commands.append(cmd)
        self._reply = b""
        self._busy_until = now + EXEC_S.get(cmd, 0.001)
        if cmd == START_PERIODIC:
            self._measuring_since = now
            self._run_since = self._asc_seen_at = self.clock()
            self._consumed = 0
        elif cmd == STOP_PERIODIC:
            if self._measuring_since is not None:
                self._last_run_s = self.clock() - self._run_since
            self._measuring_since = None
        elif cmd == DATA_READY:
            ready = self._available() > self._consumed
            self._reply = words(0x8006 if ready else 0x8000)
        elif cmd == READ_MEASUREMENT:
            newest = self._available()
            if newest <= self._consumed:
                return True  # §3.5.2: nothing new in the buffer, the read is NACKed
            self._consumed = newest
            self._reply = words(*self.raw_words())
        elif cmd == FORCED_RECALIBRATION:
            assert argument is not None
            self._reply = words(self._recalibrate(argument))
        elif cmd == SET_ASC:
            self.asc_enabled = argument == 1
        elif cmd == GET_ASC:
            self._reply = words(1 if self.asc_enabled else 0)
        elif cmd == SERIAL:
            s = self.serial
            self._reply = words(s >> 32 & 0xFFFF, s >> 16 & 0xFFFF, s & 0xFFFF)
        elif cmd == VARIANT:
            self._reply = words(SCD41_VARIANT)
        else:
            self.commands.pop()
            self._busy_until = now
            return False
        if self._reply and self._take_corrupt():
            self._reply = (
                bytes((self._reply[0], self._reply[1], self._reply[2] ^ 0xFF)) + (self._reply[3:])
            )
        return True

    def _recalibrate(self, target_ppm: int) -> int:
        """§3.7.1: the FRC answer word; on success the reading now equals the target."""
        if self._last_run_s < FRC_MIN_RUN_S:
            return FRC_FAILED
        correction = target_ppm - self.reading_ppm()
        self.correction_ppm += correction
        self._last_run_s = 0.0  # the next FRC needs a new run first
        return (0x8000 + correction) & 0xFFFF

    def read(self, n: int) -> bytes | None:
        """An I2C read of n bytes; None = NACK (absent, busy, or nothing to read)."""
        if self.unplugged or self.clock.real() < self._busy_until or not self._reply:
            return None
        out, self._reply = self._reply[:n], b""
        return out + b"\xff" * (n - len(out))
