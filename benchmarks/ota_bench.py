"""Firmware update benchmark: the time to update one node, and a street of them (issue 22).

Run with ``.venv/bin/python benchmarks/ota_bench.py`` (``--quick``: a street of 3, not 20).
The real firmware on emulated boards, a real gateway (in-process) and mosquitto; the bundle
is the repository's firmware compiled by mpy-cross (with another version string). The time
is from the gateway's start of the transfer to the node's ``confirmed`` (received, verified,
switched, rebooted, HELLO acknowledged), as published on ``<node>/ota``.

a. one node on serial at 115,200 baud (8N1: the link relay delivers 10 bits a byte at that
   rate); baseline in the same run: the same update on an unpaced link (the PTY's speed),
   and the bundle's bare wire time at 115,200 baud;
b. one node over BLE at ATT MTU 23 on the virtual radio. The virtual radio has no air
   time: this measures the software path (20-byte writes), not a radio;
c. a street of 20 nodes (each on its own serial link at 115,200 baud, one gateway), all
   started together; ratio to (a).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from streetsense.gateway.bundles import Bundle, parse_bundle
from streetsense.gateway.config import (
    BleSection,
    GatewayConfig,
    GatewaySection,
    HttpSection,
    JournalSection,
    MqttSection,
    SerialPort,
)
from streetsense.gateway.service import Gateway
from streetsense.hil.ble.bleak_backend import gateway_settings
from streetsense.hil.ble.rig import BleRig
from streetsense.hil.broker import Mosquitto
from streetsense.hil.node import EmulatedNode
from streetsense.hil.observer import MqttObserver
from streetsense.node_sources import firmware_dir
from streetsense.tools.bundle import build_bundle

BAUD = 115200
KEY = bytes(range(32))
VERSION = "0.2.0-bench"


def make_bundle(workdir: Path) -> Bundle:
    tree = workdir / "firmware"
    shutil.copytree(firmware_dir(), tree, ignore=shutil.ignore_patterns("__pycache__"))
    node_py = tree / "ssnode" / "node.py"
    node_py.write_text(node_py.read_text().replace('FIRMWARE_VERSION = "0.1.0"',
                                                   f'FIRMWARE_VERSION = "{VERSION}"'))
    return parse_bundle(build_bundle(tree))


def registry(path: Path, count: int, link: str) -> Path:
    path.write_text("".join(f'[[node]]\nid = {i}\nname = "HN-{i:04d}"\nkind = "air-quality"\n'
                            f'key = "{KEY.hex()}"\nlink = "{link}"\n'
                            for i in range(1, count + 1)))
    return path


def config(workdir: Path, url: str, ports: list[str], count: int,
           ble: BleSection | None = None) -> GatewayConfig:
    data = workdir / "data"
    return GatewayConfig(
        gateway=GatewaySection(id="gw-bench", site="bench", data_dir=data),
        mqtt=MqttSection(url=url, client_id="streetsense-gw-bench", keepalive_s=5),
        registry_path=registry(workdir / "registry.toml", count,
                               "ble" if ble else "serial"),
        journal=JournalSection(path=data / "journal.sqlite"),
        serial=tuple(SerialPort(path=p, name=f"tty{i}") for i, p in enumerate(ports)),
        http=HttpSection(listen=None),
        **({"ble": ble} if ble else {}))


async def update(gateway: Gateway, observer: MqttObserver, bundle: Bundle,
                 count: int) -> float:
    """Seconds from the start of every node's transfer to the last node's confirmation."""
    names = [f"HN-{i:04d}" for i in range(1, count + 1)]
    for name in names:
        await observer.expect(f"streetsense/bench/{name}/state",
                              lambda m: "ota" in m.json().get("birth", {}).get(
                                  "capabilities", []), timeout=120)
    assert gateway.ota is not None and gateway.session is not None
    assert gateway.ota.store.put(bundle.sha256.hex(), bundle.image) is None
    mark = observer.mark()
    started = time.perf_counter()
    for node_id in range(1, count + 1):
        code, why = await gateway.ota.start(gateway.session.nodes[node_id],
                                            {"sha256": bundle.sha256.hex()})
        assert code == "OK", why
    for name in names:
        await observer.expect(f"streetsense/bench/{name}/ota",
                              lambda m: m.json()["state"] == "confirmed", timeout=1800,
                              since=mark)
    return time.perf_counter() - started


async def serial_run(workdir: Path, bundle: Bundle, count: int, baud: int) -> float:
    nodes = [EmulatedNode("air-quality", flash_dir=workdir / f"flash{i}", node_id=i, key=KEY,
                          extra_config={"status_interval_s": 600})
             for i in range(1, count + 1)]
    try:
        for node in nodes:
            node.link.baud = baud
            node.start()
        with Mosquitto() as broker:
            async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer, \
                    Gateway(config(workdir, broker.url, [n.port for n in nodes], count),
                            derivers=[]).running() as gateway:  # fmt: skip
                return await update(gateway, observer, bundle, count)
    finally:
        for node in nodes:
            node.close()


class RadioBoard:
    def __init__(self, rig: BleRig, unique_id: str) -> None:
        self.rig, self.unique_id = rig, unique_id

    def board_entries(self) -> dict[str, Any]:
        return dict(self.rig.board_entries(self.unique_id))


async def ble_run(workdir: Path, bundle: Bundle) -> float:
    with BleRig() as rig:
        node = EmulatedNode("air-quality", environment=RadioBoard(rig, "240ac4b1e0aa"),
                            flash_dir=workdir / "flash", node_id=1, key=KEY,
                            extra_config={"link": "ble", "status_interval_s": 600})
        try:
            node.start()
            ble = BleSection(enabled=True, **gateway_settings(rig.central_transport(), mtu=23))
            with Mosquitto() as broker:
                async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer, \
                        Gateway(config(workdir, broker.url, [], 1, ble),
                                derivers=[]).running() as gateway:  # fmt: skip
                    return await update(gateway, observer, bundle, 1)
        finally:
            node.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a street of 3 nodes, not 20")
    parser.add_argument("--street", type=int, help="nodes in the street (default 20)")
    args = parser.parse_args()
    street = args.street or (3 if args.quick else 20)
    with tempfile.TemporaryDirectory(prefix="ota-bench-") as tmp:
        work = Path(tmp)
        bundle = make_bundle(work)
        size = len(bundle.image)
        wire_s = size * 10 / BAUD
        print(f"bundle: {size} bytes, {len(bundle.files)} files (.mpy), version {VERSION}")
        fast = await serial_run(work / "fast", bundle, 1, 0)
        one = await serial_run(work / "one", bundle, 1, BAUD)
        print(f"one node, serial unpaced (baseline): {fast:.1f} s")
        print(f"one node, serial at {BAUD} baud: {one:.1f} s "
              f"(the bundle's bare wire time {wire_s:.1f} s)")
        print(f"ratio 115200/unpaced: {one / fast:.2f}")
        print(f"ratio 115200/bare wire: {one / wire_s:.2f}")
        ble = await ble_run(work / "ble", bundle)
        print(f"one node, BLE at MTU 23 (virtual radio, no air time): {ble:.1f} s")
        print(f"ratio BLE/serial: {ble / one:.2f}")
        street_s = await serial_run(work / "street", bundle, street, BAUD)
        print(f"a street of {street} nodes at {BAUD} baud, one gateway: {street_s:.1f} s")
        print(f"ratio street/one node: {street_s / one:.2f}")
        print(f"summary: one node {one:.0f} s at {BAUD} baud, BLE {ble:.0f} s, "
              f"{street} nodes {street_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
