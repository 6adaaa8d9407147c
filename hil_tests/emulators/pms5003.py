"""Byte-level model of a Plantower PMS5003 particulate sensor (UART 9600 8N1).

Source: Plantower "PMS5003 series data manual" (2016, V2.5), Appendix I (32-byte data frame:
42 4D, length u16 BE = 28, 13 words u16 BE, checksum = 16-bit sum of bytes 0..29; words 1-3
PM1.0/2.5/10 "CF=1, standard particle", 4-6 the same "under atmospheric environment", 7-12
particles beyond 0.3/0.5/1.0/2.5/5/10 µm in 0.1 L of air) and Appendix II (7-byte commands
42 4D CMD DATAH DATAL LRCH LRCL: E1 00/01 passive/active, E2 read in passive mode, E4 00/01
sleep/wake).

What the manual leaves out, as the parts behave (each cited where the model does it):
mode commands are answered with a 4-byte reply frame; wake is a restart that comes back in
active mode and drops what arrives while it boots; the active cadence follows the readings;
the first 30 s after wake are unstable (optical_pm.py).

The model does no I/O: `feed()` takes bytes from the host and returns the reply, `tick()` is
called every `tick_delay_s()` and returns the frame an active sensor sends. `UartPty` puts it
on a PTY.
"""

from __future__ import annotations

import struct

from .base import SensorClock
from .optical_pm import OpticalPmModel

HEADER = b"\x42\x4d"
CMD_MODE = 0xE1
CMD_READ = 0xE2
CMD_SLEEP = 0xE4
FRAME_LEN = 32
REPLY_LEN = 8
# Wake behaves like a reset (Adafruit's adafruit_pm25/uart.py, _cmd_wakeup: no response, "TX
# low until about a second later as it initializes", "about 3 seconds before the device
# becomes available"): commands sent in this time are lost and no frame goes out.
RESTART_S = 3.0
# Active mode (manual, Appendix I note): "stable mode" sends every 2.3 s; when the readings
# change a lot it switches to "fast mode", 200-800 ms; the slow end of that is modelled.
STABLE_PERIOD_S = 2.3
FAST_PERIOD_S = 0.8

Words = tuple[int, ...]  # the 12 data words: CF=1 PM1/2.5/10, atmospheric PM1/2.5/10, counts


def command(cmd: int, data: int) -> bytes:
    """A host command, e.g. command(0xE4, 1) is wake = 42 4D E4 00 01 01 74."""
    body = HEADER + bytes((cmd, data >> 8, data & 0xFF))
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def reply(cmd: int, data: int) -> bytes:
    """The sensor's answer to a mode command: 42 4D 00 04 CMD DATA SUM, e.g. passive mode
    E1 00 is answered 42 4D 00 04 E1 00 01 74 (REFERENCE.md; the reply Adafruit's driver reads
    after every mode command, PyPMS's passive_mode/sleep answers of 8 bytes)."""
    body = HEADER + bytes((0, 4, cmd, data))
    return body + struct.pack(">H", sum(body) & 0xFFFF)


def cf1_from_atm(atm: float) -> float:
    """The CF=1 value of an atmospheric one: equal up to 30 µg/m³, 1.5 times it from 50 on, the
    factor blended linearly between. Plantower publishes no relation; this is the one EPA's
    piecewise correction of the atmospheric words builds in ("Sensor data cleaning and
    correction: Application on the AirNow Fire and Smoke Map", 2021, slide 26: 0.786 =
    1.5 x 0.524, the slope of the CF=1 form, reached over 30-50 µg/m³)."""
    if atm <= 30:
        return atm
    return atm * (1.0 + 0.5 * min(1.0, (atm - 30) / 20))


def counts_from_atm(pm1_0: float, pm2_5: float, pm10: float) -> tuple[int, ...]:
    """Particles beyond 0.3/0.5/1/2.5/5/10 µm per 0.1 L: a plausible monotonic function of the
    masses (not physics: it only has to be consistent and decreasing with size)."""
    return tuple(round(c) for c in (
        pm2_5 * 60 + pm10 * 10,
        pm2_5 * 18 + pm10 * 3,
        pm2_5 * 4 + pm10 + pm1_0,
        pm10 / 2,
        pm10 / 8,
        pm10 / 32,
    ))  # fmt: skip


