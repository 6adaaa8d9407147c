"""BLE benchmark on the virtual radio: frames/s through the BLE path, overhead per frame.

Run with ``.venv/bin/python benchmarks/ble_bench.py`` (``--quick`` for a short run). For
MTU 23 and 247, the real node firmware (``ssnode/ble_link.py`` under MicroPython, through the
board's ``bluetooth`` shim and its bumble peripheral) sends signed air-quality DATA frames
flat out to a plain ``BleakClient`` on the bumble backend, which deframes and checks them:

a. frames/s end to end through that path (encode + sign on the node included), and the
   same from a CPython bumble peripheral (the virtual link's own ceiling), as a ratio;
b. bytes above the frame on the air, per frame: COBS and the delimiter, the ATT
   notification header and L2CAP header of each notification (measured: notifications
   the central received per frame), and the link layer's per-packet bytes on the 1M PHY.

The virtual radio has no air time: (a) measures the software path, not a radio. The
machine is shared and noisy: each rate is the best of the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from aq_frame import KEY, air_quality_frame
from bleak import BleakClient, BleakScanner

from streetsense.gateway.transports.ble import NUS_RX, NUS_SERVICE, NUS_TX, parse_advert
from streetsense.hil import micropython
from streetsense.hil.ble.bleak_backend import BumbleAdapter, bumble_backends
from streetsense.hil.ble.nus import NUS_DEFINITION, node_advert
from streetsense.hil.ble.peripheral import IRQ_GATTS_WRITE, Peripheral
from streetsense.hil.ble.radio import VirtualRadio, static_address
from streetsense.hil.ble.rig import BleRig
from streetsense.hil.micropython import find_micropython, stage_protocol
from streetsense.hil.node import BOARD_SHIM, FIRMWARE
from streetsense.protocol import Deframer, cobs, parse_frame

BENCH_DIR = Path(__file__).resolve().parent
MP_SCRIPT = BENCH_DIR / "mp_ble_flood.py"
ATT_NOTIFY_HEADER = 3  # opcode + attribute handle
L2CAP_HEADER = 4  # length + channel id
LL_PACKET_1M = 10  # preamble 1 + access address 4 + LL header 2 + CRC 3 (no encryption)
LL_DATA_LENGTH = {23: 27, 247: 251}  # LL payload negotiated alongside each MTU


class Receiver:
    """Deframes notifications, checks every frame, counts notifications per frame."""

    def __init__(self, frames: int) -> None:
        self.expected = frames
        self.frames = 0
        self.notifications = 0
        self.first_at = 0.0
        self.done = asyncio.Event()
        self._deframer = Deframer()

    def on_notify(self, _characteristic: object, data: bytearray) -> None:
        if not self.notifications:
            self.first_at = time.perf_counter()
        self.notifications += 1
        for item in self._deframer.feed(bytes(data)):
            if isinstance(item, Exception):
                raise item
            parse_frame(bytes(item), lambda _node_id: KEY)
            self.frames += 1
        if self.frames >= self.expected:
            self.done.set()


async def receive(adapter: BumbleAdapter, node_id: int, frames: int) -> tuple[float, float]:
    """Connect to ``node_id``, start its stream, take ``frames``.

    Returns (frames/s, notifications per frame)."""
    scanner, client_backend = bumble_backends(adapter)

    def is_node(_device: object, adv: object) -> bool:
        advert = parse_advert(adv.manufacturer_data)  # type: ignore[attr-defined]
        return advert is not None and advert.node_id == node_id

    device = await BleakScanner.find_device_by_filter(is_node, timeout=10,
                                                      service_uuids=[NUS_SERVICE],
                                                      backend=scanner)  # fmt: skip
    assert device is not None, f"node {node_id} is not advertising"
    receiver = Receiver(frames)
    async with BleakClient(device, backend=client_backend) as client:
        await client.start_notify(NUS_TX, receiver.on_notify)
        await client.write_gatt_char(NUS_RX, b"\0", response=True)
        await asyncio.wait_for(receiver.done.wait(), 120)
        elapsed = time.perf_counter() - receiver.first_at
    return frames / elapsed, receiver.notifications / receiver.frames


async def micropython_rate(rig: BleRig, workdir: Path, mtu: int, frames: int,
                           run: int) -> tuple[float, float]:  # fmt: skip
    """The firmware's BleTransport sending through the shim: (frames/s, notifications/frame)."""
    unique_id = f"240ac4be{mtu:02x}{run:02x}"
    board = workdir / f"board-{mtu}-{run}.json"
    board.write_text(json.dumps(rig.board_entries(unique_id)))
    node_id = 1000 + mtu * 10 + run
    proc = await micropython.start(
        MP_SCRIPT, BOARD_SHIM, FIRMWARE, workdir / "lib", str(node_id), str(mtu), str(frames),
        board=board, stdout=asyncio.subprocess.PIPE)
    adapter = BumbleAdapter(transport=rig.central_transport(), mtu=247)
    try:
        assert proc.stdout is not None and (await proc.stdout.readline()).strip() == b"ready"
        return await receive(adapter, node_id, frames)
    finally:
        await adapter.close()
        proc.kill()
        await proc.wait()


