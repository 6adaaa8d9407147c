"""ssnode/traffic_node.py under MicroPython on the emulated board (detector edges from the GPIO
server, hard Pin IRQs), with a stand-in node core, and the whole firmware as an EmulatedNode.
The four runs start together and overlap.

Tolerances: speed within 4 %, length within 4 % + 10 cm: the emulated edge timing errs by up
to ~5 ms on a loaded machine (docs/sensors.md) against transits of 160-360 ms here.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from streetsense.hil.environment import Environment, expected_counts
from streetsense.hil.keys import KEY, NODE_ID
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.hil.node import EmulatedNode
from streetsense.protocol import messages as m
from tests.firmware.app_harness import AppRun, readings

pytestmark = pytest.mark.micropython

# (lane, speed km/h, length m, direction, class 1 motorbike / 2 car / 3 heavy)
VEHICLES = [
    (0, 36.0, 4.3, 1, 2), (0, 25.0, 1.8, 1, 1), (0, 30.0, 10.0, 1, 3), (0, 45.0, 2.0, 1, 1),
    (1, 20.0, 1.7, -1, 1), (1, 28.0, 4.8, -1, 2),
]  # fmt: skip


def _counts_script(run: AppRun, env: Environment) -> dict[str, Any]:
    assert env.wait_detectors_armed(2, timeout=10)
    for lane, speed, length, direction, _ in VEHICLES:
        env.vehicle(lane, speed, length, direction)
    first = run.wait_data(1, timeout=10)[0]
    out: dict[str, Any] = {"first": first}
    out["bad"] = run.send({"config": {"lanes": 9, "motorbike_max_cm": 700, "pm_sensor": "x"}})
    out["ok"] = run.send({"config": {"lanes": 1}})  # sends the partial interval, rebuilds
    return out


def _shed_script(run: AppRun, env: Environment) -> None:
    assert env.wait_detectors_armed(2, timeout=10)
    run.send({"pressure": 0.95})
    for i in range(5):
        env.vehicle(0, 30.0 + i, 1.9)


def _one_detector_script(run: AppRun, env: Environment) -> None:
    env.fault("lane0.b", "unplugged")
    assert env.wait_detectors_armed(2, timeout=10)
    for _ in range(4):
        env.vehicle(0, 30.0, 1.9)


BURST_S = 15.0
CLASS_KEYS = {"motorbike": "motorbikes", "car": "cars", "heavy": "heavy_vehicles"}


def _burst_script(tmp_path: Path, env: Environment) -> dict[str, Any]:
    """The whole firmware: 3,000 vehicles/h on each of 2 lanes for BURST_S, Hanoi mix; per
    lane and class, the vehicles planned and the counts the gateway decodes."""
    with EmulatedNode("traffic", flash_dir=tmp_path / "flash", environment=env,
                      node_id=NODE_ID, key=KEY, extra_config={"report_interval_s": 4}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gateway:  # fmt: skip
        assert env.wait_detectors_armed(2, timeout=20)
        planned = expected_counts(env.traffic(3000, duration_s=BURST_S, seed=3), 2)
        assert env.wait_traffic(timeout=BURST_S + 30)
        total = sum(sum(lane.values()) for lane in planned)

        def counted() -> dict[str, float]:
            sums: dict[str, float] = {}
            for f in list(gateway.accepted):
                if f.type == m.DATA:
                    for name, values in readings(f.body).items():
                        sums[name] = sums.get(name, 0) + values[0]
            return sums

        def vehicles() -> float:
            names = (*CLASS_KEYS.values(), "unclassified_vehicles")
            c = counted()
            return sum(c.get(q + sfx, 0) for q in names for sfx in ("", "_1"))

        gateway.wait(lambda f: vehicles() >= total, timeout=20)
        data_seen = sum(1 for f in gateway.accepted if f.type == m.DATA)
        gateway.wait(
            lambda f: sum(1 for g in gateway.accepted if g.type == m.DATA) > data_seen, timeout=10
        )  # one more interval: nothing counted twice or late
        events = [f.body[4] for f in gateway.accepted if f.type == m.EVENT]
        return {"planned": planned, "counted": counted(), "events": events}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with (
        Environment("traffic") as env_a, Environment("traffic") as env_b,
        Environment("traffic") as env_c, Environment("traffic") as env_d,
        AppRun(tmp_path_factory.mktemp("a"), env_a, "traffic_node", report_interval_s=5) as a,
        AppRun(tmp_path_factory.mktemp("b"), env_b, "traffic_node", report_interval_s=3) as b,
        AppRun(tmp_path_factory.mktemp("c"), env_c, "traffic_node", report_interval_s=8) as c,
        ThreadPoolExecutor(4) as pool,
    ):  # fmt: skip
        yield {
            "counts": (a, pool.submit(_counts_script, a, env_a)),
            "shed": (b, pool.submit(_shed_script, b, env_b)),
            "one": (c, pool.submit(_one_detector_script, c, env_c)),
            "burst": pool.submit(_burst_script, tmp_path_factory.mktemp("d"), env_d),
        }


def test_vehicle_events_and_interval_counts(runs: dict[str, Any]) -> None:
    """Each vehicle is one EVENT with lane, direction, speed, length and class; the interval's
    DATA counts them per class per lane, with mean speed and occupancy."""
    run, script = runs["counts"]
    first = script.result(timeout=30)["first"]
    assert run.lines[0] == {"sensors": ["lane0", "lane1"]}
    events = sorted((e[4]["lane"], e[4]["speed_dkmh"], e[4]) for e in run.events[: len(VEHICLES)])
    assert len(events) == len(VEHICLES)
    for (lane, speed, length, direction, cls), (_, _, args) in zip(
        sorted(VEHICLES, key=lambda v: (v[0], v[1])), events, strict=True
    ):
        assert (args["lane"], args["dir"], args["class"]) == (lane, direction, cls)
        assert abs(args["speed_dkmh"] - speed * 10) <= speed * 10 * 0.04
        assert abs(args["length_cm"] - length * 100) <= length * 4 + 10
    r = readings(first)
    assert (r["motorbikes"], r["cars"], r["heavy_vehicles"]) == ([2], [1], [1])
    assert (r["motorbikes_1"], r["cars_1"], r["heavy_vehicles_1"]) == ([1], [1], [0])
    assert r["unclassified_vehicles"] == [0] and r["unclassified_vehicles_1"] == [0]
    assert abs(r["speed_mean"][0] - (36 + 25 + 30 + 45) / 4) < 1.5
    assert 0 < r["occupancy"][0] < 100 and first[3] == 5


def test_settings_are_checked_and_a_lane_change_keeps_the_counts(runs: dict[str, Any]) -> None:
    """Bad threshold settings are refused by name; a new lane count first sends the partial
    interval, then the app listens on the new lanes only."""
    run, script = runs["counts"]
    result = script.result(timeout=30)
    assert set(result["bad"]["config_errors"]) == {"lanes", "motorbike_max_cm", "pm_sensor"}
    assert result["ok"] == {"config_errors": {}}
    run.wait_data(2, timeout=5)
    partial = run.data[1]
    assert "motorbikes" in readings(partial) and partial[3] < 5


def test_events_shed_under_queue_pressure_counts_kept(runs: dict[str, Any]) -> None:
    """With the queue nearly full no vehicle EVENT is queued, yet DATA counts every vehicle
    and a warning says how many events were shed."""
    run, script = runs["shed"]
    script.result(timeout=30)
    run.wait(lambda: sum(readings(d)["motorbikes"][0] for d in run.data) == 5, timeout=15)
    assert run.events == []

    def shed() -> int:  # logged once per interval: the five may be told in two lines
        lines = [x["log"][1] for x in run.lines if "shed" in str(x.get("log"))]
        return sum(int(text.split("shed ")[1].split()[0]) for text in lines)

    run.wait(lambda: shed() >= 5, timeout=5)
    assert shed() == 5


def test_one_blind_detector_counts_unclassified_and_faults(runs: dict[str, Any]) -> None:
    """Vehicles seen by detector A only are counted as unclassified (an EVENT with the lane
    alone) and the lane gets a fault entry."""
    run, script = runs["one"]
    script.result(timeout=30)
    first = run.wait_data(1, timeout=15)[0]
    r = readings(first)
    assert r["unclassified_vehicles"] == [4] and r["motorbikes"] == [0]
    assert "speed_mean" not in r
    assert [e[4] for e in run.events] == [{"lane": 0}] * 4
    assert "one detector" in run.faults()["lane0"]


def test_burst_of_3000_vehicles_per_hour_per_lane_counts_exactly(runs: dict[str, Any]) -> None:
    """The real firmware on the emulated board: a 3,000 veh/h/lane Hanoi-mix burst on two lanes
    gives, in the DATA the gateway decodes, exactly the planned count per class per lane,
    and one vehicle EVENT each."""
    result = runs["burst"].result(timeout=60)
    planned, counted = result["planned"], result["counted"]
    for lane, sfx in ((0, ""), (1, "_1")):
        for cls, name in CLASS_KEYS.items():
            assert counted[name + sfx] == planned[lane][cls], (lane, cls, counted)
        assert counted["unclassified_vehicles" + sfx] == 0
    total = sum(sum(lane.values()) for lane in planned)
    assert total >= 18  # ~25 planned: the burst is dense, not a trickle
    assert planned[0]["motorbike"] + planned[1]["motorbike"] > total / 2
    assert len(result["events"]) == total
