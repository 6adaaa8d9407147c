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

from aq_frame import KEY, air_quality_frame  # noqa: E402


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
