"""MicroPython side of the shim tests: the raw `bluetooth` API, with results as JSON lines.

Usage: micropython mp_ble_shim.py BOARD_DIR
Registers a service with a notify characteristic T and two write characteristics: A with
the default buffer, B appending up to 64 bytes. A write to A prints A's value; the value
b"B?" prints B's (which that read clears).
"""

import sys

sys.path[:] = [sys.argv[1], ".frozen"]

import binascii  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import bluetooth  # noqa: E402

SERVICE = bluetooth.UUID("5ee5e000-0000-4000-8000-000000000000")
T = (bluetooth.UUID("5ee5e001-0000-4000-8000-000000000000"), bluetooth.FLAG_NOTIFY)
A = (bluetooth.UUID("5ee5e002-0000-4000-8000-000000000000"), bluetooth.FLAG_WRITE)
B = (bluetooth.UUID("5ee5e003-0000-4000-8000-000000000000"), bluetooth.FLAG_WRITE)

ble = bluetooth.BLE()
ble.active(True)
((t, a, b),) = ble.gatts_register_services(((SERVICE, (T, A, B)),))
ble.gatts_set_buffer(b, 64, True)


def say(**fields):
    print(json.dumps(fields))


def irq(event, data):
    if event == 1:
        say(event="connect", addr=binascii.hexlify(bytes(data[2])).decode())
    elif event == 3 and data[1] == a:
        value = ble.gatts_read(a)
        if value == b"B?":
            say(b=ble.gatts_read(b).decode())
        else:
            say(a=value.decode())


ble.irq(irq)
try:
    ble.gatts_notify(99, t, b"x")
except OSError as exc:
    say(notify_errno=exc.errno)
addr_type, addr = ble.config("mac")
say(mac=binascii.hexlify(addr).decode(), addr_type=addr_type, handles=[t, a, b])
ble.gap_advertise(20000, b"\x02\x01\x06")
while True:  # until the test kills the process; scheduled IRQs run during the sleeps
    time.sleep_ms(100)
