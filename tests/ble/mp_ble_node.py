"""MicroPython side of the BLE tests: a node's BleTransport answering COBS frames.

Usage: micropython mp_ble_node.py BOARD_DIR FIRMWARE_DIR PROTOCOL_DIR NODE_ID MTU
Every frame the central sends comes back COBS-framed with its bytes reversed; the line
"ready" is printed once the transport advertises, and "counters {...}" after each frame.
"""

import sys

sys.path[:] = [sys.argv[1], sys.argv[2], sys.argv[3], ".frozen"]  # board shims first

import asyncio  # noqa: E402
import json  # noqa: E402

import bluetooth  # noqa: E402
from ssnode.ble_link import BleTransport  # noqa: E402

from streetsense.protocol import cobs  # noqa: E402


async def main():
    transport = BleTransport(bluetooth.BLE(), int(sys.argv[4]), "air-quality", mtu=int(sys.argv[5]),
                             adv_interval_us=20000)  # fmt: skip
    print("ready")
    pending = b""
    while True:
        pending += await transport.read()
        while b"\0" in pending:
            encoded, pending = pending.split(b"\0", 1)
            if not encoded:
                continue
            frame = cobs.decode(encoded)
            await transport.write(cobs.encode_delimited(bytes(reversed(frame))))
            print("counters", json.dumps(transport.counters), "mtu", transport.mtu)


asyncio.run(main())
