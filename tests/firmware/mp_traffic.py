"""Drive ssnode.traffic through a recorded edge sequence, as the node's asyncio task would.

    micropython tests/firmware/mp_traffic.py SPEC.json FIRMWARE_DIR

SPEC holds ``config`` (TrafficCounter keywords), ``edges`` ([lane, det, level, t_us], in
time order), ``start_us``, ``step_us`` (task period), ``steps``, ``report_steps`` and
``drain`` (pop events after each step). Prints one JSON object: ``reports``, ``totals``
(per lane [motorbike, car, heavy, unpaired]), ``events``, the drop counters and
``edge_alloc_bytes`` (heap bytes allocated by all on_edge() calls; MicroPython only).
Runs unchanged under CPython (``run(spec)``) so both interpreters share one driver.
"""

import gc
import json
import sys


def run(spec):
    from ssnode.traffic import TrafficCounter, ticks_diff

    cfg = spec["config"]
    c = TrafficCounter(**cfg)
    mask = cfg.get("ticks_mask", 0x3FFFFFFF)
    edges = spec["edges"]
    step = spec["step_us"]
    report_steps = spec["report_steps"]
    interval_s = step * report_steps // 1000000
    drain = spec.get("drain", True)
    measure = hasattr(gc, "mem_alloc")
    lanes = c.lanes
    totals = [[0, 0, 0, 0] for _ in range(lanes)]
    reports = []
    events = []
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
                events.append(list(ev))
                ev = c.pop_event()
        if k % report_steps == 0 or k == spec["steps"]:
            rep = c.report(interval_s, now)
            reports.append([list(r) for r in rep])
            for lane in range(lanes):
                for j in range(4):
                    totals[lane][j] += rep[lane][j]
    if not drain:
        ev = c.pop_event()
        while ev is not None:
            events.append(list(ev))
            ev = c.pop_event()
    return {
        "reports": reports,
        "totals": totals,
        "events": events,
        "fed": i,
        "edges_dropped": c.edges_dropped,
        "events_dropped": c.events_dropped,
        "edge_alloc_bytes": alloc if measure else None,
    }


def main():
    sys.path.insert(0, sys.argv[2])
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    print(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
