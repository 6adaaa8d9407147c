"""Street scenarios from the emulated street through the node, the gateway and MQTT: motorbikes
two and three abreast, and a red-light queue standing on the zones, over a sub-lane array.

The street model (hil_tests/street_scenarios.py) drives the board's zones in real time; the
counts the gateway publishes (``data``, and ``traffic`` with PCU) are compared with its
ground truth. Short runs in ``make test`` allow for their few vehicles; the soak runs (ten
minutes of arrivals) hold the benchmark's targets (benchmarks/traffic_accuracy.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from streetsense.hil.observer import MqttObserver
from streetsense.hil.plugin import Durations, short_and_soak
from streetsense.hil.rig.drivers import Board, EnvironmentDriver
from streetsense.hil.rig.strategy import BoardStrategy
from streetsense.hil.street import LAYOUTS
from tests.hil.helpers import quantity

SUBLANE = {**LAYOUTS["sublane"].settings(), "report_interval_s": 3}
COUNTED = ("motorbikes", "cars", "heavy_vehicles", "unknown_vehicles", "unclassified_vehicles")
CLASS_READINGS = {"motorbike": "motorbikes", "car": "cars", "heavy": "heavy_vehicles"}
QUEUE_ARRIVALS_S = 15.0  # at least: the queue the warm-up left and a red phase fall in it


async def _drive(name: str, arrivals_s: float, seed: int, environment: EnvironmentDriver,
                 gateway: Any, observer: MqttObserver, board: Board,
                 ) -> tuple[dict[str, Any], dict[str, int], list[dict[str, Any]]]:
    """Run the scenario; once every vehicle has passed and two more intervals were reported,
    (its truth, the counts published on ``data``, the ``traffic`` payloads)."""
    data, traffic = gateway.topic(board.name, "data"), gateway.topic(board.name, "traffic")
    await environment.wait_armed(timeout=20)
    mark = observer.mark()
    truth = await environment.scenario(name, arrivals_s, seed)
    await environment.wait_idle(timeout=arrivals_s + 400)
    after = observer.mark()
    for _ in range(2):  # vehicles wait a few seconds in the node before they are final
        await observer.expect(data, timeout=15, since=observer.mark())
    counted = dict.fromkeys(COUNTED, 0)
    for message in observer.messages(data, since=mark):
        for key, reading in message.json()["readings"].items():
            if quantity(key) in counted:
                counted[quantity(key)] += int(reading["value"])
    assert observer.messages(data, since=after), "no data after the last vehicle"
    assert truth["vehicles"] >= 30, truth
    n = len(observer.messages(data, since=mark))  # each has its traffic payload, just after
    await observer.expect(traffic, lambda _: len(observer.messages(traffic, since=mark)) >= n,
                          timeout=10, since=mark)
    return truth, counted, [m.json() for m in observer.messages(traffic, since=mark)][:n]


def _true(truth: dict[str, Any], cls: str) -> int:
    return sum(int(lane[cls]) for lane in truth["counts"])


@short_and_soak()
@pytest.mark.needs_environment
@pytest.mark.board(kind="traffic", settings=SUBLANE)
async def test_dense_motorbikes_abreast_are_counted_over_a_sublane_array(
        variant: str, durations: Durations, board: Board, environment: EnvironmentDriver,
        gateway: Any, observer: MqttObserver, strategy: BoardStrategy) -> None:
    """dense_motorbikes (6,600/h/lane, abreast) over three 1.2 m zone pairs per lane: the
    vehicles published are the motorbikes that came, within 5 % over ten minutes (soak) or
    10 % in a short run, no car or heavy among them, and the ``traffic`` topic's flows add
    up to the same count."""
    await strategy.transition("provisioned")
    truth, counted, flows = await _drive("dense_motorbikes", durations.street_s, 3,
                                         environment, gateway, observer, board)
    true = truth["vehicles"]
    assert _true(truth, "motorbike") == true
    total = sum(counted.values())
    assert abs(total - true) <= (0.05 if variant == "soak" else 0.10) * true, (counted, truth)
    assert counted["heavy_vehicles"] == 0 and counted["cars"] <= 0.02 * true
    classed = total - counted["unclassified_vehicles"]
    assert sum(lane["counts"]["total"] for m in flows for lane in m["lanes"]) == classed


@short_and_soak()
@pytest.mark.needs_environment
@pytest.mark.board(kind="traffic", settings=SUBLANE)
async def test_signal_queue_has_no_false_heavy_and_unknown_counts_in_pcu(
        variant: str, durations: Durations, board: Board, environment: EnvironmentDriver,
        gateway: Any, observer: MqttObserver, strategy: BoardStrategy) -> None:
    """signal_queue (a red light's queue standing on the zones, then moving off): no car or
    motorbike is published as a heavy vehicle, the count is within 10 % (15 % in a short
    run), and vehicles of unknown class reach the ``traffic`` topic at one PCU each."""
    await strategy.transition("provisioned")
    arrivals_s = max(durations.street_s, QUEUE_ARRIVALS_S)
    truth, counted, flows = await _drive("signal_queue", arrivals_s, 4, environment, gateway,
                                         observer, board)
    true = truth["vehicles"]
    assert _true(truth, "heavy") == 0
    assert counted["heavy_vehicles"] == 0, counted
    total = sum(counted.values())
    assert abs(total - true) <= (0.10 if variant == "soak" else 0.15) * true, (counted, truth)
    lanes = [lane for m in flows for lane in m["lanes"]]
    assert sum(lane["counts"]["unknown_vehicles"] for lane in lanes) == \
        counted["unknown_vehicles"] > 0
    for m in flows:
        for lane in m["lanes"]:
            c, hours = lane["counts"], m["interval_s"] / 3600
            pcu = 0.3 * c["motorbikes"] + c["cars"] + 2.5 * c["heavy_vehicles"] \
                + 1.0 * c["unknown_vehicles"]
            assert lane["pcu_per_hour"] == pytest.approx(pcu / hours, abs=0.1)
