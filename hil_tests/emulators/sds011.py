"""Byte-level model of a Nova Fitness SDS011 particulate sensor (UART 9600 8N1).

Sources: Nova Fitness "SDS011 Laser PM2.5 Sensor specification" V1.3 (10-byte data frame
AA C0 PM25_L PM25_H PM10_L PM10_H ID1 ID2 CS AB, 0.1 µg/m³, CS = sum of bytes 2..7, one frame
a second) and "Laser Dust Sensor Control Protocol" V1.3 (19-byte commands
AA B4 CMD d1..d12 ID_L ID_H CS AB, CS = sum of bytes 2..16; replies AA C5 CMD d1 d2 d3 ID1 ID2
CS AB). Its sections, as modelled here:

1) 02 data reporting mode: d1 0 query / 1 set, d2 0 active / 1 query; answered with the mode.
2) 04 query data: answered with a data frame.
3) 05 set device id: the new id in data bytes 12-13 (command bytes 13-14); answered
   AA C5 05 00 00 00 NEW_L NEW_H; the sensor then answers to the new id only.
4) 06 sleep and work: d1 0 query / 1 set, d2 0 sleep / 1 work; answered with the state. A
   sleeping sensor hears nothing but this command and reports nothing.
5) 08 working period: d1 0 query / 1 set, d2 0 continuous / 1-30 minutes; answered with the
   period. In a period of n minutes the sensor works 30 s, reports (one frame in active mode;
   in query mode a query gets the latest measurement), then sleeps the rest of the n minutes.
6) 07 firmware version: answered AA C5 07 YY MM DD.
Settings 1), 3) and 5) are "still effective after power off": they live in the sensor.
After work (and at power-up) the fan has to spin up: the first 30 s are unstable
(optical_pm.py).
"""

from __future__ import annotations

from .base import SensorClock
from .optical_pm import WARMUP_S, OpticalPmModel

HEAD = 0xAA
TAIL = 0xAB
CMD_MODE = 0x02
CMD_QUERY = 0x04
CMD_SET_ID = 0x05
CMD_SLEEP = 0x06
CMD_FIRMWARE = 0x07
CMD_PERIOD = 0x08
FIRMWARE = (18, 11, 16)  # year, month, day of the emulated firmware build
PERIOD_S = 1.0  # continuous mode: one measurement a second (specification V1.3)


def command(cmd: int, d1: int = 0, d2: int = 0, device_id: int = 0xFFFF,
            new_id: int | None = None) -> bytes:
    """A 19-byte host command (device id 0xFFFF: every sensor on the line; `new_id`: the
    data bytes 12-13 of set device id)."""
    data = bytes((cmd, d1, d2)) + bytes(8)
    data += bytes(2) if new_id is None else new_id.to_bytes(2, "little")
    body = data + bytes((device_id & 0xFF, device_id >> 8))
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


class Sds011(OpticalPmModel[tuple[float, float]]):
    """The sensor: set `pm2_5`/`pm10` in µg/m³ (what it reads once warm); faults:
    `unplugged` (silent), `corrupt_next` (that many data frames get a bad checksum), `stuck`
    (keeps its values from then on), `fan_stalled`, `drifting` (optical_pm.py).
    `work_period_min` is its working period (0: continuous)."""

    CMD_HEADER = bytes((HEAD, 0xB4))
    CMD_LEN = 19

    def __init__(
        self, *, pm2_5: float = 10.0, pm10: float = 20.0, device_id: int = 0xA1B2,
        clock: SensorClock | None = None, uptime_s: float = 0.0, seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(interval_s=PERIOD_S, clock=clock, uptime_s=uptime_s, seed=seed)
        self.pm2_5 = pm2_5
        self.pm10 = pm10
        self.device_id = device_id
        self.query_mode = False
        self.work_period_min = 0
        self._period_since = self.clock()
        self._cycle_done = -1  # the last working-period cycle whose measurement is taken
        self._latest: tuple[float, float] = (0.0, 0.0)

    def _values(self) -> tuple[float, float]:
        if self.work_period_min:
            self._cycle()
            return self._latest
        g = self._gain()
        return self.pm2_5 * g, self.pm10 * g

    def _cycle(self) -> bool:
        """Working-period mode: take the measurement of a cycle whose 30 s of work are over;
        True when one was just taken."""
        cycle_s = self.work_period_min * 60
        k, pos = divmod(self.clock() - self._period_since, cycle_s)
        if pos < WARMUP_S or int(k) <= self._cycle_done:
            return False
        self._cycle_done = int(k)
        self._fan_since = self._period_since + k * cycle_s  # the fan ran from the cycle start
        g = self._gain()
        self._latest = (self.pm2_5 * g, self.pm10 * g)
        return True

    def _encode(self, values: tuple[float, float], corrupt: bool) -> bytes:
        pm2_5, pm10 = values
        clamp = 9999  # 999.9 µg/m³: the top of the range
        return data_frame(
            min(clamp, round(pm2_5 * 10)),
            min(clamp, round(pm10 * 10)),
            self.device_id,
            corrupt=corrupt,
        )

    def tick(self) -> bytes:
        if self.work_period_min and not (self.unplugged or self.asleep or self.query_mode):
            return self.frame() if self._cycle() else b""  # one frame per cycle
        return super().tick()

    def _reply(self, cmd: int, d1: int, d2: int, d3: int = 0) -> bytes:
        return _frame(0xC5, bytes((cmd, d1, d2, d3)) + self.device_id.to_bytes(2, "little"))

    def _valid(self, cmd: bytes) -> bool:
        return cmd[18] == TAIL and sum(cmd[2:17]) & 0xFF == cmd[17]

    def _command(self, cmd: bytes) -> bytes:
        target = cmd[15] | cmd[16] << 8
        if target not in (0xFFFF, self.device_id):
            return b""
        if self.asleep and cmd[2] != CMD_SLEEP:
            return b""  # asleep: only sleep/work is heard
        self.commands.append(cmd)
        code, d1, d2 = cmd[2], cmd[3], cmd[4]
        if code == CMD_SLEEP:
            if d1 == 1:
                if self.asleep and d2 == 1:
                    self._fan_start()
                self.asleep = d2 == 0
            return self._reply(CMD_SLEEP, d1, 0 if self.asleep else 1)
        if code == CMD_MODE:
            if d1 == 1:
                self.query_mode = d2 == 1
            return self._reply(CMD_MODE, d1, 1 if self.query_mode else 0)
        if code == CMD_QUERY:
            return self.frame()
        if code == CMD_SET_ID:
            self.device_id = cmd[13] | cmd[14] << 8
            return _frame(0xC5, bytes((CMD_SET_ID, 0, 0, 0, cmd[13], cmd[14])))
        if code == CMD_PERIOD:
            if d1 == 1 and d2 <= 30 and d2 != self.work_period_min:
                self.work_period_min = d2
                self._period_since = self.clock()
                self._cycle_done = -1
                self._fan_start()  # a new period starts with its 30 s of work
            return self._reply(CMD_PERIOD, d1, self.work_period_min)
        if code == CMD_FIRMWARE:
            return self._reply(CMD_FIRMWARE, *FIRMWARE)
        return b""

    def _on_request(self) -> bool:
        return self.query_mode
