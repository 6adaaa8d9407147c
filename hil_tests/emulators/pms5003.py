"""Byte-level model of a Plantower PMS5003 particulate sensor (UART 9600 8N1).

Source: Plantower "PMS5003 series data manual" (2016, V2.5), Appendix I (32-byte data frame:
42 4D, length u16 BE = 28, 13 words u16 BE, checksum = 16-bit sum of bytes 0..29) and
Appendix II (7-byte commands 42 4D CMD DATAH DATAL LRCH LRCL: E1 00/01 passive/active,
E2 read in passive mode, E4 00/01 sleep/wake).

The model does no I/O: `feed()` takes bytes from the host and returns the reply, `tick()` is
called at the sensor's cadence and returns the frame an active sensor sends. `UartPty` puts it
on a PTY.
"""

from __future__ import annotations

import struct

from .base import UartSensorModel

HEADER = b"\x42\x4d"
CMD_MODE = 0xE1
CMD_READ = 0xE2
CMD_SLEEP = 0xE4
FRAME_LEN = 32


def command(cmd: int, data: int) -> bytes:
    """A host command, e.g. command(0xE4, 1) is wake = 42 4D E4 00 01 01 74."""
    body = HEADER + bytes((cmd, data >> 8, data & 0xFF))
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def data_frame(pm1_0: int, pm2_5: int, pm10: int, *, corrupt: bool = False) -> bytes:
    """One 32-byte data frame; CF=1 values equal the atmospheric ones (true below ~100 µg/m³).

    Particle counts (per 0.1 L) are a plausible monotonic function of the masses, not physics.
    """
    counts = (
        pm2_5 * 60 + pm10 * 10,  # > 0.3 µm
        pm2_5 * 18 + pm10 * 3,  # > 0.5 µm
        pm2_5 * 4 + pm10,  # > 1.0 µm
        pm10 // 2,  # > 2.5 µm
        pm10 // 8,  # > 5 µm
        pm10 // 32,  # > 10 µm
    )
    words = (pm1_0, pm2_5, pm10, pm1_0, pm2_5, pm10, *counts, 0)
    body = HEADER + struct.pack(">H13H", 28, *(min(w, 0xFFFF) for w in words))
    checksum = sum(body) & 0xFFFF
    if corrupt:
        checksum ^= 0x0101
    return body + struct.pack(">H", checksum)


class Pms5003(UartSensorModel[tuple[int, int, int]]):
    """The sensor: set `pm1_0`/`pm2_5`/`pm10` (µg/m³); faults: `unplugged` (silent),
    `corrupt_next` (that many frames go out with a bad checksum), `noise_next` (line noise sent
    just before the next frame), `stuck` (keeps reporting the values it had when it got stuck)."""

    CMD_HEADER = HEADER
    CMD_LEN = 7

    def __init__(
        self, *, pm1_0: int = 5, pm2_5: int = 10, pm10: int = 15, interval_s: float = 1.0
    ) -> None:
        # interval_s: active mode cadence (datasheet: 200-800 ms to 2.3 s)
        super().__init__(interval_s=interval_s)
        self.pm1_0 = pm1_0
        self.pm2_5 = pm2_5
        self.pm10 = pm10
        self.passive = False
        self.noise_next = b""

    def _values(self) -> tuple[int, int, int]:
        return self.pm1_0, self.pm2_5, self.pm10

    def _encode(self, values: tuple[int, int, int], corrupt: bool) -> bytes:
        noise, self.noise_next = self.noise_next, b""
        return noise + data_frame(*values, corrupt=corrupt)

    def _valid(self, cmd: bytes) -> bool:
        (lrc,) = struct.unpack(">H", cmd[5:])
        return bool(sum(cmd[:5]) & 0xFFFF == lrc)

    def _command(self, cmd: bytes) -> bytes:
        self.commands.append(cmd)
        return self._execute(cmd[2], cmd[4])

    def _execute(self, cmd: int, data: int) -> bytes:
        if cmd == CMD_SLEEP:
            self.asleep = data == 0
        elif self.asleep:
            pass
        elif cmd == CMD_MODE:
            self.passive = data == 0
        elif cmd == CMD_READ and self.passive:
            return self.frame()
        return b""

    def _on_request(self) -> bool:
        return self.passive
