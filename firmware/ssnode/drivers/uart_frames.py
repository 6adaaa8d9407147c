"""Receive side shared by the UART sensor drivers: a preallocated buffer that is filled from
the UART without blocking, bytes dropped from its front while resyncing on a frame header, and
the bounded blocking read() around the driver's own non-blocking poll().

A driver subclasses UartFrames and provides NAME (for its errors), poll() (parse one frame from
self._buf[:self._n], or None), and, for sensors that can be asked for a frame, _on_request()
(True while they send only when asked) and _ask() (send that request).
"""

import time

from .errors import SensorMissing


class UartFrames:
    """Base of a UART driver; `uart` is anything with read(n)/write(b)/any()."""

    NAME = "UART sensor"

    def __init__(self, uart, timeout_ms, buf_size, cmd_size):
        self._uart = uart
        self.timeout_ms = timeout_ms
        self._buf = bytearray(buf_size)
        self._size = buf_size
        self._n = 0  # bytes held in _buf
        self._cmd = bytearray(cmd_size)  # the command being sent

    def _fill(self):
        avail = self._uart.any()
        space = self._size - self._n
        if avail and space:
            data = self._uart.read(min(avail, space))
            if data:
                n = self._n
                self._buf[n : n + len(data)] = data
                self._n = n + len(data)

    def _drop(self, k):
        n = self._n
        if k >= n:
            self._n = 0
        elif k:
            self._buf[: n - k] = self._buf[k:n]
            self._n = n - k

    def flush(self):
        """Discard everything received so far."""
        self._n = 0
        while self._uart.any():
            self._uart.read(self._size)

    def poll(self):
        """Non-blocking: the decoded frame if a whole one is in, else None (the driver's)."""
        raise NotImplementedError

    def _on_request(self):
        """True while the sensor sends a frame only when asked (then read() asks first)."""
        return False

    def _ask(self):
        """Ask the sensor for one frame."""

    def read(self, timeout_ms=None):
        """Blocking read of one frame; a sensor that sends only when asked is asked first.

        Raises SensorMissing if no good frame arrives within timeout_ms, ChecksumError if a
        damaged one does (call again for the next).
        """
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        if self._on_request():
            self.flush()  # a frame left from before is not the answer to this request
            self._ask()
        start = time.ticks_ms()
        while True:
            frame = self.poll()
            if frame is not None:
                return frame
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                raise SensorMissing(self.NAME, f"no data frame within {timeout_ms} ms")
            time.sleep_ms(5)
