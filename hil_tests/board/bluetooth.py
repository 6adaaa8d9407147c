"""Board-support shim: the `bluetooth` module of the emulated ESP32 board (MicroPython unix port).

The unix port has no radio and cannot run bumble, so this module forwards the subset of
MicroPython's BLE API that the firmware uses to a CPython peripheral host
(hil_tests/ble/peripheral_host.py), which runs a bumble peripheral on the virtual radio. The
board JSON names it: ``"ble": "127.0.0.1:40125"``.

Semantics follow MicroPython's NimBLE port where the firmware can see them:
- IRQ handlers run on the main thread through ``micropython.schedule`` (as on the ESP32);
  a reader thread only takes messages off the socket.
- ``gatts_register_services`` returns the real ATT value handles.
- A remote write lands in the value's buffer: 20 bytes by default, replaced on each write,
  or appended up to ``len`` after ``gatts_set_buffer(handle, len, True)``; ``gatts_read``
  of an appended value clears it. Longer writes are truncated.
- ``gatts_notify`` sends regardless of subscription; the stack truncates to MTU-3. It raises
  ``OSError(ENOTCONN)`` for a connection handle that is not connected.
- ``config(mtu=...)`` is the MTU offered when the central starts the ATT MTU exchange.

Wire to the host: one JSON object per line; bytes as hex. Requests carry an ``id`` and get
one reply (``{"id", "ok"}`` or ``{"id", "err": errno}``); ``notify`` and ``write`` are sent
without a reply (ordered on the socket like the stack's queue). Events: ``{"ev", "args",
"value"}``.
"""

import _thread
import binascii
import json
import socket
import time

import machine
import micropython

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_DEFAULT_BUFFER = 20
_ENOTCONN = 107
_IPPROTO_TCP = 6  # Linux values; the unix port's socket module does not name them
_TCP_NODELAY = 1
_EIO = 5


class UUID:
    """A 16-bit or 128-bit UUID; compares by value, prints like MicroPython's."""

    def __init__(self, value):
        if isinstance(value, int):
            self._text = f"{value:04X}"
        elif isinstance(value, UUID):
            self._text = value._text
        else:
            self._text = value.upper()

    def __eq__(self, other):
        return isinstance(other, UUID) and other._text == self._text

    def __hash__(self):
        return hash(self._text)

    def __str__(self):
        return self._text

    def __repr__(self):
        return f"UUID('{self._text}')" if len(self._text) > 4 else f"UUID(0x{self._text})"


def _hex(data):
    return binascii.hexlify(bytes(data)).decode()


class _Value:
    __slots__ = ("append", "data", "size")

    def __init__(self):
        self.data = b""
        self.size = _DEFAULT_BUFFER
        self.append = False


