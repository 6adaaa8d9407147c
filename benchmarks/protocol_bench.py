"""Protocol v1 benchmark: receive-path rate, wire size, device allocation.

Run with ``.venv/bin/python benchmarks/protocol_bench.py`` (``--quick`` for a few-second
smoke run). The machine is shared and noisy, so every rate is the best of several
repeats and the results that matter are printed as ratios of two figures measured in
the same run:

a. frames/s of the gateway's full receive path (``Deframer.feed`` over 256-byte chunks
   + ``parse_frame`` with the key: COBS, CRC, HMAC tag, body decode, schema check)
   against bare ``msgpack.unpackb`` of the same bodies;
b. the wire size of a signed air-quality DATA frame (COBS and delimiter included)
   against the same reading as compact JSON with field names (target <= 45%);
c. under MicroPython (``benchmarks/mp_alloc.py``): heap bytes allocated by one
   ``Frame.encode(key)`` of that frame (target <= 2048) and the encode + sign rate.

The MicroPython interpreter is ``$MICROPYTHON``, else ``micropython`` next to this
Python, else ``micropython`` on PATH; without one, part c is reported as skipped.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import msgpack
from aq_frame import AIR_QUALITY, KEY, TS, air_quality_frame

from streetsense.hil import micropython
from streetsense.hil.micropython import find_micropython, stage_protocol
from streetsense.protocol import Deframer, parse_frame
from streetsense.protocol import messages as m
from streetsense.protocol.frame import CRC_LEN, HEADER_LEN, TAG_LEN

MP_SCRIPT = Path(__file__).resolve().parent / "mp_alloc.py"
CHUNK = 256
ALLOC_TARGET = 2048
WIRE_TARGET_PCT = 45.0


def varied_readings(rng):
    """AIR_QUALITY with the statistics jittered, so frames are not all alike."""
    out = []
    for ch, exp, mean, lo, hi, n in AIR_QUALITY:
        d = rng.randint(-5, 5)
        out.append([ch, exp, mean + d, lo + d - rng.randint(0, 3), hi + d + rng.randint(0, 3), n])
    return out


def best_rate(count, run, repeats):
    """Best items/s of ``repeats`` timed calls of ``run`` (each handles ``count`` items)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        best = max(best, count / max(elapsed, 1e-9))
    return best


def bench_receive(frames, repeats):
    """(receive-path frames/s, bare msgpack.unpackb bodies/s) for ``frames`` signed frames."""
    rng = random.Random(1)
    wires = [
        air_quality_frame(1000 + i, varied_readings(rng), TS + 60 * i).encode(KEY)
        for i in range(frames)
    ]
    stream = b"".join(wires)
    chunks = [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]
    # the msgpack body of each frame: between the header and the tag + CRC trailer
    bodies = [raw_frame(w)[HEADER_LEN : -(TAG_LEN + CRC_LEN)] for w in wires]

    def receive():
        deframer = Deframer()
        got = 0
        for chunk in chunks:
            for item in deframer.feed(chunk):
                parse_frame(item, KEY)  # raises on any error (none expected)
                got += 1
        if got != frames:
            raise SystemExit(f"receive path returned {got} frames of {frames}")

    passes = 10  # bare unpackb is fast: time several passes over the bodies
    unpackb = msgpack.unpackb

    def bare():
        for _ in range(passes):
            for body in bodies:
                unpackb(body, raw=False, strict_map_key=False)

    return best_rate(frames, receive, repeats), best_rate(frames * passes, bare, repeats)


def raw_frame(wire):
    """The decoded (COBS-removed) frame of one wire frame."""
    (raw,) = Deframer().feed(wire)
    return raw


