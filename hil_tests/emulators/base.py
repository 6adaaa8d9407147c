"""State, time and fault injection the sensor models share.

`SensorClock`: the emulated time every model reads its datasheet timings from.
`SensorModel`: the cadence and the faults every model has (`unplugged`, `corrupt_next`).
`UartSensorModel`: a UART sensor's command parser (`feed()`), sleep/on-request state, the
`stuck` fault and the frame cadence (`tick()`, `tick_delay_s()`); a model supplies the wire
details.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

V = TypeVar("V", bound=tuple[float, ...])


class SensorClock:
    """Time for the sensor models, in seconds since the clock started, on two scales.

    `real()` runs with real time: the parts' protocol timings (frame cadence, the PMS5003's
    restart, command execution times, the SCD41's 5 s period), which the firmware meets with
    its own real-time waits and timeouts. Calling the clock gives the same time run
    `speedup` times faster: the slow processes a test cannot sit through (a PM sensor's 30 s
    warm-up, the 3 minutes an SCD41 must measure before a forced recalibration, ASC periods,
    drift by the hour). So what the firmware must cope with stays as it is; a test only waits
    less for the slow parts, and gives the firmware settings to match (`pm_warmup_s`).
    """

    def __init__(self, speedup: float = 1.0) -> None:
        if speedup <= 0:
            raise ValueError(f"speedup must be > 0, not {speedup}")
        self.speedup = speedup
        self._t0 = time.monotonic()

    def real(self) -> float:
        """Seconds since the clock started, at the pace of real time."""
        return time.monotonic() - self._t0

    def __call__(self) -> float:
        """Seconds since the clock started, `speedup` times faster (slow processes)."""
        return self.real() * self.speedup


class ManualClock(SensorClock):
    """A clock that stands still until `advance()`: model tests step through hours at once.
    Both of its scales read the same."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def real(self) -> float:
        return self.now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SensorModel:
    """Faults: `unplugged` (the sensor is silent / NACKs everything), `corrupt_next` (that many
    replies go out with a bad checksum). `clock` gives the emulated time (default: real time)."""

    def __init__(self, *, interval_s: float, clock: SensorClock | None = None) -> None:
        self.interval_s = interval_s
        self.clock = clock if clock is not None else SensorClock()
        self.unplugged = False
        self.corrupt_next = 0

    def _take_corrupt(self) -> bool:
        """Whether the reply going out now is to be corrupted (uses up one of corrupt_next)."""
        if self.corrupt_next > 0:
            self.corrupt_next -= 1
            return True
        return False


class UartSensorModel(SensorModel, ABC, Generic[V]):
    """A UART sensor: commands are CMD_LEN bytes starting with CMD_HEADER; a model defines
    `_values()` (its readings, V), `_encode()` (a data frame of them), `_valid()` and
    `_command()` (check and carry out one command) and `_on_request()` (true while it sends
    frames only when asked); `_streaming()` says when an awake sensor sends on its own.
    Fault `stuck`: it keeps reporting the values it had then."""

    CMD_HEADER: bytes
    CMD_LEN: int

    def __init__(self, *, interval_s: float, clock: SensorClock | None = None) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self.asleep = False
        self._stuck_at: V | None = None
        self.commands: list[bytes] = []  # every valid command carried out, in order
        self.frames_sent = 0
        self._rx = bytearray()

    @abstractmethod
    def _values(self) -> V: ...

    @abstractmethod
    def _encode(self, values: V, corrupt: bool) -> bytes: ...

    @abstractmethod
    def _valid(self, cmd: bytes) -> bool: ...

    @abstractmethod
    def _command(self, cmd: bytes) -> bytes: ...

    @abstractmethod
    def _on_request(self) -> bool: ...

    def _streaming(self) -> bool:
        """True while an awake sensor in active mode sends frames on its own."""
        return True

    def cadence_s(self) -> float:
        """Seconds (real time) between two frames in active mode."""
        return self.interval_s

    def tick_delay_s(self) -> float:
        """Seconds until the next `tick()` is due: the cadence, a protocol timing (real)."""
        return self.cadence_s()

    @property
    def stuck(self) -> bool:
        return self._stuck_at is not None

    @stuck.setter
    def stuck(self, value: bool) -> None:
        self._stuck_at = self._values() if value else None

    def frame(self) -> bytes:
        """The next data frame, with the fault settings applied."""
        values = self._stuck_at if self._stuck_at is not None else self._values()
        corrupt = self._take_corrupt()
        self.frames_sent += 1
        return self._encode(values, corrupt)

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host; returns what the sensor answers."""
        if self.unplugged:
            return b""
        self._rx += data
        out = b""
        while True:
            start = self._rx.find(self.CMD_HEADER)
            if start < 0:
                del self._rx[: max(0, len(self._rx) - 1)]
                return out
            del self._rx[:start]
            if len(self._rx) < self.CMD_LEN:
                return out
            cmd = bytes(self._rx[: self.CMD_LEN])
            if not self._valid(cmd):
                del self._rx[:1]  # a real sensor ignores a bad command
                continue
            del self._rx[: self.CMD_LEN]
            out += self._command(cmd)

    def tick(self) -> bytes:
        """Called every `tick_delay_s()`: the frame an awake sensor in active mode sends."""
        if self.unplugged or self.asleep or self._on_request() or not self._streaming():
            return b""
        return self.frame()
