"""Board-support shim: the `machine` module of the emulated ESP32 board (MicroPython unix port).

Placed ahead of the built-in on sys.path, it lets the firmware run byte-identical on the unix
port. The board is described by a JSON file named by the env var STREETSENSE_BOARD:

    {"uart": {"1": "/dev/pts/7"},          # UART id -> PTY slave path (sensor emulator)
     "i2c": {"0": "127.0.0.1:40123"},      # I2C id -> host:port of hil_tests/emulators/i2c_bus.py
     "unique_id": "240ac4000001"}          # optional, hex

Behaviour follows the ESP32 port where the firmware can see it: UART.read() returns None when
nothing arrives; an I2C address nobody answers raises OSError(ENODEV); constants carry the ESP32
values. Pin IRQs fire from the edges of the GPIO server named by the board file's "gpio" key.
reset() ends the process with exit status RESET_EXIT_STATUS so the rig can start it again
(with STREETSENSE_RESET_CAUSE set to the cause reset_cause() should report).
"""

import io
import json
import os
import select
import socket
import struct
import termios
import time

# ESP32 values (micropython ports/esp32/modmachine.c).
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_OP_W = 0x57  # b"W"
_OP_R = 0x52  # b"R"
_OP_S = 0x53  # b"S"

RESET_EXIT_STATUS = 86  # exit status of reset(): "the board asked to be restarted"
WDT_EXIT_STATUS = 87  # exit status when a late WDT.feed() shows the watchdog would have fired

_board_desc = None
_freq_hz = 160000000


def _board():
    global _board_desc
    if _board_desc is None:
        path = os.getenv("STREETSENSE_BOARD")
        if not path:
            raise OSError("STREETSENSE_BOARD is not set: point it at the board's JSON file")
        with open(path) as f:
            _board_desc = json.load(f)
    return _board_desc


def _lookup(kind, bus_id):
    try:
        return _board()[kind][str(bus_id)]
    except KeyError:
        raise ValueError(f"board file has no {kind} {bus_id}") from None


def reset():
    raise SystemExit(RESET_EXIT_STATUS)


def soft_reset():
    raise SystemExit(RESET_EXIT_STATUS)


def reset_cause():
    cause = os.getenv("STREETSENSE_RESET_CAUSE")
    return int(cause) if cause else PWRON_RESET


def unique_id():
    hexid = _board().get("unique_id", "240ac4000001")
    return bytes(int(hexid[i : i + 2], 16) for i in range(0, len(hexid), 2))


def freq(hz=None):
    global _freq_hz
    if hz is None:
        return _freq_hz
    _freq_hz = hz


def idle():
    time.sleep_ms(1)