class BLE:
    """The singleton BLE object (``bluetooth.BLE()`` returns the same one)."""

    _instance = None

    def __new__(cls):
        if BLE._instance is None:
            BLE._instance = object.__new__(cls)
            BLE._instance._init()
        return BLE._instance

    def _init(self):
        self._sock = None
        self._active = False
        self._handler = None
        self._values = {}
        self._connections = set()
        self._config = {"mtu": 256, "gap_name": "MPY ESP32", "mac": (1, b"\0" * 6)}
        self._next_id = 0
        self._lock = _thread.allocate_lock()  # guards _waiters and _events (no GIL here)
        self._waiters = {}  # request id -> [lock held until the reply, reply]
        self._events = []
        self._scheduled = False

    # -- connection to the peripheral host ------------------------------------------------

    def _connect(self):
        board = machine._board()
        address = board.get("ble")
        if not address:
            raise OSError("board file has no \"ble\" entry (host:port of the peripheral host)")
        host, port = address.rsplit(":", 1)
        ai = socket.getaddrinfo(host, int(port))[0]
        self._sock = socket.socket(ai[0], socket.SOCK_STREAM)
        self._sock.connect(ai[-1])
        # Nagle would hold each small message until the host's delayed ACK (~40 ms).
        self._sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        _thread.start_new_thread(self._reader, ())
        return board.get("unique_id", "240ac4000001")

    def _send(self, message):
        self._sock.write(json.dumps(message) + "\n")

    def _call(self, op, **args):
        if self._sock is None:
            raise OSError(_EIO)
        self._next_id += 1
        waiter = [_thread.allocate_lock(), None]
        waiter[0].acquire()
        with self._lock:
            self._waiters[self._next_id] = waiter
        args["op"] = op
        args["id"] = self._next_id
        self._send(args)
        waiter[0].acquire()  # the reader releases it with the reply (or on a lost host)
        reply = waiter[1]
        if "err" in reply:
            raise OSError(reply["err"])
        return reply["ok"]

    def _answer(self, request_id, reply):
        with self._lock:
            waiter = self._waiters.pop(request_id, None)
        if waiter is not None:
            waiter[1] = reply
            waiter[0].release()

    def _reader(self):
        sock = self._sock
        while True:
            try:
                line = sock.readline()
            except OSError:
                line = b""
            if not line:  # the host is gone: fail every pending request
                for request_id in list(self._waiters):
                    self._answer(request_id, {"err": _EIO})
                return
            message = json.loads(line)
            if "id" in message:
                self._answer(message["id"], message)
                continue
            with self._lock:
                self._events.append(message)
                if self._scheduled:
                    continue
                self._scheduled = True
            while True:
                try:
                    micropython.schedule(self._dispatch, None)
                    break
                except RuntimeError:  # the queue is full (GPIO IRQs too): let the VM drain it
                    time.sleep_ms(1)

    def _dispatch(self, _):
        while True:
            with self._lock:
                if not self._events:
                    self._scheduled = False
                    return
                message = self._events.pop(0)
            try:
                self._event(message["ev"], message["args"], message.get("value"))
            except Exception as e:  # the ESP32 prints it; later events are still delivered
                print("Uncaught exception in IRQ callback handler:", repr(e))

    def _event(self, event, args, value):
        if event == _IRQ_CENTRAL_CONNECT:
            self._connections.add(args[0])
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self._connections.discard(args[0])
        elif event == _IRQ_GATTS_WRITE:
            self._store(args[1], binascii.unhexlify(value))
        if event in (_IRQ_CENTRAL_CONNECT, _IRQ_CENTRAL_DISCONNECT):
            args = (args[0], args[1], memoryview(binascii.unhexlify(args[2])))
        if self._handler is not None:
            self._handler(event, tuple(args))

    def _store(self, handle, data):
        value = self._values.get(handle)
        if value is None:
            return
        if value.append:
            data = value.data + data
        value.data = data[: value.size]

    # -- the MicroPython API ----------------------------------------------------------------

    def active(self, active=None):
        if active is None:
            return self._active
        if active and not self._active:
            if self._sock is None:
                unique_id = self._connect()
            else:
                unique_id = ""
            config = self._config
            mac = self._call("active", active=True, unique_id=unique_id, mtu=config["mtu"],
                             gap_name=config["gap_name"])  # fmt: skip
            self._config["mac"] = (1, binascii.unhexlify(mac))
        elif not active and self._active:
            self._call("active", active=False)
            self._connections = set()
        self._active = bool(active)
        return self._active

    def config(self, *param, **kwargs):
        if param:
            if param[0] not in self._config:
                raise ValueError("unknown config param")
            return self._config[param[0]]
        for key in kwargs:
            if key not in ("mtu", "gap_name"):
                raise ValueError("unknown config param")
            self._config[key] = kwargs[key]
        if self._active:
            self._call("config", **kwargs)

    def irq(self, handler):
        self._handler = handler

    def gatts_register_services(self, services):
        definitions = [
            [str(uuid), [[str(c[0]), c[1]] for c in characteristics]]
            for uuid, characteristics in services
        ]
        handles = self._call("register", services=definitions)
        for service in handles:
            for handle in service:
                self._values[handle] = _Value()
        return tuple(tuple(service) for service in handles)

    def gatts_set_buffer(self, value_handle, len, append=False):
        value = self._values[value_handle]
        value.size = len
        value.append = append

    def gatts_read(self, value_handle):
        value = self._values[value_handle]
        data = value.data
        if value.append:
            value.data = b""
        return data

    def gatts_write(self, value_handle, data, send_update=False):
        data = bytes(data)
        self._values[value_handle].data = data
        self._send({"op": "write", "handle": value_handle, "data": _hex(data),
                    "update": send_update})  # fmt: skip

    def gatts_notify(self, conn_handle, value_handle, data=None):
        if conn_handle not in self._connections:
            raise OSError(_ENOTCONN)
        if data is None:
            data = self._values[value_handle].data
        self._send({"op": "notify", "conn": conn_handle, "handle": value_handle,
                    "data": _hex(data)})  # fmt: skip

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self._call("advertise", interval_us=interval_us,
                   adv_data=None if adv_data is None else _hex(adv_data),
                   resp_data=None if resp_data is None else _hex(resp_data),
                   connectable=connectable)  # fmt: skip

    def gap_disconnect(self, conn_handle):
        return self._call("disconnect", conn=conn_handle)
