"""Bosch BME280 temperature / pressure / humidity sensor over I2C (0x76, or 0x77 with SDO high).

Source: Bosch Sensortec "BME280 Combined humidity and pressure sensor" datasheet
BST-BME280-DS002 rev 1.6: §4.2.2 trimming parameters, §4.2.3 integer compensation formulas
(the 32-bit temperature and humidity routines and the 64-bit pressure routine, transcribed
below), §5.4 register map, §9.1 measurement time (about 9.3 ms at x1 oversampling for all three).
"""

import time

from micropython import const

from .errors import SensorError, SensorMissing

_NAME = "BME280"
ADDR = const(0x76)
CHIP_ID = const(0x60)
_REG_ID = const(0xD0)
_REG_CALIB_TP = const(0x88)  # 0x88..0xA1: T1..T3, P1..P9, (0xA0 unused), H1
_REG_CALIB_H = const(0xE1)  # 0xE1..0xE7: H2..H6
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_DATA = const(0xF7)  # press_msb .. hum_lsb, 8 bytes
_STATUS_MEASURING = const(0x08)
_OSRS_X1 = const(1)
_MODE_FORCED = const(1)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 65536 if v & 0x8000 else v


def _s8(v):
    return v - 256 if v & 0x80 else v


def _cdiv(a, b):
    """C integer division (truncates toward zero), as in the datasheet's routine."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


class BME280:
    """Driver; `i2c` is anything with readfrom_mem(addr, reg, n)/writeto_mem(addr, reg, buf)."""

    def __init__(self, i2c, addr=ADDR):
        self._i2c = i2c
        self._addr = addr
        self._one = bytearray(1)
        chip = self._read(_REG_ID, 1)[0]
        if chip != CHIP_ID:
            raise SensorError(_NAME, f"chip id 0x{chip:02x} at 0x{addr:02x} is not 0x60")
        c = self._read(_REG_CALIB_TP, 26)
        self.t1 = _u16(c, 0)
        self.t2 = _s16(c, 2)
        self.t3 = _s16(c, 4)
        self.p1 = _u16(c, 6)
        self.p = [_s16(c, i) for i in range(8, 24, 2)]  # P2..P9
        self.h1 = c[25]
        h = self._read(_REG_CALIB_H, 7)
        self.h2 = _s16(h, 0)
        self.h3 = h[2]
        self.h4 = (_s8(h[3]) << 4) | (h[4] & 0x0F)
        self.h5 = (_s8(h[5]) << 4) | (h[4] >> 4)
        self.h6 = _s8(h[6])
        self.t_fine = 0

    def _read(self, reg, n):
        try:
            return self._i2c.readfrom_mem(self._addr, reg, n)
        except OSError as e:
            raise SensorMissing(_NAME, f"no answer at I2C 0x{self._addr:02x} ({e})") from None

    def _write(self, reg, value):
        self._one[0] = value
        try:
            self._i2c.writeto_mem(self._addr, reg, self._one)
        except OSError as e:
            raise SensorMissing(_NAME, f"no answer at I2C 0x{self._addr:02x} ({e})") from None

    def read_raw(self, timeout_ms=50):
        """One forced-mode measurement at x1 oversampling: (adc_t, adc_p, adc_h)."""
        # ctrl_hum takes effect only after a write to ctrl_meas (datasheet §5.4.3).
        self._write(_REG_CTRL_HUM, _OSRS_X1)
        self._write(_REG_CTRL_MEAS, (_OSRS_X1 << 5) | (_OSRS_X1 << 2) | _MODE_FORCED)
        start = time.ticks_ms()
        while self._read(_REG_STATUS, 1)[0] & _STATUS_MEASURING:
            if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                raise SensorError(_NAME, f"measurement not done within {timeout_ms} ms")
            time.sleep_ms(2)
        d = self._read(_REG_DATA, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        return adc_t, adc_p, adc_h

    def read(self, timeout_ms=50):
        """(t_centi_c, p_pa, h_q10): 0.01 °C, Pa, 1/1024 %RH (Bosch's integer outputs)."""
        adc_t, adc_p, adc_h = self.read_raw(timeout_ms)
        t = self.compensate_t(adc_t)  # sets t_fine, used by P and H
        return t, (self.compensate_p(adc_p) + 128) >> 8, self.compensate_h(adc_h)

    # §4.2.3, BME280_compensate_T_int32: 0.01 °C
    def compensate_t(self, adc_t):
        t1 = self.t1
        var1 = (((adc_t >> 3) - (t1 << 1)) * self.t2) >> 11
        var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * self.t3) >> 14
        self.t_fine = var1 + var2
        return (self.t_fine * 5 + 128) >> 8

    # §4.2.3, BME280_compensate_P_int64: Pa in Q24.8
    def compensate_p(self, adc_p):
        p2, p3, p4, p5, p6, p7, p8, p9 = self.p
        var1 = self.t_fine - 128000
        var2 = var1 * var1 * p6
        var2 = var2 + ((var1 * p5) << 17)
        var2 = var2 + (p4 << 35)
        var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
        var1 = (((1 << 47) + var1) * self.p1) >> 33
        if var1 == 0:
            return 0  # avoids a division by zero, as the datasheet does
        p = 1048576 - adc_p
        p = _cdiv(((p << 31) - var2) * 3125, var1)
        var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
        var2 = (p8 * p) >> 19
        return ((p + var1 + var2) >> 8) + (p7 << 4)

    # §4.2.3, bme280_compensate_H_int32: %RH in Q22.10
    def compensate_h(self, adc_h):
        v = self.t_fine - 76800
        a = (((adc_h << 14) - (self.h4 << 20) - (self.h5 * v)) + 16384) >> 15
        b = (((v * self.h6) >> 10) * (((v * self.h3) >> 11) + 32768)) >> 10
        b = ((b + 2097152) * self.h2 + 8192) >> 14
        v = a * b
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * self.h1) >> 4)
        v = 0 if v < 0 else v
        v = 419430400 if v > 419430400 else v
        return v >> 12
