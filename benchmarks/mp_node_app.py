"""Kind app "bench" for benchmarks/node_bench.py, staged onto the emulated flash as
ssnode/bench_node.py (with aq_frame.py beside main.py). MicroPython only.

It sends `bench_frames` air-quality DATA frames through the node core as fast as the link
acknowledges them (waiting while the RAM queue is half full), and prints console lines:
``bench idle A`` (gc.mem_alloc() after gc, before the first frame), ``bench frames N live A
peak P`` every tenth of the run (live: after gc; peak: the highest mem_alloc() seen after a
frame, with a collection every 4 KB allocated). Then, with the default collection policy,
it sends the same number again, timed: ``bench sent N ms T`` once all are acknowledged;
and ``bench encode_per_s R`` (Frame.encode + sign of the same frame).
"""

import asyncio
import gc
import time

from aq_frame import AIR_QUALITY, KEY, air_quality_frame

_ENCODES = 2000
_GC_EVERY_BYTES = 4096


class App:
    def __init__(self, node, board):
        self.node = node
        self.sensors = ["bench"]

    def setting_error(self, name, value):
        return "unknown setting"

    def reconfigure(self):
        pass

    def command(self, name, args):
        return None

    async def run(self):
        node = self.node
        total = node.config["bench_frames"]
        step = max(1, total // 10)
        await asyncio.sleep_ms(200)  # let HELLO and the boot LOG go first
        gc.collect()
        print("bench idle", gc.mem_alloc())
        gc.threshold(_GC_EVERY_BYTES)
        peak = 0
        for i in range(1, total + 1):
            while node.queue_pressure() >= 0.5:
                await asyncio.sleep_ms(0)
            node.send_data(AIR_QUALITY, 60)
            alloc = gc.mem_alloc()
            if alloc > peak:
                peak = alloc
            if i % step == 0:
                gc.collect()
                print("bench frames", i, "live", gc.mem_alloc(), "peak", peak)
        gc.threshold(-1)  # the rates below are measured with the default collection policy
        await self._drained()
        start = time.ticks_ms()
        for _ in range(total):
            while node.queue_pressure() >= 0.5:
                await asyncio.sleep_ms(0)
            node.send_data(AIR_QUALITY, 60)
        await self._drained()
        print("bench sent", total, "ms", time.ticks_diff(time.ticks_ms(), start))
        frame = air_quality_frame(1)
        frame.encode(KEY)
        t0 = time.ticks_us()
        for _ in range(_ENCODES):
            frame.encode(KEY)
        elapsed_us = time.ticks_diff(time.ticks_us(), t0)
        print("bench encode_per_s", _ENCODES * 1000000 // elapsed_us)
        while True:
            await asyncio.sleep(60)

    async def _drained(self):
        while self.node.queue_pressure() > 0:
            await asyncio.sleep_ms(1)
