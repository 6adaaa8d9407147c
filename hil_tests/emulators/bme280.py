"""Register-level model of a Bosch BME280 on I2C (0x76).

Source: Bosch Sensortec BME280 datasheet BST-BME280-DS002 rev 1.6: §5.4 register map (0xD0 id
0x60, 0xE0 reset with 0xB6, 0xF2 ctrl_hum latched by a write to 0xF4, 0xF3 status bit 3
"measuring", 0xF4 ctrl_meas, 0xF7..0xFE data with 0x80000/0x8000 for a skipped channel), §6.2
I2C (reads auto-increment; writes are register/value pairs), §4.2.2 trimming registers and
§4.2.3 integer compensation. The compensation is transcribed here (CPython cannot import the
firmware) and inverted by bisection — each formula is monotonic in its raw value — so that a
correct driver reads back the environment within the output resolution.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ADDR = 0x76
CHIP_ID = 0x60
REG_ID = 0xD0
REG_RESET = 0xE0
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7

# Trimming values: T and P from the worked example in Bosch's BMP280 datasheet §3.12 (same
# sensor element and formulas), H typical of a production BME280.
CALIBRATION: dict[str, int] = {
    "T1": 27504, "T2": 26435, "T3": -1000,
    "P1": 36477, "P2": -10685, "P3": 3024, "P4": 2855, "P5": 140, "P6": -7,
    "P7": 15500, "P8": -14600, "P9": 6000,
    "H1": 75, "H2": 370, "H3": 0, "H4": 313, "H5": 50, "H6": 30,
}  # fmt: skip


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def compensate_t(c: dict[str, int], adc_t: int) -> tuple[int, int]:
    """BME280_compensate_T_int32: (T in 0.01 °C, t_fine)."""
    var1 = (((adc_t >> 3) - (c["T1"] << 1)) * c["T2"]) >> 11
    var2 = (((((adc_t >> 4) - c["T1"]) * ((adc_t >> 4) - c["T1"])) >> 12) * c["T3"]) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_p(c: dict[str, int], adc_p: int, t_fine: int) -> int:
    """BME280_compensate_P_int64: pressure in Pa, Q24.8."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * c["P6"]
    var2 = var2 + ((var1 * c["P5"]) << 17)
    var2 = var2 + (c["P4"] << 35)
    var1 = ((var1 * var1 * c["P3"]) >> 8) + ((var1 * c["P2"]) << 12)
    var1 = (((1 << 47) + var1) * c["P1"]) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c["P9"] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c["P8"] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c["P7"] << 4)


def compensate_h(c: dict[str, int], adc_h: int, t_fine: int) -> int:
    """bme280_compensate_H_int32: humidity in %RH, Q22.10."""
    v = t_fine - 76800
    a = (((adc_h << 14) - (c["H4"] << 20) - (c["H5"] * v)) + 16384) >> 15
    b = (((v * c["H6"]) >> 10) * (((v * c["H3"]) >> 11) + 32768)) >> 10
    b = ((b + 2097152) * c["H2"] + 8192) >> 14
    v = a * b
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c["H1"]) >> 4)
    v = min(max(v, 0), 419430400)
    return v >> 12


def _bisect(f: Callable[[int], int], target: int, lo: int, hi: int, rising: bool) -> int:
    """The raw value in [lo, hi] whose output f is closest to target (f monotonic)."""
    a, b = lo, hi
    while b - a > 1:
        mid = (a + b) // 2
        if (f(mid) < target) == rising:
            a = mid
        else:
            b = mid
    return min((a, b), key=lambda x: abs(f(x) - target))


