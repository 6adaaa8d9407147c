"""Command-level model of a Sensirion SCD41 CO2 sensor on I2C (address 0x62).

Source: Sensirion "Datasheet SCD4x" v1.4: §3.5-3.9 commands (16-bit BE, no CRC), replies as
16-bit BE words each followed by a CRC-8 (poly 0x31, init 0xFF, §3.11); read_measurement gives
CO2 ppm, T = -45 + 175 w / 2^16, RH = 100 w / 2^16; data ready when `word & 0x07FF != 0`;
stop_periodic_measurement needs 500 ms, during which the sensor does not acknowledge.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .base import SensorModel

ADDR = 0x62
START_PERIODIC = 0x21B1
READ_MEASUREMENT = 0xEC05
STOP_PERIODIC = 0x3F86
DATA_READY = 0xE4B8
SERIAL = 0x3682
VARIANT = 0x202F
SCD41_VARIANT = 0x1408
_ALLOWED_WHILE_MEASURING = {READ_MEASUREMENT, STOP_PERIODIC, DATA_READY}


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
    """The sensor: set `co2_ppm`, `temperature_c`, `humidity_pct`; faults: `unplugged` (NACKs
    everything), `corrupt_next` (that many replies get a bad CRC on their first word)."""

    def __init__(
        self,
        *,
        co2_ppm: int = 420,
        temperature_c: float = 21.0,
        humidity_pct: float = 50.0,
        interval_s: float = 5.0,
        serial: int = 0x1234_5678_9ABC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s)  # periodic measurement: 5 s on the real part
        self.co2_ppm = co2_ppm
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.serial = serial
        self.commands: list[int] = []
        self._clock = clock
        self._measuring_since: float | None = None
        self._consumed = 0  # index of the last measurement read out
        self._busy_until = 0.0
        self._reply = b""

    @property
    def measuring(self) -> bool:
        return self._measuring_since is not None

    def _available(self) -> int:
        """Index of the newest finished measurement (0: none yet)."""
        if self._measuring_since is None:
            return 0
        return int((self._clock() - self._measuring_since) / self.interval_s)

    def raw_words(self) -> tuple[int, int, int]:
        t = round((self.temperature_c + 45.0) * 65536 / 175.0)
        rh = round(self.humidity_pct * 65536 / 100.0)
        return self.co2_ppm, max(0, min(0xFFFF, t)), max(0, min(0xFFFF, rh))

    def write(self, data: bytes) -> bool:
        """An I2C write (a command, maybe with arguments); False = NACK."""
        if self.unplugged or self._clock() < self._busy_until or len(data) < 2:
            return False
        cmd = int.from_bytes(data[:2], "big")
        if self.measuring and cmd not in _ALLOWED_WHILE_MEASURING:
            return False  # datasheet: not executable during periodic measurement
        self.commands.append(cmd)
        self._reply = b""
        if cmd == START_PERIODIC:
            self._measuring_since = self._clock()
            self._consumed = 0
        elif cmd == STOP_PERIODIC:
            self._measuring_since = None
            self._busy_until = self._clock() + 0.5
        elif cmd == DATA_READY:
            ready = self._available() > self._consumed
            self._reply = words(0x8006 if ready else 0x8000)
        elif cmd == READ_MEASUREMENT:
            newest = self._available()
            if newest == 0:
                return True  # nothing measured yet: the read is NACKed
            self._consumed = newest
            self._reply = words(*self.raw_words())
        elif cmd == SERIAL:
            s = self.serial
            self._reply = words(s >> 32 & 0xFFFF, s >> 16 & 0xFFFF, s & 0xFFFF)
        elif cmd == VARIANT:
            self._reply = words(SCD41_VARIANT)
        else:
            return False
        if self._reply and self._take_corrupt():
            self._reply = (
                bytes((self._reply[0], self._reply[1], self._reply[2] ^ 0xFF)) + (self._reply[3:])
            )
        return True

    def read(self, n: int) -> bytes | None:
        """An I2C read of n bytes; None = NACK (absent, busy, or nothing to read)."""
        if self.unplugged or self._clock() < self._busy_until or not self._reply:
            return None
        out, self._reply = self._reply[:n], b""
        return out + b"\xff" * (n - len(out))
