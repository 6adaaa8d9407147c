"""Capture the frames of emulated nodes talking to a real gateway: the differential fuzz's seeds.

    .venv/bin/python tests/protocol/capture_nodes.py [--seconds 60] [--out FILE]

Runs an air-quality and a traffic node (the real firmware under MicroPython, their sensors and
detectors driven by the street scene), and a factory-state node, each on its own PTY link to one
`streetsense gateway run` with a mosquitto broker on a free port. Every byte on the links, both
ways, is tapped before any fault could apply and cut into frames at 0x00. The result (default
tests/protocol/captures/emulated_nodes.json) holds the frames and the test keys they are signed
with: fixed, published keys of emulated nodes, never a real node's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from streetsense.hil.broker import Mosquitto
from streetsense.hil.environment import Environment
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.node import EmulatedNode
from streetsense.hil.scene import StreetScene

OUT = Path(__file__).resolve().parent / "captures" / "emulated_nodes.json"
# Test keys, as in the golden vectors: bytes 0..31 and 32..63.
NODES = {1: ("air-quality", bytes(range(32))), 2: ("traffic", bytes(range(32, 64)))}
SETTINGS = {"air-quality": {"report_interval_s": 5, "sample_interval_s": 1,
                            "status_interval_s": 15, "pm_warmup_s": 2},
            "traffic": {"report_interval_s": 5, "status_interval_s": 15}}


class Tap:
    """Bytes of one link and direction, cut into wire frames (each ending in 0x00)."""

    def __init__(self, node_id: int, kind: str) -> None:
        self.node_id, self.kind = node_id, kind
        self.frames: list[dict[str, object]] = []
        self._partial = {"up": b"", "down": b""}
        self._lock = threading.Lock()

    def feed(self, direction: str, data: bytes) -> None:
        with self._lock:
            data = self._partial[direction] + data
            *whole, self._partial[direction] = data.split(b"\x00")
            for frame in whole:
                if frame:
                    self.frames.append({"node_id": self.node_id, "kind": self.kind,
                                        "direction": direction, "wire": (frame + b"\x00").hex()})


def capture(seconds: float) -> dict[str, object]:
    """Run the nodes and the gateway for ``seconds``; the frames seen, in order per link."""
    taps = [Tap(node_id, kind) for node_id, (kind, _) in NODES.items()] + [Tap(0, "factory")]
    with tempfile.TemporaryDirectory(prefix="sscapture-") as tmp, Mosquitto() as broker:
        envs, scenes, boards = [], [], []
        try:
            for node_id, (kind, key) in NODES.items():
                env = Environment(kind)
                envs.append(env)
                scenes.append(StreetScene(node_id, speedup=60).start(env))
                boards.append(EmulatedNode(kind, flash_dir=Path(tmp) / f"node{node_id}",
                                           environment=env, node_id=node_id, key=key,
                                           seed=node_id, extra_config=SETTINGS[kind]))
            boards.append(EmulatedNode("air-quality", flash_dir=Path(tmp) / "factory", seed=3))
            for board, tap in zip(boards, taps, strict=True):
                board.link.tap = tap.feed
            entries = [NodeEntry(node_id, f"HN-{node_id:04d}", kind, key)
                       for node_id, (kind, key) in NODES.items()]
            gateway = GatewayProcess(
                workdir=Path(tmp) / "gateway", mqtt_url=broker.url, nodes=entries,
                serial=[SerialEntry(b.port, f"serial-{i}") for i, b in enumerate(boards)])
            with gateway:
                for board in boards:
                    board.start()
                time.sleep(seconds)  # a capture of this length, not a synchronisation
        finally:
            for board in boards:
                board.close()
            for scene in scenes:
                scene.stop()
            for env in envs:
                env.close()
    return {"keys": {str(node_id): key.hex() for node_id, (_, key) in NODES.items()},
            "frames": [frame for tap in taps for frame in tap.frames]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    doc = capture(args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=0) + "\n", encoding="utf-8")
    frames = doc["frames"]
    assert isinstance(frames, list)
    print(f"wrote {len(frames)} frames to {args.out}")


if __name__ == "__main__":
    main()