def calibration_bytes(c: dict[str, int]) -> tuple[bytes, bytes]:
    """The trimming registers: 0x88..0xA1 (26 bytes) and 0xE1..0xE7 (7 bytes)."""
    tp = b"".join(
        c[k].to_bytes(2, "little", signed=k not in ("T1", "P1"))
        for k in ("T1", "T2", "T3", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9")
    )
    tp += bytes((0, c["H1"]))
    h4, h5 = c["H4"], c["H5"]
    h = c["H2"].to_bytes(2, "little", signed=True) + bytes(
        (c["H3"], (h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF,
         c["H6"] & 0xFF)
    )  # fmt: skip
    return tp, h


class Bme280:
    """The sensor: set `temperature_c`, `pressure_pa`, `humidity_pct`; fault: `unplugged`."""

    def __init__(
        self,
        *,
        temperature_c: float = 25.0,
        pressure_pa: float = 101325.0,
        humidity_pct: float = 50.0,
        measure_time_s: float = 0.0093,  # §9.1: max time at x1/x1/x1
        calibration: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        self.humidity_pct = humidity_pct
        self.measure_time_s = measure_time_s
        self.cal = dict(calibration or CALIBRATION)
        self.unplugged = False
        self.measurements = 0
        self._clock = clock
        self._regs = bytearray(256)
        self._pointer = 0
        self._ctrl_hum_latched = 0
        self._done_at = 0.0
        self._pending: bytes | None = None
        self._reset()

    def _reset(self) -> None:
        self._regs = bytearray(256)
        self._regs[REG_ID] = CHIP_ID
        tp, h = calibration_bytes(self.cal)
        self._regs[0x88 : 0x88 + len(tp)] = tp
        self._regs[0xE1 : 0xE1 + len(h)] = h
        self._regs[REG_DATA : REG_DATA + 8] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
        self._ctrl_hum_latched = 0

    def raw(self) -> tuple[int, int, int]:
        """(adc_t, adc_p, adc_h) that compensate to the current environment."""
        c = self.cal
        target_t = round(self.temperature_c * 100)
        adc_t = _bisect(lambda x: compensate_t(c, x)[0], target_t, 0, (1 << 20) - 1, True)
        t_fine = compensate_t(c, adc_t)[1]
        target_p = round(self.pressure_pa * 256)
        adc_p = _bisect(lambda x: compensate_p(c, x, t_fine), target_p, 0, (1 << 20) - 1, False)
        target_h = round(self.humidity_pct * 1024)
        adc_h = _bisect(lambda x: compensate_h(c, x, t_fine), target_h, 0, 0xFFFF, True)
        return adc_t, adc_p, adc_h

    def expected(self) -> tuple[int, int, int]:
        """What a correct driver reports now: (0.01 °C, Pa rounded, %RH in Q22.10)."""
        adc_t, adc_p, adc_h = self.raw()
        t, t_fine = compensate_t(self.cal, adc_t)
        p = compensate_p(self.cal, adc_p, t_fine)
        return t, (p + 128) >> 8, compensate_h(self.cal, adc_h, t_fine)

    def _measure(self) -> None:
        ctrl = self._regs[REG_CTRL_MEAS]
        osrs_t, osrs_p = ctrl >> 5, (ctrl >> 2) & 7
        adc_t, adc_p, adc_h = self.raw()
        adc_t = adc_t if osrs_t else 0x80000
        adc_p = adc_p if osrs_p else 0x80000
        adc_h = adc_h if self._ctrl_hum_latched & 7 else 0x8000
        self._pending = bytes(
            (adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4,
             adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4,
             adc_h >> 8, adc_h & 0xFF)
        )  # fmt: skip
        self._done_at = self._clock() + self.measure_time_s
        self.measurements += 1

    def _settle(self) -> None:
        """Finish a measurement whose time is up: data registers update, mode back to sleep."""
        if self._pending is not None and self._clock() >= self._done_at:
            self._regs[REG_DATA : REG_DATA + 8] = self._pending
            self._pending = None
            if self._regs[REG_CTRL_MEAS] & 3 != 3:
                self._regs[REG_CTRL_MEAS] &= 0xFC
        self._regs[REG_STATUS] = 0x08 if self._pending is not None else 0x00

    def write(self, data: bytes) -> bool:
        if self.unplugged:
            return False
        if len(data) == 1:
            self._pointer = data[0]
            return True
        for i in range(0, len(data) - 1, 2):  # register/value pairs
            self._write_reg(data[i], data[i + 1])
        return True

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == REG_RESET:
            if value == 0xB6:
                self._reset()
            return
        if reg in (REG_CTRL_HUM, REG_CTRL_MEAS, REG_CONFIG):
            self._regs[reg] = value
        if reg == REG_CTRL_MEAS:
            self._ctrl_hum_latched = self._regs[REG_CTRL_HUM]
            if value & 3 in (1, 2):  # forced mode: one measurement, then sleep
                self._measure()
            elif value & 3 == 3:  # normal mode: treated as a fresh result at every read
                self._measure()
                self._done_at = self._clock()

    def read(self, n: int) -> bytes | None:
        if self.unplugged:
            return None
        self._settle()
        if self._regs[REG_CTRL_MEAS] & 3 == 3 and self._pointer == REG_DATA:
            self._measure()
            self._done_at = self._clock()
            self._settle()
        out = bytes(self._regs[(self._pointer + i) & 0xFF] for i in range(n))
        self._pointer = (self._pointer + n) & 0xFF
        return out