class _Gpio:
    """The board's lines, from hil_tests/emulators/gpio.py (board file key "gpio": "host:port").

    Edges arrive ahead of time with the CLOCK_MONOTONIC microsecond they are due at (the unix
    port's ticks_us() counts the same clock). A reader thread holds them until then, spinning
    the last _GPIO_SPIN_US so the level changes within microseconds of its time, and runs the
    IRQ handlers the way the ESP32 port does: a hard handler (``hard=True``) at once in that
    thread, as an ISR preempts the VM (this unix port has no GIL: the two threads run in
    parallel, like an ISR on the second core); a soft handler through
    ``micropython.schedule``, which the main thread runs at its next bytecode branch, in
    ``time.sleep_ms`` or while asyncio waits on a ThreadSafeFlag. (The unix port's asyncio
    blocked in poll() on file descriptors alone does not wake for a scheduled callback: a soft
    handler then waits for the loop's next wake-up.)
    """

    def __init__(self, address):
        import _thread

        host, port = address.rsplit(":", 1)
        ai = socket.getaddrinfo(host, int(port))[0]
        self._s = socket.socket(ai[0], socket.SOCK_STREAM)
        self._s.connect(ai[-1])
        # Shared with the reader thread without a lock: single-slot stores only (no dict
        # resizing under a reader), each slot written by one side.
        self.levels = bytearray(b"\xff" * _GPIO_PINS)  # 0xFF: not driven by the environment
        self.pins = [None] * _GPIO_PINS  # Pin objects with a handler, by pin number
        self._queue = []  # edges to come, [due ticks_us, pin, level] by due time (reader's)
        self._rx = b""
        while not self._parse(self._s.recv(256)):
            pass  # the levels now and the edges to come, before anyone reads a pin
        self._fire_due(False)
        _thread.start_new_thread(self._reader, ())

    def _parse(self, chunk):
        """Queue the whole records in `chunk`; True once the snapshot's end record is seen."""
        if not chunk:
            raise OSError("GPIO emulator closed the connection")
        data = self._rx + chunk
        n = len(data) - len(data) % _GPIO_RECORD
        end = False
        for i in range(0, n, _GPIO_RECORD):
            pin, level, due = struct.unpack_from(">BBQ", data, i)
            if pin == 0xFF:
                end = True
                continue
            q = self._queue
            k = len(q)
            while k and time.ticks_diff(q[k - 1][0], due) > 0:
                k -= 1
            q.insert(k, [due, pin, level])
        self._rx = data[n:]
        return end

    def _fire_due(self, run_irqs):
        """Apply the edges that are due; microseconds until the next one, or None."""
        q = self._queue
        while q:
            wait_us = time.ticks_diff(q[0][0], time.ticks_us())
            if wait_us > _GPIO_SPIN_US:
                return wait_us
            while time.ticks_diff(q[0][0], time.ticks_us()) > 0:
                pass  # the last stretch: a poll() timeout only has millisecond steps
            _, pin, level = q.pop(0)
            old = self.levels[pin]
            self.levels[pin] = level
            p = self.pins[pin]
            if run_irqs and p is not None:
                p._edge(old, level)
        return None

    def _reader(self):
        poller = select.poll()
        poller.register(self._s, select.POLLIN)
        connected = True
        while connected or self._queue:
            wait_us = self._fire_due(True)
            # Wake at most a millisecond into the spin window (>= 1 ms: no busy polling).
            wait_ms = -1 if wait_us is None else (wait_us - _GPIO_SPIN_US + 999) // 1000
            if not connected:
                time.sleep_ms(wait_ms)
                continue
            for _ in poller.ipoll(wait_ms):  # ipoll: no list allocated per wake-up
                try:
                    self._parse(self._s.recv(256))
                except OSError:  # the environment went away: lines keep their last level
                    connected = False

    def send(self, pin, op):
        self._s.send(bytes((pin, op)))


_GPIO_PINS = 64
_GPIO_ARMED = 2
_GPIO_RECORD = 10  # pin, level, due µs (u64)
_GPIO_SPIN_US = 1500
_gpio_link = None


def _gpio():
    """The process's GPIO connection, or None on a board file without "gpio"."""
    global _gpio_link
    if _gpio_link is None:
        address = os.getenv("STREETSENSE_BOARD") and _board().get("gpio")
        if not address:
            return None
        _gpio_link = _Gpio(address)
    return _gpio_link


