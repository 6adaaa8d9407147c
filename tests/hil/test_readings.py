"""Scenario: a reading set in the environment appears on MQTT with the right value and units."""

from __future__ import annotations

from typing import Any

import pytest

from streetsense.hil.observer import MqttObserver, Observed
from streetsense.hil.rig.drivers import Board, EnvironmentDriver
from streetsense.hil.rig.strategy import BoardStrategy
from tests.hil.helpers import quantity

AIR = {"pm1_0": 17.0, "pm2_5": 35.0, "pm10": 52.0, "co2": 812.0, "temperature": 24.5,
       "humidity": 55.0, "pressure": 1005.0}
UNITS = {"pm1_0": "ug/m3", "pm2_5": "ug/m3", "pm10": "ug/m3", "co2": "ppm",
         "temperature": "degC", "humidity": "%RH", "pressure": "hPa"}
# The PMS5003's other words (SPEC §5.3.1): PM at CF=1 (at least the atmospheric value) and the
# particle counts.
PMS_EXTRA = {"pm1_0_cf1": "ug/m3", "pm2_5_cf1": "ug/m3", "pm10_cf1": "ug/m3",
             **{f"particles_{size}um": "#/0.1L"
                for size in ("0_3", "0_5", "1_0", "2_5", "5_0", "10")}}
# What the sensors themselves resolve (PMS5003: 1 ug/m3; SCD41: 1 ppm; BME280/SCD41 T, RH
# and P after the node's fixed-point rounding).
TOLERANCE = {"pm1_0": 0.0, "pm2_5": 0.0, "pm10": 0.0, "co2": 1.0, "temperature": 0.15,
             "humidity": 0.6, "pressure": 0.5}


def _settled(message: Observed) -> bool:
    """Every sample of the interval was taken after the change: min and max on target."""
    readings: dict[str, Any] = message.json()["readings"]
    return all(
        abs(reading.get(bound, reading["value"]) - AIR[quantity(key)])
        <= TOLERANCE[quantity(key)]
        for key, reading in readings.items() if quantity(key) in AIR
        for bound in ("min", "max")) and {quantity(key) for key in readings} >= set(AIR)


@pytest.mark.needs_environment
async def test_air_readings_arrive_with_values_and_units(
        board: Board, environment: EnvironmentDriver, gateway: Any, observer: MqttObserver,
        strategy: BoardStrategy) -> None:
    """Each quantity set in the air is published with its unit and within sensor tolerance;
    the PMS5003's CF=1 PM (not below the atmospheric) and particle counts come too."""
    await strategy.transition("provisioned")
    await environment.set_air(**AIR)
    message = await observer.expect(gateway.topic(board.name, "data"), _settled, timeout=30)
    readings = message.json()["readings"]
    seen = {quantity(key) for key in readings}
    assert seen == set(AIR) | set(PMS_EXTRA), f"quantities published: {sorted(readings)}"
    for key, reading in readings.items():
        name = quantity(key)
        assert reading["unit"] == {**UNITS, **PMS_EXTRA}[name], (key, reading)
        if name in AIR:
            assert abs(reading["value"] - AIR[name]) <= TOLERANCE[name], (key, reading)
    for pm in ("pm1_0", "pm2_5", "pm10"):
        assert readings[f"{pm}_cf1"]["value"] >= readings[pm]["value"]
    assert readings["particles_0_3um"]["value"] > readings["particles_10um"]["value"]
    payload = message.json()
    assert (payload["node"], payload["node_id"], payload["kind"]) == \
        (board.name, board.node_id, "air-quality")
