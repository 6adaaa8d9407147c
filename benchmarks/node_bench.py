"""Node benchmark on the emulated board: heap over 10,000 frames, delivery and encode rates.

Run with ``.venv/bin/python benchmarks/node_bench.py`` (``--frames N`` for a shorter run).
The real firmware runs under the MicroPython unix port with the kind app in
``benchmarks/mp_node_app.py``; a test-side gateway (tests/firmware/node_harness.py) acks
every frame. Printed, all from the same run:

a. the heap in use after gc (``gc.mem_alloc()``) at every tenth of the run: its growth from
   the first to the last tenth (target: none beyond a few hundred bytes of noise) and the
   highest ``gc.mem_alloc()`` seen after a frame. The unix port compiles every module into
   the heap and loads the ``machine`` shim there, which an ESP32 build with frozen modules
   does not: that part ("code", measured in a separate interpreter that only imports the
   firmware) is reported apart, and the target (< 64 KB) applies to the node's data,
   peak minus code. 64-bit pointers make every object here about twice its ESP32 size;
b. frames/s delivered end to end (node -> PTY relay -> gateway -> ACK, stop-and-wait)
   and frames/s the node can encode and sign; their ratio is the share of the time a
   frame spends on the node's own CPU work.
"""

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from streetsense.hil import micropython
from streetsense.hil.keys import KEY, NODE_ID
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.hil.node import BOARD_SHIM, HEAP, EmulatedNode

HERE = Path(__file__).resolve().parent

# What `import boot; import main` loads before the node starts (machine is the shim).
IMPORTS = ("machine asyncio ssnode.app ssnode.node ssnode.control ssnode.link ssnode.spool "
           "ssnode.uplink_queue ssnode.config ssnode.hw ssnode.bench_node").split()
CODE_SCRIPT = (
    "import gc\ngc.collect()\nbase = gc.mem_alloc()\n"
    + "".join(f"import {name}\n" for name in IMPORTS)
    + "gc.collect()\nprint(gc.mem_alloc() - base)\n"
)

PEAK_TARGET = 64 * 1024
GROWTH_NOISE = 512


def code_bytes(flash):
    """Heap taken by importing the firmware (bytecode, module globals, the shim)."""
    out = micropython.run("-c", CODE_SCRIPT, heap=HEAP, path=[flash, BOARD_SHIM], cwd=flash,
                          timeout=30, check=True)
    return int(out.stdout.split()[-1])


def run(frames):
    work = Path(tempfile.mkdtemp(prefix="node-bench-"))
    try:
        flash = work / "flash"
        (flash / "ssnode").mkdir(parents=True)
        shutil.copy(HERE / "mp_node_app.py", flash / "ssnode" / "bench_node.py")
        shutil.copy(HERE / "aq_frame.py", flash / "aq_frame.py")
        config = {"bench_frames": frames, "status_interval_s": 3600}
        with EmulatedNode("bench", flash_dir=flash, node_id=NODE_ID, key=KEY,
                          extra_config=config) as node, \
                MiniGateway(node.port, {NODE_ID: KEY}):  # fmt: skip
            idle = int(node.wait_for(r"^bench idle (\d+)", 30)[1])
            sent = node.wait_for(r"^bench sent \d+ ms (\d+)", 30 + frames / 50)
            encode = int(node.wait_for(r"^bench encode_per_s (\d+)", 60)[1])
            samples = [
                (int(m[1]), int(m[2]), int(m[3]))
                for m in (re.match(r"^bench frames (\d+) live (\d+) peak (\d+)", line)
                          for line in node.console) if m
            ]  # fmt: skip
            code = code_bytes(flash)
        return code, idle, samples, int(sent[1]), encode
    finally:
        shutil.rmtree(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    args = parser.parse_args()
    code, idle, samples, sent_ms, encode_per_s = run(args.frames)
    first_live, last_live = samples[0][1], samples[-1][1]
    peak = max(s[2] for s in samples)
    growth = last_live - first_live
    data_peak = peak - code
    delivered_per_s = args.frames * 1000 / max(sent_ms, 1)
    print(f"frames: {args.frames}")
    print(f"heap of the imported firmware (code; frozen on an ESP32): {code / 1024:.1f} KB")
    print(f"heap idle (after gc, before the first frame): {idle / 1024:.1f} KB")
    for n, live, p in samples:
        print(f"  after {n:6d} frames: live {live / 1024:.1f} KB, peak so far {p / 1024:.1f} KB")
    print(f"heap growth first->last tenth: {growth:+d} B "
          f"({'ok' if growth <= GROWTH_NOISE else 'GROWS'}, noise <= {GROWTH_NOISE} B)")
    print(f"heap peak: {peak / 1024:.1f} KB in all; node data (peak - code) "
          f"{data_peak / 1024:.1f} KB ({'ok' if data_peak < PEAK_TARGET else 'OVER'} "
          f"target < {PEAK_TARGET // 1024} KB); above idle: {(peak - idle) / 1024:.1f} KB")
    print(f"delivered end to end: {delivered_per_s:.0f} frames/s (stop-and-wait over the relay)")
    print(f"encode+sign on the node: {encode_per_s} frames/s")
    print(f"ratio delivered/encode: {delivered_per_s / encode_per_s:.3f}")
    return 0 if growth <= GROWTH_NOISE and data_peak < PEAK_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
