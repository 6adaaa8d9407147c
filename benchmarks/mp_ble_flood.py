"""MicroPython side of the BLE benchmark: a node's BleTransport sending DATA frames flat out.

    micropython benchmarks/mp_ble_flood.py BOARD_DIR FIRMWARE_DIR PKGROOT NODE_ID MTU FRAMES

Prints "ready" once advertising; after the central's first write (it subscribed), encodes,
signs and writes FRAMES air-quality DATA frames back to back (no ACKs: the link itself is
measured), then prints "done".
"""

import sys

BENCH_DIR = sys.path[0]
sys.path[:] = [sys.argv[1], sys.argv[2], sys.argv[3], BENCH_DIR, ".frozen"]

import asyncio  # noqa: E402

import bluetooth  # noqa: E402
from aq_frame import KEY, air_quality_frame  # noqa: E402
from ssnode.ble_link import BleTransport  # noqa: E402


async def main():
    node_id, mtu, frames = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    transport = BleTransport(bluetooth.BLE(), node_id, "air-quality", mtu=mtu,
                             adv_interval_us=20000)  # fmt: skip
    print("ready")
    await transport.read()  # the central's start-of-stream write
    for seq in range(1, frames + 1):
        await transport.write(air_quality_frame(seq).encode(KEY))  # COBS + delimiter included
    print("done")
    await asyncio.sleep(3600)  # keep the connection until the benchmark kills the process


asyncio.run(main())
