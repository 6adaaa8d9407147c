"""Byte-level model of a Nova Fitness SDS011 particulate sensor (UART 9600 8N1).

Sources: Nova Fitness "SDS011 Laser PM2.5 Sensor specification" V1.3 (10-byte data frame
AA C0 PM25_L PM25_H PM10_L PM10_H ID1 ID2 CS AB, 0.1 µg/m³, CS = sum of bytes 2..7) and
"Laser Dust Sensor Control Protocol" V1.3 (19-byte commands AA B4 CMD d1..d12 ID_L ID_H CS AB,
CS = sum of bytes 2..16; replies AA C5 CMD d1 d2 d3 ID1 ID2 CS AB). A sleeping sensor ignores
everything but the work command, and reports nothing.
"""

from __future__ import annotations

from .base import UartSensorModel

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


class Sds011(UartSensorModel[tuple[float, float]]):
    """The sensor: set `pm2_5`/`pm10` in µg/m³; faults: `unplugged` (silent), `corrupt_next`
    (that many data frames get a bad checksum), `stuck` (keeps its values from then on)."""

    CMD_HEADER = bytes((HEAD, 0xB4))
    CMD_LEN = 19

    def __init__(
        self,
        *,
        pm2_5: float = 10.0,
        pm10: float = 20.0,
        device_id: int = 0xA1B2,
        interval_s: float = 1.0,  # active reporting: once a second
    ) -> None:
        super().__init__(interval_s=interval_s)
        self.pm2_5 = pm2_5
        self.pm10 = pm10
        self.device_id = device_id
        self.query_mode = False

    def _values(self) -> tuple[float, float]:
        return self.pm2_5, self.pm10

    def _encode(self, values: tuple[float, float], corrupt: bool) -> bytes:
        pm2_5, pm10 = values
        clamp = 9999  # 999.9 µg/m³: the top of the range
        return data_frame(
            min(clamp, round(pm2_5 * 10)),
            min(clamp, round(pm10 * 10)),
            self.device_id,
            corrupt=corrupt,
        )

    def _reply(self, cmd: int, d1: int, d2: int) -> bytes:
        return _frame(0xC5, bytes((cmd, d1, d2, 0)) + self.device_id.to_bytes(2, "little"))

    def _valid(self, cmd: bytes) -> bool:
        return cmd[18] == TAIL and sum(cmd[2:17]) & 0xFF == cmd[17]

    def _command(self, cmd: bytes) -> bytes:
        target = cmd[15] | cmd[16] << 8
        if target not in (0xFFFF, self.device_id):
            return b""
        self.commands.append(cmd)
        return self._execute(cmd[2], cmd[3], cmd[4])

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

    def _on_request(self) -> bool:
        return self.query_mode