async def cpython_rate(mtu: int, frames: int) -> float:
    """A bumble peripheral in CPython notifying the same frames: the virtual link's ceiling."""
    radio = VirtualRadio()
    address = static_address(b"\x24\x0a\xc4\xcc\x00" + bytes([mtu & 0xFF]))
    started = asyncio.Event()  # the central subscribed and wrote its start byte

    def on_event(code: int, _data: object, _value: object) -> None:
        if code == IRQ_GATTS_WRITE:
            started.set()

    peripheral = Peripheral(radio.host_device("cpython-node", address), on_event)
    ((tx, _rx),) = peripheral.register_services([NUS_DEFINITION])
    peripheral.set_mtu(mtu)
    await peripheral.power_on()
    await peripheral.advertise(20000, node_advert(7, "air-quality"), b"")
    wire = [air_quality_frame(seq).encode(KEY) for seq in range(frames)]

    async def send() -> None:
        await started.wait()
        handle, connection = next(iter(peripheral.connections.items()))
        step = connection.att_mtu - ATT_NOTIFY_HEADER
        for data in wire:
            for start in range(0, len(data), step):
                await peripheral.notify(handle, tx, data[start : start + step])

    adapter = BumbleAdapter(device=radio.host_device("gw", static_address(b"\xc0\0\0\0\0\1")))
    sender = asyncio.create_task(send())
    try:
        rate, _ = await receive(adapter, 7, frames)
    finally:
        sender.cancel()
        await adapter.close()
        await radio.close()
    return rate


def overhead(frame_len: int, wire_len: int, mtu: int, notifications: float) -> dict[str, float]:
    """Bytes above the frame on the air, per frame, at ``mtu``."""
    per_notification = ATT_NOTIFY_HEADER + L2CAP_HEADER
    step = mtu - ATT_NOTIFY_HEADER
    payloads = [min(step, wire_len - start) for start in range(0, wire_len, step)]
    ll_packets = sum(math.ceil((p + per_notification) / LL_DATA_LENGTH[mtu]) for p in payloads)
    return {
        "cobs": wire_len - frame_len,
        "att_l2cap": notifications * per_notification,
        "ll": ll_packets * LL_PACKET_1M,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    frames, repeats = (150, 1) if args.quick else (1500, 3)
    if find_micropython() is None:
        print("MicroPython: none found (set MICROPYTHON): the node path cannot be measured")
        return 1
    wire = air_quality_frame(1).encode(KEY)  # COBS-encoded, with the delimiter
    frame = cobs.decode(wire[:-1])
    print(f"frame: signed air-quality DATA, {len(frame)} bytes; on the stream {len(wire)} bytes")
    with tempfile.TemporaryDirectory(prefix="ble-bench-") as tmp, BleRig() as rig:
        workdir = Path(tmp)
        stage_protocol(workdir / "lib")
        for mtu in (23, 247):
            node_rates, per_frame = [], 0.0
            for run in range(repeats):
                rate, per_frame = await micropython_rate(rig, workdir, mtu, frames, run)
                node_rates.append(rate)
            ceiling = max([await cpython_rate(mtu, frames) for _ in range(repeats)])
            node = max(node_rates)
            cost = overhead(len(frame), len(wire), mtu, per_frame)
            total = sum(cost.values())
            print(f"MTU {mtu}:")
            print(f"   MicroPython node -> bleak:   {node:8.0f} frames/s")
            print(f"   CPython peripheral -> bleak: {ceiling:8.0f} frames/s")
            print(f"ratio node/ceiling MTU {mtu}: {node / ceiling:.2f}")
            print(f"   notifications per frame: {per_frame:.0f} (payload {mtu - 3} bytes each)")
            print(f"overhead per frame MTU {mtu}: {total:.0f} bytes = COBS+delimiter "
                  f"{cost['cobs']:.0f} + ATT/L2CAP {cost['att_l2cap']:.0f} + LL 1M PHY "
                  f"{cost['ll']:.0f} ({100 * total / len(frame):.0f}% of the frame)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
