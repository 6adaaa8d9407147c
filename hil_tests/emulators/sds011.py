"""Byte-level model of a Nova Fitness SDS011 particulate sensor (UART 9600 8N1).

Sources: Nova Fitness "SDS011 Laser PM2.5 Sensor specification" V1.3 (10-byte data frame
AA C0 PM25_L PM25_H PM10_L PM10_H ID1 ID2 CS AB, 0.1 µg/m³, CS = sum of bytes 2..7) and
"Laser Dust Sensor Control Protocol" V1.3 (19-byte commands AA B4 CMD d1..d12 ID_L ID_H CS AB,
CS = sum of bytes 2..16; replies AA C5 CMD d1 d2 d3 ID1 ID2 CS AB). A sleeping sensor ignores
everything but the work command, and reports nothing.
"""

from __future__ import annotations

HEAD = 0xAA
TAIL = 0xAB
CMD_MODE = 0x02
CMD_QUERY = 0x04
CMD_SLEEP = 0x06


def command(cmd: int, d1: int = 0, d2: int = 0, device_id: int = 0xFFFF) -> bytes:
    """A 19-byte host command (device id 0xFFFF: every sensor on the line)."""
    body = bytes((cmd, d1, d2)) + bytes(10) + bytes((device_id & 0xFF, device_id >> 8))
    return bytes((HEAD, 0xB4)) + body + bytes((sum(body) & 0xFF, TAIL))


def _frame(kind: int, payload: bytes, corrupt: bool = False) -> bytes:
    cs = sum(payload) & 0xFF
    if corrupt:
        cs ^= 0x5A
    return bytes((HEAD, kind)) + payload + bytes((cs, TAIL))


def data_frame(pm2_5_x10: int, pm10_x10: int, device_id: int, *, corrupt: bool = False) -> bytes:
    """E.g. data_frame(123, 456, 0xA1B2) = AA C0 7B 00 C8 01 B2 A1 97 AB."""
    payload = (
        pm2_5_x10.to_bytes(2, "little")
        + pm10_x10.to_bytes(2, "little")
        + device_id.to_bytes(2, "little")
    )
    return _frame(0xC0, payload, corrupt)


class Sds011:
    """The sensor: set `pm2_5`/`pm10` in µg/m³; faults: `unplugged` (silent), `corrupt_next`
    (that many data frames get a bad checksum), `stuck` (keeps its values from then on)."""

    def __init__(
        self,
        *,
        pm2_5: float = 10.0,
        pm10: float = 20.0,
        device_id: int = 0xA1B2,
        interval_s: float = 1.0,
    ) -> None:
        self.pm2_5 = pm2_5
        self.pm10 = pm10
        self.device_id = device_id
        self.interval_s = interval_s  # active reporting: once a second
        self.query_mode = False
        self.asleep = False
        self.unplugged = False
        self.corrupt_next = 0
        self._stuck_at: tuple[float, float] | None = None
        self.commands: list[bytes] = []
        self.frames_sent = 0
        self._rx = bytearray()

    @property
    def stuck(self) -> bool:
        return self._stuck_at is not None

    @stuck.setter
    def stuck(self, value: bool) -> None:
        self._stuck_at = (self.pm2_5, self.pm10) if value else None

    def frame(self) -> bytes:
        pm2_5, pm10 = self._stuck_at or (self.pm2_5, self.pm10)
        corrupt = self.corrupt_next > 0
        if corrupt:
            self.corrupt_next -= 1
        self.frames_sent += 1
        clamp = 9999  # 999.9 µg/m³: the top of the range
        return data_frame(
            min(clamp, round(pm2_5 * 10)),
            min(clamp, round(pm10 * 10)),
            self.device_id,
            corrupt=corrupt,
        )

    def _reply(self, cmd: int, d1: int, d2: int) -> bytes:
        return _frame(0xC5, bytes((cmd, d1, d2, 0)) + self.device_id.to_bytes(2, "little"))

    def feed(self, data: bytes) -> bytes:
        if self.unplugged:
            return b""
        self._rx += data
        out = b""
        while True:
            start = self._rx.find(bytes((HEAD, 0xB4)))
            if start < 0:
                del self._rx[: max(0, len(self._rx) - 1)]
                return out
            del self._rx[:start]
            if len(self._rx) < 19:
                return out
            cmd = bytes(self._rx[:19])
            if cmd[18] != TAIL or sum(cmd[2:17]) & 0xFF != cmd[17]:
                del self._rx[:1]
                continue
            del self._rx[:19]
            target = cmd[15] | cmd[16] << 8
            if target not in (0xFFFF, self.device_id):
                continue
            self.commands.append(cmd)
            out += self._execute(cmd[2], cmd[3], cmd[4])

    def _execute(self, cmd: int, d1: int, d2: int) -> bytes:
        if cmd == CMD_SLEEP:
            if d1 == 1:
                self.asleep = d2 == 0
            return self._reply(CMD_SLEEP, d1, 0 if self.asleep else 1)
        if self.asleep:
            return b""
        if cmd == CMD_MODE:
            if d1 == 1:
                self.query_mode = d2 == 1
            return self._reply(CMD_MODE, d1, 1 if self.query_mode else 0)
        if cmd == CMD_QUERY:
            return self.frame()
        return b""

    def tick(self) -> bytes:
        if self.unplugged or self.asleep or self.query_mode:
            return b""
        return self.frame()
