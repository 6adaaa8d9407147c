"""Plantower PMS5003 particulate sensor over UART (9600 8N1).

Source: Plantower "Digital universal particle concentration sensor PMS5003 series data manual"
(2016, V2.5), Appendix I (transport protocol, active mode) and Appendix II (commands).

Data frame, 32 bytes: 0x42 0x4D, frame length u16 BE (= 2*13 + 2 = 28), 13 data words u16 BE,
checksum u16 BE = 16-bit sum of bytes 0..29. Words at byte offsets 4/6/8 are PM1.0/2.5/10 at
"CF=1, standard particle"; 10/12/14 are the same under atmospheric environment; 16..26 the
particles beyond 0.3/0.5/1.0/2.5/5/10 µm in 0.1 L of air; 28 is reserved.
Commands, 7 bytes: 0x42 0x4D CMD DATAH DATAL LRCH LRCL, LRC = sum of bytes 0..4.
E1 00/01 = passive/active mode, E2 00 00 = read in passive mode, E4 00/01 = sleep/wake.
After wake the fan needs ~30 s before readings are stable (datasheet: "stable data should be got
at least 30 seconds after the sensor wakeup"): waiting is the caller's business.

Mode and sleep commands are answered with a reply frame of length 4: 42 4D 00 04 CMD DATA SUM
(as Adafruit's adafruit_pm25 reads it); poll() checks and records it in `reply` so a caller can
confirm the command took. Wake is not answered: the sensor restarts, in active mode, and loses
commands for ~3 s (adafruit_pm25/uart.py, _cmd_wakeup).
"""

from micropython import const

from .errors import ChecksumError
from .uart_frames import UartFrames

_NAME = "PMS5003"
_H1 = const(0x42)
_H2 = const(0x4D)
_DATA_LEN = const(28)  # length field of a data frame
_ACK_LEN = const(4)  # length field of a command reply
_CMD_MODE = const(0xE1)
_CMD_READ = const(0xE2)
_CMD_SLEEP = const(0xE4)
_BUF_SIZE = const(64)  # two frames: enough to resync on one without losing the next


class PMS5003(UartFrames):
    """Driver; `uart` is anything with read(n)/write(b)/any() (machine.UART on the ESP32).

    read(timeout_ms=None) (from UartFrames): blocking read of one frame, requested first in
    passive mode; SensorMissing if none within timeout_ms, ChecksumError for a damaged one.
    """

    NAME = _NAME

    def __init__(self, uart, timeout_ms=3000):
        super().__init__(uart, timeout_ms, _BUF_SIZE, 7)
        self.passive = False  # the sensor powers up in active mode
        self.reply = 0  # CMD << 8 | DATA of the last reply frame seen (0: none)

    # -- commands ---------------------------------------------------------------------------
    def _send(self, cmd, data):
        c = self._cmd
        c[0] = _H1
        c[1] = _H2
        c[2] = cmd
        c[3] = 0
        c[4] = data
        s = _H1 + _H2 + cmd + data
        c[5] = s >> 8
        c[6] = s & 0xFF
        self._uart.write(c)

    def set_passive(self):
        """Passive mode: the sensor sends a frame only when asked (read())."""
        self._send(_CMD_MODE, 0)
        self.passive = True

    def set_active(self):
        """Active mode: the sensor streams frames on its own (default after power-up)."""
        self._send(_CMD_MODE, 1)
        self.passive = False

    def sleep(self):
        """Stop the fan and laser; the sensor then sends nothing until wake()."""
        self._send(_CMD_SLEEP, 0)

    def wake(self):
        """Start the fan and laser. The sensor restarts: back in active mode, deaf for ~3 s."""
        self._send(_CMD_SLEEP, 1)
        self.passive = False

    def request(self):
        """Ask for one frame (passive mode)."""
        self._send(_CMD_READ, 0)

    # -- receiving (buffering, flush() and read() are UartFrames') -------------------------
    def poll(self):
        """Non-blocking: the 12 data words if a whole frame is in, else None: PM1.0, PM2.5, PM10
        at CF=1 (µg/m³), the same atmospheric, then particles beyond 0.3, 0.5, 1.0, 2.5, 5 and
        10 µm per 0.1 L. A reply frame on the way is recorded in `reply`.

        Raises ChecksumError for a damaged frame (already dropped: the next call goes on with
        the bytes after its header, so the following good frame is still found).
        """
        self._fill()
        buf = self._buf
        while True:
            n = self._n
            i = 0
            while i < n and not (buf[i] == _H1 and (i + 1 == n or buf[i + 1] == _H2)):
                i += 1
            self._drop(i)  # garbage before a header
            if self._n < 4:
                return None
            length = (buf[2] << 8) | buf[3]
            if length != _DATA_LEN and length != _ACK_LEN:
                self._drop(1)  # "42 4D" inside garbage: not a frame start
                continue
            total = 4 + length
            if self._n < total:
                return None
            s = 0
            for j in range(total - 2):
                s += buf[j]
            got = (buf[total - 2] << 8) | buf[total - 1]
            if s & 0xFFFF != got:
                self._drop(1)
                raise ChecksumError(_NAME, s & 0xFFFF, got)
            if length == _ACK_LEN:
                self.reply = (buf[4] << 8) | buf[5]
                self._drop(total)
                continue
            words = tuple((buf[j] << 8) | buf[j + 1] for j in range(4, 28, 2))
            self._drop(total)
            return words

    def _on_request(self):
        return self.passive

    def _ask(self):
        self.request()
