"""Scenarios: a traffic burst counted exactly per class; a sensor unplugged is reported while
the other channels go on."""

from __future__ import annotations

from typing import Any

import pytest

from streetsense.hil.observer import MqttObserver, Observed
from streetsense.hil.plugin import Durations, short_and_soak
from streetsense.hil.rig.drivers import Board, EnvironmentDriver
from streetsense.hil.rig.strategy import BoardStrategy
from tests.hil.helpers import quantity

CLASS_READINGS = {"motorbike": "motorbikes", "car": "cars", "heavy": "heavy_vehicles"}


@short_and_soak()
@pytest.mark.needs_environment
@pytest.mark.board(kind="traffic", settings={"report_interval_s": 3})
async def test_traffic_burst_counted_exactly_per_class(
        variant: str, durations: Durations, board: Board, environment: EnvironmentDriver,
        gateway: Any, observer: MqttObserver, strategy: BoardStrategy) -> None:
    """3,000 vehicles/h/lane on two lanes: the published counts equal the driven ones."""
    await strategy.transition("provisioned")
    await environment.wait_armed(timeout=20)
    topic = gateway.topic(board.name, "data")
    mark = observer.mark()
    expected = await environment.traffic(3000, {"motorbike": 0.8, "car": 0.17, "heavy": 0.03},
                                         durations.traffic_s, seed=7)
    await environment.wait_idle(timeout=durations.traffic_s + 30)
    total = sum(sum(lane.values()) for lane in expected)
    assert total > 0

    def tally(messages: list[Observed]) -> tuple[list[dict[str, int]], int]:
        """Per lane and class, and the vehicles seen by one detector only (no class)."""
        per_lane = [dict.fromkeys(CLASS_READINGS, 0) for _ in expected]
        unclassified = 0
        for message in messages:
            for key, reading in message.json()["readings"].items():
                name, lane = quantity(key), int(key.rpartition("_")[2]) if key != quantity(key) \
                    else 0
                if name == "unclassified_vehicles":
                    unclassified += int(reading["value"])
                for cls, reading_name in CLASS_READINGS.items():
                    if name == reading_name:
                        per_lane[lane][cls] += int(reading["value"])
        return per_lane, unclassified

    def counted_all(_: Observed) -> bool:
        per_lane, unclassified = tally(observer.messages(topic, since=mark))
        return sum(sum(lane.values()) for lane in per_lane) + unclassified >= total

    # Counts arrive per interval: wait until they add up to what was driven, then compare.
    await observer.expect(topic, counted_all, timeout=40, since=mark)
    assert tally(observer.messages(topic, since=mark)) == (expected, 0), \
        "counts per lane and class, and vehicles seen by one detector only"


@pytest.mark.needs_environment
@pytest.mark.board(settings={"status_interval_s": 2})
async def test_unplugged_sensor_is_reported_and_others_continue(
        board: Board, environment: EnvironmentDriver, gateway: Any, observer: MqttObserver,
        strategy: BoardStrategy) -> None:
    """SCD41 unplugged: STATUS names the fault; data keeps PM and BME280 readings, no CO2."""
    await strategy.transition("provisioned")
    await environment.fault("scd41", "unplugged")
    status = await observer.expect(
        gateway.topic(board.name, "status"),
        lambda m: "scd41" in (m.json().get("faults") or {}), timeout=30)
    assert status.json()["faults"]["scd41"]
    mark = observer.mark()
    data = await observer.expect(gateway.topic(board.name, "data"), timeout=20, since=mark)
    names = {quantity(key) for key in data.json()["readings"]}
    assert "co2" not in names
    assert {"pm2_5", "pm10", "temperature", "humidity", "pressure"} <= names
