"""Drive ssnode.traffic through a recorded edge sequence, as the node's asyncio task would.

    micropython tests/firmware/mp_traffic.py SPEC.json FIRMWARE_DIR

SPEC holds ``config`` (TrafficCounter keywords), ``edges`` ([lane, det, level, t_us], in
time order), ``start_us``, ``step_us`` (task period), ``steps``, ``report_steps`` and
``drain`` (pop events after each step). Prints each event as a JSON line as it comes, then
one JSON object: ``reports``, ``totals``
(per lane [motorbike, car, heavy, unknown, unpaired]), ``events``, ``counters``, the drop
counters, ``edge_alloc_bytes`` (heap bytes allocated by all on_edge() calls) and
``heap_peak_bytes`` (the most heap in use after a step, above what was in use before the
counter was built; both MicroPython only).
Runs unchanged under CPython (``run(spec)``) so both interpreters share one driver.
"""

import gc
import json
import sys


def run(spec, emit=None):
    """The run's result; each event goes to `emit` as it comes if given (then ``events`` is
    empty: the driver's own list would count as the counter's heap)."""
    try:
        from ssnode.traffic import TrafficCounter, ticks_diff  # MicroPython: flash layout
    except ImportError:
        from streetsense.firmware.ssnode.traffic import TrafficCounter, ticks_diff  # CPython

    cfg = spec["config"]
    measure = hasattr(gc, "mem_alloc")
    events = []
    if emit is None:
        emit = lambda ev: events.append(list(ev))  # noqa: E731
    if measure:
        gc.collect()
        base = gc.mem_alloc()
    c = TrafficCounter(**cfg)
    mask = cfg.get("ticks_mask", 0x3FFFFFFF)
    edges = spec["edges"]
    step = spec["step_us"]
    report_steps = spec["report_steps"]
    interval_s = step * report_steps // 1000000
    drain = spec.get("drain", True)
    lanes = c.lanes
    totals = [[0, 0, 0, 0, 0] for _ in range(lanes)]
    peak = 0
    reports = []
    alloc = 0
    i = 0
    n = len(edges)
    for k in range(1, spec["steps"] + 1):
        now = (spec["start_us"] + k * step) & mask
        # The IRQ has delivered every edge up to "now" before the task wakes.
        before = gc.mem_alloc() if measure else 0
        while i < n and ticks_diff(edges[i][3], now, mask) <= 0:
            e = edges[i]
            c.on_edge(e[0], e[1], e[2], e[3])
            i += 1
        if measure:
            alloc += gc.mem_alloc() - before
        c.process(now)
        if drain:
            ev = c.pop_event()
            while ev is not None:
                emit(ev)
                ev = c.pop_event()
        if k % report_steps == 0 or k == spec["steps"]:
            rep = c.report(interval_s, now)
            reports.append([list(r) for r in rep])
            for lane in range(lanes):
                for j in range(5):
                    totals[lane][j] += rep[lane][j]
        if measure and k % 50 == 0:
            gc.collect()
            peak = max(peak, gc.mem_alloc() - base)
    if not drain:
        ev = c.pop_event()
        while ev is not None:
            emit(ev)
            ev = c.pop_event()
    return {
        "reports": reports,
        "totals": totals,
        "events": events,
        "fed": i,
        "edges_dropped": c.edges_dropped,
        "events_dropped": c.events_dropped,
        "edge_alloc_bytes": alloc if measure else None,
        "heap_peak_bytes": peak if measure else None,
        "counters": c.counters(),
    }


def parse_output(text):
    """(CPython) The result of `main()`'s output, with its event lines as ``events``."""
    lines = text.strip().splitlines()
    result = json.loads(lines[-1])
    result["events"] = [json.loads(line) for line in lines[:-1]]
    return result


def main():
    """Under MicroPython: events as JSON lines as they come, then the result (last line)."""
    sys.path.insert(0, sys.argv[2])
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    print(json.dumps(run(spec, lambda ev: print(json.dumps(ev)))))


if __name__ == "__main__":
    main()
