"""Board-support shim: the `machine` module of the emulated ESP32 board (MicroPython unix port).

Placed ahead of the built-in on sys.path, it lets the firmware run byte-identical on the unix
port. The board is described by a JSON file named by the env var STREETSENSE_BOARD:

    {"uart": {"1": "/dev/pts/7"},          # UART id -> PTY slave path (sensor emulator)
     "i2c": {"0": "127.0.0.1:40123"},      # I2C id -> host:port of hil_tests/emulators/i2c_bus.py
     "unique_id": "240ac4000001"}          # optional, hex

Behaviour follows the ESP32 port where the firmware can see it: UART.read() returns None when
nothing arrives; an I2C address nobody answers raises OSError(ENODEV); constants carry the ESP32
values. What the unix port cannot do is explicit: Pin.irq() raises NotImplementedError.
reset() ends the process with exit status RESET_EXIT_STATUS so the rig can start it again
(with STREETSENSE_RESET_CAUSE set to the cause reset_cause() should report).
"""

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


class Pin:
    """GPIO stand-in: holds a level; no electrical model."""

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
        if value is not None:
            self._value = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0

    def on(self):
        self._value = 1

    def off(self):
        self._value = 0

    def irq(self, handler=None, trigger=3):
        raise NotImplementedError(
            "Pin.irq is not emulated yet: GPIO edge delivery to the unix port is a follow-up "
            "(hil_tests/board: Pin IRQs from the traffic-detector emulator)"
        )


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


class UART:
    """UART on a PTY (the sensor emulator holds the master). ESP32 semantics: read()/readinto()
    return None if nothing arrives within `timeout` ms (0 = don't wait)."""

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