def reading_json(frame):
    """The frame's reading as compact JSON with field names, values as decimals, no units."""
    body = frame.body
    readings = {}
    for ch, exp, mean, lo, hi, n in body[4]:
        name = m.QUANTITIES[ch & 0xFF][0]
        places = max(0, -exp)

        def real(v, exp=exp, places=places):
            return round(v * 10.0**exp, places) if exp < 0 else v * 10**exp

        readings[name] = {"mean": real(mean), "min": real(lo), "max": real(hi), "count": n}
    doc = {
        "node": frame.node_id,
        "boot": frame.boot,
        "seq": frame.seq,
        "ts": body[1],
        "interval_s": body[3],
        "readings": readings,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def bench_micropython(iterations):
    """Output of mp_alloc.py as a dict, or None when there is no MicroPython interpreter."""
    if find_micropython() is None:
        return None
    with tempfile.TemporaryDirectory(prefix="ss-mp-") as tmp:
        stage_protocol(Path(tmp))
        proc = micropython.run(MP_SCRIPT, tmp, str(iterations), timeout=60)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"mp_alloc.py failed under {proc.args[0]} (exit {proc.returncode})")
    out = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.partition(" ")
        out[name] = float(value) if "." in value else int(value)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = parser.parse_args(argv)
    frames, repeats, mp_iterations = (300, 3, 200) if args.quick else (3000, 7, 3000)

    # a. receive path against bare msgpack
    full, bare = bench_receive(frames, repeats)
    ratio = full / bare
    print(
        f"a. receive path: {frames} signed DATA frames fed in {CHUNK}-byte chunks, "
        f"deframe + CRC + HMAC + body + schema; best of {repeats}"
    )
    print(f"   receive path:                {full:10.0f} frames/s")
    print(f"   bare msgpack.unpackb (body): {bare:10.0f} frames/s")
    print(f"ratio receive/bare: {ratio:.3f} (bare unpackb is {1 / ratio:.1f}x faster)")

    # b. wire size against compact JSON
    frame = air_quality_frame(1000)
    wire = frame.encode(KEY)
    js = reading_json(frame)
    pct = 100.0 * len(wire) / len(js)
    verdict = "ok" if pct <= WIRE_TARGET_PCT else "OVER"
    print("b. air-quality DATA frame, 7 interval statistics (PM1/PM2.5/PM10, CO2, T, RH, P)")
    print(f"   wire (signed, COBS + delimiter): {len(wire):4d} bytes")
    print(f"   compact JSON with field names:   {len(js):4d} bytes")
    print(f"ratio wire/JSON: {pct:.1f}% (target <= {WIRE_TARGET_PCT:.0f}%: {verdict})")

    # c. MicroPython: allocation and rate of encode + sign
    mp = bench_micropython(mp_iterations)
    print("c. MicroPython: Frame.encode(key) of the same frame")
    rows = [
        ("receive path, frames/s", f"{full:.0f}", ""),
        ("bare msgpack.unpackb, bodies/s", f"{bare:.0f}", ""),
        ("receive / bare", f"{ratio:.3f}", ""),
        ("DATA frame on the wire, bytes", str(len(wire)), ""),
        ("same reading as compact JSON, bytes", str(len(js)), ""),
        ("wire / JSON", f"{pct:.1f}%", f"<= {WIRE_TARGET_PCT:.0f}%"),
    ]
    if mp is None:
        print("MicroPython encode+sign alloc: skipped (no micropython interpreter)")
    else:
        if mp["frame_bytes"] != len(wire):
            raise SystemExit(
                f"MicroPython frame is {mp['frame_bytes']} bytes, CPython's {len(wire)}"
            )
        alloc = mp["alloc_bytes"]
        verdict = "ok" if alloc <= ALLOC_TARGET else "OVER"
        print(f"MicroPython encode+sign alloc: {alloc} bytes (target <= {ALLOC_TARGET}: {verdict})")
        print(f"MicroPython encode+sign rate: {mp['frames_per_s']:.0f} frames/s")
        rows.append(("MicroPython encode+sign, bytes allocated", str(alloc), f"<= {ALLOC_TARGET}"))
        rows.append(("MicroPython encode+sign, frames/s", f"{mp['frames_per_s']:.0f}", ""))

    print()
    print(f"{'summary':<42} {'measured':>12} {'target':>10}")
    for name, value, target in rows:
        print(f"{name:<42} {value:>12} {target:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