class Pin:
    """GPIO. With a "gpio" server in the board file, inputs read the level the environment
    drives (an undriven input reads its pull), IRQs fire on its edges and outputs are reported
    to it; without one, a pin just holds a level and no edge ever comes."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        self._handler = None
        self._trigger = 0
        self._hard = False
        self._gpio = _gpio()
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.mode != Pin.OUT and self._gpio is not None:
                level = self._gpio.levels[self.id]
                if level != 0xFF:
                    return level
            return self._value
        self._value = 1 if v else 0
        if self.mode == Pin.OUT and self._gpio is not None:
            self._gpio.send(self.id, self._value)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, priority=1, wake=None, hard=False):
        """Run `handler(pin)` on the edges in `trigger` (ESP32: soft unless `hard`)."""
        self._handler = handler
        self._trigger = trigger if handler is not None else 0
        self._hard = hard
        if self._gpio is not None:
            self._gpio.pins[self.id] = self if handler is not None else None
            if handler is not None:
                self._gpio.send(self.id, _GPIO_ARMED)

    def _edge(self, old, new):
        """Called by the reader thread when the line goes from `old` to `new`."""
        if old == 0xFF:
            old = self._value  # it read its pull until now
        if old == new or not self._trigger & (Pin.IRQ_RISING if new else Pin.IRQ_FALLING):
            return
        handler = self._handler
        if self._hard:
            try:
                handler(self)
            except Exception as e:  # the ESP32 prints it and keeps the IRQ
                print("Uncaught exception in IRQ callback handler:", repr(e))
            return
        import micropython

        while True:
            try:
                micropython.schedule(handler, self)
                return
            except RuntimeError:  # queue full: the main thread is busy; the edge waits
                time.sleep_ms(1)


class WDT:
    """Records feeds. No thread can bite on the unix port: a feed that comes later than the
    timeout ends the process with WDT_EXIT_STATUS (a hang without feeds is the rig's timeout)."""

    def __init__(self, id=0, timeout=5000):
        self.timeout_ms = timeout
        self.feeds = 0
        self.last_feed_ms = time.ticks_ms()

    def feed(self):
        now = time.ticks_ms()
        if time.ticks_diff(now, self.last_feed_ms) > self.timeout_ms:
            raise SystemExit(WDT_EXIT_STATUS)
        self.feeds += 1
        self.last_feed_ms = now


_STREAM_GET_FILENO = 10  # py/stream.h MP_STREAM_GET_FILENO


class UART(io.IOBase):
    """UART on a PTY (the sensor emulator holds the master). ESP32 semantics: read()/readinto()
    return None if nothing arrives within `timeout` ms (0 = don't wait). Pollable like the
    ESP32's, so asyncio.StreamReader/StreamWriter work on it (select.poll uses the PTY's fd)."""

    def __init__(
        self,
        id,
        baudrate=115200,
        bits=8,
        parity=None,
        stop=1,
        tx=None,
        rx=None,
        rxbuf=256,
        timeout=0,
        **kwargs,
    ):
        self.id = id
        self.baudrate = baudrate
        self.timeout = timeout
        self.rxbuf = rxbuf
        self._f = open(_lookup("uart", id), "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][6] = 0  # VMIN: a read returns what is there, possibly nothing
        attrs[6][5] = 0  # VTIME
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self._rx = b""

    def _drain(self, wait_ms=0):
        if self._poll.poll(wait_ms):
            chunk = self._f.read(256)
            while chunk:
                self._rx += chunk
                chunk = self._f.read(256) if self._poll.poll(0) else None
        if len(self._rx) > self.rxbuf:  # the ESP32 driver drops what its ring buffer can't hold
            self._rx = self._rx[: self.rxbuf]

    def any(self):
        self._drain()
        return len(self._rx)

    def read(self, nbytes=None):
        self._drain()
        if not self._rx and self.timeout:
            self._drain(self.timeout)
        if not self._rx:
            return None
        if nbytes is None:
            nbytes = len(self._rx)
        data, self._rx = self._rx[:nbytes], self._rx[nbytes:]
        return data

    def readinto(self, buf, nbytes=None):
        data = self.read(len(buf) if nbytes is None else nbytes)
        if data is None:
            return None
        buf[: len(data)] = data
        return len(data)

    def readline(self):
        self._drain()
        i = self._rx.find(b"\n")
        if i < 0:
            return self.read()
        data, self._rx = self._rx[: i + 1], self._rx[i + 1 :]
        return data

    def write(self, buf):
        return self._f.write(buf)

    def flush(self):
        pass

    def deinit(self):
        self._f.close()

    def ioctl(self, request, arg):
        if request == _STREAM_GET_FILENO:
            return self._f.fileno()
        return -1


class I2C:
    """I2C over a socket to hil_tests/emulators/i2c_bus.py. Request: op ('W', 'R' or 'S'),
    address, length u16 BE, then the bytes to write; reply: status (0, or the errno of a NACK),
    length u16 BE, the bytes read."""

    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.freq = freq
        host, port = _lookup("i2c", id).rsplit(":", 1)
        ai = socket.getaddrinfo(host, int(port))[0]
        self._s = socket.socket(ai[0], socket.SOCK_STREAM)
        self._s.connect(ai[-1])

    def _recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self._s.recv(n - len(out))
            if not chunk:
                raise OSError("I2C bus emulator closed the connection")
            out += chunk
        return out

    def _xfer(self, op, addr, data=b"", n=0):
        self._s.send(struct.pack(">BBH", op, addr, len(data) if data else n) + bytes(data))
        status, length = struct.unpack(">BH", self._recv(3))
        payload = self._recv(length) if length else b""
        if status:
            raise OSError(status)
        return payload

    def writeto(self, addr, buf, stop=True):
        self._xfer(_OP_W, addr, buf)
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        return self._xfer(_OP_R, addr, n=nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._xfer(_OP_R, addr, n=len(buf))
        buf[: len(data)] = data

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._xfer(_OP_W, addr, bytes([memaddr]) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        self._xfer(_OP_W, addr, bytes([memaddr]))
        return self._xfer(_OP_R, addr, n=nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf))

    def scan(self):
        return list(self._xfer(_OP_S, 0))
