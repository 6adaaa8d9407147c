"""Scenarios: a PMS5003 that loses the first command after each wake still fills every reading
window; an SCD41 that drifted is recalibrated through ``cmd/calibrate`` and reads right on MQTT.

On the emulated rig the sensors run FAST_SENSORS times faster than real time, so a PM warm-up
of 1 s and the SCD41's 3 minutes before a forced recalibration (4.5 s) fit a test."""

from __future__ import annotations

from typing import Any

import pytest

from streetsense.hil.observer import MqttObserver, Observed
from streetsense.hil.rig.drivers import Board, ConsoleDriver, EnvironmentDriver
from streetsense.hil.rig.strategy import BoardStrategy
from tests.hil.helpers import command

# 8 s reports leave room for the PM duty cycle: the sensor sleeps after each report and wakes
# a warm-up before the last 6 samples of the next (docs/sensors.md).
DUTY_CYCLED = {"report_interval_s": 8, "sample_interval_s": 1, "pm_warmup_s": 1}
SCD41_DRIFT_PPM = 80  # the environment's "drift" fault (hil_tests/environment.py)


@pytest.mark.needs_environment
@pytest.mark.needs_console
@pytest.mark.board(settings=DUTY_CYCLED)
async def test_pm_sensor_losing_a_command_after_wake_misses_no_window(
        board: Board, environment: EnvironmentDriver, console: ConsoleDriver, gateway: Any,
        observer: MqttObserver, strategy: BoardStrategy) -> None:
    """Each wake of the PMS5003 loses the node's next command; the node sends it again on the
    sensor's reply, and every report carries its full PM window."""
    await strategy.transition("provisioned")
    await environment.fault("pm", "drop_after_wake")
    mark = observer.mark()
    topic = gateway.topic(board.name, "data")
    first = await observer.expect(topic, timeout=20, since=mark)  # may predate the fault
    reports = await observer.collect(topic, 3, timeout=40, since=first.index + 1)
    windows = [m.json()["readings"]["pm2_5"]["count"] for m in reports]
    assert all(3 <= n <= 7 for n in windows), windows
    await console.wait_for(r"pms5003: command took on try [2-9]", timeout=5)


def _co2(message: Observed) -> tuple[float, float] | None:
    """(min, max) of the report's CO2, None in a report without one (the SCD41 measures every
    5 s; reports come every 2 s)."""
    reading = message.json()["readings"].get("co2")
    return None if reading is None else (reading["min"], reading["max"])


@pytest.mark.needs_environment
async def test_scd41_recalibrated_through_cmd_calibrate(
        board: Board, environment: EnvironmentDriver, gateway: Any, observer: MqttObserver,
        strategy: BoardStrategy) -> None:
    """An SCD41 reading 80 ppm high is recalibrated against a 450 ppm reference by the
    technician's cmd/calibrate: RESULT OK with the correction, and the node's data read
    450 ppm from then on."""
    await strategy.transition("provisioned")
    await environment.set_air(co2=450)
    await environment.fault("scd41", "drift")
    topic = gateway.topic(board.name, "data")
    drifted = await observer.expect(
        topic, lambda m: _co2(m) == (450 + SCD41_DRIFT_PPM,) * 2, timeout=30)
    # The sensor must have measured over 3 minutes (sensor time) before the recalibration:
    # three more 2 s reports are 6 s, 240 s at the rig's sensor speed (FAST_SENSORS).
    await observer.collect(topic, 3, timeout=30, since=drifted.index + 1)
    result = await command(observer, gateway, board, "calibrate",
                           {"id": "cal-co2", "args": {"co2": 450}})
    assert result["code"] == "OK", result
    assert result["data"]["co2_frc"] == {"reference_ppm": 450,
                                         "correction_ppm": -SCD41_DRIFT_PPM}
    await observer.expect(topic, lambda m: _co2(m) == (450, 450), timeout=20,
                          since=observer.mark())