def words_for(pm1_0: float, pm2_5: float, pm10: float) -> Words:
    """The 12 data words a sensor reading these atmospheric values sends."""
    atm = (pm1_0, pm2_5, pm10)
    cf1 = tuple(round(cf1_from_atm(v)) for v in atm)
    return (*cf1, *(round(v) for v in atm), *counts_from_atm(*atm))


def data_frame(words: Words, *, corrupt: bool = False) -> bytes:
    """One 32-byte data frame of the 12 data words (the 13th, reserved, is 0)."""
    body = HEADER + struct.pack(">H13H", 28, *(max(0, min(w, 0xFFFF)) for w in words), 0)
    checksum = sum(body) & 0xFFFF
    if corrupt:
        checksum ^= 0x0101
    return body + struct.pack(">H", checksum)


class Pms5003(OpticalPmModel[Words]):
    """The sensor: set `pm1_0`/`pm2_5`/`pm10` (the atmospheric µg/m³ it reads once warm).
    Faults: `unplugged` (silent), `corrupt_next` (that many frames go out with a bad
    checksum), `noise_next` (line noise sent just before the next frame), `stuck` (keeps
    reporting the values it had when it got stuck), `drop_after_wake` (also drops the first
    command after each wake, however late it comes), `fan_stalled`, `drifting`
    (optical_pm.py). `dropped` lists the commands it lost."""

    CMD_HEADER = HEADER
    CMD_LEN = 7

    def __init__(
        self, *, pm1_0: int = 5, pm2_5: int = 10, pm10: int = 15,
        clock: SensorClock | None = None, uptime_s: float = 0.0, seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(interval_s=STABLE_PERIOD_S, clock=clock, uptime_s=uptime_s, seed=seed)
        self.pm1_0 = pm1_0
        self.pm2_5 = pm2_5
        self.pm10 = pm10
        self.passive = False  # it powers up in active mode
        self.noise_next = b""
        self.drop_after_wake = False
        self.dropped: list[bytes] = []
        self._drop_next = False
        self._last_words: Words | None = None
        self._changed = True

    # -- readings ----------------------------------------------------------------------------
    def _values(self) -> Words:
        g = self._gain()
        return words_for(self.pm1_0 * g, self.pm2_5 * g, self.pm10 * g)

    def _encode(self, values: Words, corrupt: bool) -> bytes:
        noise, self.noise_next = self.noise_next, b""
        self._changed = values != self._last_words
        self._last_words = values
        return noise + data_frame(values, corrupt=corrupt)

    def cadence_s(self) -> float:
        return FAST_PERIOD_S if self._changed else STABLE_PERIOD_S

    # -- commands ----------------------------------------------------------------------------
    def restarting(self) -> bool:
        """Still booting after power-up or a wake (real time): commands are lost, nothing is
        sent."""
        return self.clock.real() - self._powered_since < RESTART_S and not self.asleep

    def _valid(self, cmd: bytes) -> bool:
        (lrc,) = struct.unpack(">H", cmd[5:])
        return bool(sum(cmd[:5]) & 0xFFFF == lrc)

    def _command(self, cmd: bytes) -> bytes:
        if self.restarting():
            self.dropped.append(cmd)
            return b""
        if self._drop_next:  # the fault: the first command after the restart is lost too
            self._drop_next = False
            self.dropped.append(cmd)
            return b""
        self.commands.append(cmd)
        return self._execute(cmd[2], cmd[4])

    def _execute(self, cmd: int, data: int) -> bytes:
        if self.asleep:  # asleep, only wake is heard
            if cmd == CMD_SLEEP and data == 1:
                self.asleep = False
                self.passive = False  # a restart: back in the power-up mode
                self._fan_start()
                self._drop_next = self.drop_after_wake
                return b"\x00"  # TX held low while it boots: a break on the host's UART
            return b""
        if cmd == CMD_SLEEP:
            if data == 0:
                self.asleep = True
                return reply(CMD_SLEEP, 0)
            return b""  # wake while awake: nothing to do, no answer
        if cmd == CMD_MODE:
            self.passive = data == 0
            return reply(CMD_MODE, data)
        if cmd == CMD_READ and self.passive:
            return self.frame()
        return b""

    def _on_request(self) -> bool:
        return self.passive

    def _streaming(self) -> bool:
        return not self.restarting()
