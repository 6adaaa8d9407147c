"""Nova Fitness SDS011 particulate sensor over UART (9600 8N1).

Sources: Nova Fitness "SDS011 Laser PM2.5 Sensor specification" V1.3 (data frame) and
"Laser Dust Sensor Control Protocol" V1.3 (commands and replies).

Data frame, 10 bytes: AA C0 PM25_L PM25_H PM10_L PM10_H ID1 ID2 CS AB; values little-endian in
0.1 µg/m³; CS = sum of bytes 2..7 & 0xFF. Example: 12.3 / 45.6 µg/m³, id A1B2 →
AA C0 7B 00 C8 01 B2 A1 97 AB.
Command, 19 bytes: AA B4 CMD d1..d12 ID_L ID_H CS AB, CS = sum of bytes 2..16 & 0xFF, ID FFFF
addresses every sensor. 02 reporting mode (d1=1 set, d2=0 active / 1 query), 04 query data,
06 sleep/work (d1=1 set, d2=0 sleep / 1 work), 08 working period (d1=1 set, d2=0 continuous /
1-30 minutes: work 30 s, then sleep the rest; kept by the sensor over power cycles). Replies:
AA C5 CMD d1 d2 d3 ID ID CS AB (10 bytes), recorded in `reply` so a caller can confirm that a
command took; a query is answered with a data frame. A sleeping sensor hears only 06.
"""

from micropython import const

from .errors import ChecksumError
from .uart_frames import UartFrames

_NAME = "SDS011"
_HEAD = const(0xAA)
_TAIL = const(0xAB)
_DATA = const(0xC0)
_REPLY = const(0xC5)
_CMD = const(0xB4)
_CMD_MODE = const(0x02)
_CMD_QUERY = const(0x04)
_CMD_SLEEP = const(0x06)
_CMD_PERIOD = const(0x08)
_BUF_SIZE = const(40)


class SDS011(UartFrames):
    """Driver; `uart` is anything with read(n)/write(b)/any() (machine.UART on the ESP32).

    read(timeout_ms=None) (from UartFrames): blocking read of one data frame, queried first in
    query mode; SensorMissing if none within timeout_ms, ChecksumError for a damaged one.
    """

    NAME = _NAME

    def __init__(self, uart, timeout_ms=3000):
        super().__init__(uart, timeout_ms, _BUF_SIZE, 19)
        self.query_mode = False  # the sensor powers up reporting once a second
        self.device_id = None  # from the last good frame (ID1 | ID2 << 8)
        self.reply = 0  # CMD << 16 | d1 << 8 | d2 of the last AA C5 reply seen (0: none)

    def _send(self, cmd, d1=0, d2=0):
        c = self._cmd
        for i in range(19):
            c[i] = 0
        c[0] = _HEAD
        c[1] = _CMD
        c[2] = cmd
        c[3] = d1
        c[4] = d2
        c[15] = 0xFF  # device id FFFF: any sensor on this UART
        c[16] = 0xFF
        s = 0
        for i in range(2, 17):
            s += c[i]
        c[17] = s & 0xFF
        c[18] = _TAIL
        self._uart.write(c)

    def set_query_mode(self):
        """Report only when queried (read() then sends the query command)."""
        self._send(_CMD_MODE, 1, 1)
        self.query_mode = True

    def set_active_mode(self):
        self._send(_CMD_MODE, 1, 0)
        self.query_mode = False

    def sleep(self):
        """Fan and laser off; the sensor then reports nothing until work()."""
        self._send(_CMD_SLEEP, 1, 0)

    def work(self):
        self._send(_CMD_SLEEP, 1, 1)

    def query(self):
        self._send(_CMD_QUERY)

    def set_working_period(self, minutes):
        """0: measure continuously (the factory setting); 1-30: work 30 s every n minutes."""
        self._send(_CMD_PERIOD, 1, minutes)

    def poll(self):
        """Non-blocking: (pm2_5, pm10) in 0.1 µg/m³ if a whole data frame is in, else None.

        Raises ChecksumError for a damaged frame (dropped; the next call resyncs after it).
        """
        self._fill()
        buf = self._buf
        while True:
            n = self._n
            i = 0
            while i < n and buf[i] != _HEAD:
                i += 1
            self._drop(i)
            if self._n < 10:
                if self._n >= 2 and buf[1] != _DATA and buf[1] != _REPLY:
                    self._drop(1)
                    continue
                return None
            if (buf[1] != _DATA and buf[1] != _REPLY) or buf[9] != _TAIL:
                self._drop(1)  # an 0xAA inside garbage
                continue
            s = 0
            for j in range(2, 8):
                s += buf[j]
            if s & 0xFF != buf[8]:
                got = buf[8]
                self._drop(1)
                raise ChecksumError(_NAME, s & 0xFF, got)
            if buf[1] == _REPLY:
                self.reply = (buf[2] << 16) | (buf[3] << 8) | buf[4]
                self._drop(10)
                continue
            self.device_id = buf[6] | (buf[7] << 8)
            pm = (buf[2] | (buf[3] << 8), buf[4] | (buf[5] << 8))
            self._drop(10)
            return pm

    def _on_request(self):
        return self.query_mode

    def _ask(self):
        self.query()
