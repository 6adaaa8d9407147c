"""MicroPython side of the protocol benchmark: heap bytes and rate of Frame.encode(key).

Run under the MicroPython unix port, with the directory holding ``streetsense/``
(``__init__.py`` and a copy of ``protocol/``) as the first argument:

    micropython benchmarks/mp_alloc.py PKGROOT [ITERATIONS]

Prints ``key value`` lines: ``frame_bytes``, ``alloc_bytes`` (gc.mem_alloc() delta of
one encode + sign, gc disabled), ``frames_per_s`` (best of a few timed runs).
Written for MicroPython only (``gc.mem_alloc``, ``time.ticks_us``).
"""

import gc
import sys
import time

sys.path.insert(0, sys.argv[1])
ITERATIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 500
REPEATS = 3

from streetsense.protocol import FLAG_ACK_REQ, Frame  # noqa: E402
from streetsense.protocol import messages as m  # noqa: E402

KEY = bytes(range(1, 33))


def air_quality_frame(seq):
    """A typical air-quality DATA frame: 7 interval statistics, one minute, UTC clock."""
    readings = [
        [m.channel(1), -1, 84, 61, 112, 60],  # PM1.0, 0.1 ug/m3
        [m.channel(2), -1, 127, 95, 181, 60],  # PM2.5
        [m.channel(3), -1, 163, 120, 240, 60],  # PM10
        [m.channel(4), 0, 612, 587, 655, 60],  # CO2, ppm
        [m.channel(5), -2, 1874, 1861, 1890, 60],  # temperature, 0.01 degC
        [m.channel(6), -1, 553, 547, 561, 60],  # humidity, 0.1 %RH
        [m.channel(7), -1, 10132, 10131, 10134, 60],  # pressure, 0.1 hPa
    ]
    body = {1: 1764115200, 2: m.CLOCK_UTC, 3: 60, 4: readings}
    return Frame(m.DATA, 0x00A1B2C3, 7, seq, body, FLAG_ACK_REQ)


def alloc_bytes(frame):
    """Heap bytes allocated by one ``frame.encode(KEY)`` (the smallest of a few runs)."""
    best = None
    for _ in range(REPEATS):
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        frame.encode(KEY)
        used = gc.mem_alloc() - before
        gc.enable()
        if best is None or used < best:
            best = used
    return best


def frames_per_s(frame, iterations):
    """Encode + sign rate, best of a few runs."""
    best = 0.0
    encode = frame.encode
    for _ in range(REPEATS):
        gc.collect()
        start = time.ticks_us()
        for _ in range(iterations):
            encode(KEY)
        elapsed = time.ticks_diff(time.ticks_us(), start)
        rate = iterations * 1e6 / max(elapsed, 1)
        if rate > best:
            best = rate
    return best


def main():
    frame = air_quality_frame(1000)
    wire = frame.encode(KEY)  # warm up: first-call allocations are not per-frame cost
    print("frame_bytes", len(wire))
    print("alloc_bytes", alloc_bytes(frame))
    print("frames_per_s", round(frames_per_s(frame, ITERATIONS), 1))


main()
