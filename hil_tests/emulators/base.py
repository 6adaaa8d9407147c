"""State and fault injection the sensor models share.

`SensorModel`: the cadence and the faults every model has (`unplugged`, `corrupt_next`).
`UartSensorModel`: a UART sensor's command parser (`feed()`), sleep/on-request state, the
`stuck` fault and the frame cadence (`tick()`); a model supplies the wire details.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

V = TypeVar("V", bound=tuple[float, ...])


class SensorModel:
    """Faults: `unplugged` (the sensor is silent / NACKs everything), `corrupt_next` (that many
    replies go out with a bad checksum)."""

    def __init__(self, *, interval_s: float) -> None:
        self.interval_s = interval_s
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
    frames only when asked). Fault `stuck`: it keeps reporting the values it had then."""

    CMD_HEADER: bytes
    CMD_LEN: int

    def __init__(self, *, interval_s: float) -> None:
        super().__init__(interval_s=interval_s)
        self.asleep = False
        self._stuck_at: V | None = None
        self.commands: list[bytes] = []  # every valid command received, in order
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
        """Called every `interval_s`: the frame an awake sensor in active mode sends."""
        if self.unplugged or self.asleep or self._on_request():
            return b""
        return self.frame()
