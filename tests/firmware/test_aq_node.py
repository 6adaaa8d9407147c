"""ssnode/aq_node.py under MicroPython on the emulated board, with a stand-in node core.

The runs start together (module fixture) and each test checks its part, so the real-time
waits (the SCD41 measures every 5 s) overlap. The sensors' slow processes run FAST_SENSORS
times faster than real time (a PM sensor settles in 0.75 s, the SCD41 may be recalibrated
after measuring 4.5 s), matched by pm_warmup_s = 1. Values are compared within each sensor's
resolution: PMS5003 1 µg/m³, SDS011 0.1 µg/m³, CO2 1 ppm, BME280 0.01 °C / 0.01 %RH / 0.01 hPa.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from streetsense.hil.emulators.pms5003 import command as pms_command
from streetsense.hil.environment import FAST_SENSORS, SCD41_DRIFT_PPM, Environment
from streetsense.hil.keys import KEY, NODE_ID
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.hil.node import EmulatedNode
from streetsense.protocol import messages as m
from tests.firmware.app_harness import AppRun, readings

pytestmark = pytest.mark.micropython

AIR = {"pm1_0": 20, "pm2_5": 31.2, "pm10": 45.4, "co2": 612, "temperature": 29.37,
       "humidity": 71.5, "pressure": 1008.25}  # fmt: skip
SLEEP, WAKE = pms_command(0xE4, 0), pms_command(0xE4, 1)


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until an emulator's state satisfies `condition` (polled: it has no event)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _healthy_script(pms: AppRun, env: Environment) -> dict[str, Any]:
    """A forced recalibration of the drifted SCD41 as soon as it measures (refused: not 3
    minutes yet); after the first report commands and settings, the recalibration again
    (taken), then warmer air."""
    _until(lambda: env.scd41.measuring)
    out: dict[str, Any] = {
        "too_early": pms.send({"command": "calibrate", "args": {"co2": 612}})["result"]}
    first = pms.wait_data(1, timeout=15)[0]
    out |= {"first": first, "t_ms": next(x["t_ms"] for x in pms.lines if "data" in x)}
    out["bad"] = pms.send({"command": "calibrate", "args": {"radon": 1}})["result"]
    out["out_of_range"] = pms.send({"command": "calibrate", "args": {"co2": 300}})["result"]
    out["reboot"] = pms.send({"command": "reboot"})["result"]
    out["config"] = pms.send({"config": {"pm_sensor": "sps30", "calibration": {"co2": "x"}}})
    out["asc_enabled"] = env.scd41.asc_enabled
    pms.wait_data(2, timeout=20)  # 8 s later: over 3 minutes of sensor time
    out["sensor_s"] = env.sensor_clock()
    out["calibrate"] = pms.send(
        {"command": "calibrate", "args": {"co2": 612, "temperature": 29.0}})["result"]
    out["seen"] = len(pms.data)
    env.set_air(temperature=30.0)
    return out


def _node_script(tmp_path: Path, env: Environment) -> dict[int, Any]:
    """The whole firmware on the emulated board: the first DATA as the gateway decodes it."""
    with EmulatedNode("air-quality", flash_dir=tmp_path / "flash", environment=env,
                      node_id=NODE_ID, key=KEY,
                      extra_config={"sample_interval_s": 1, "pm_warmup_s": 1}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gateway:  # fmt: skip
        hello = gateway.wait(lambda f: f.type == m.HELLO, timeout=15)
        assert hello.body[4] == ["pms5003", "scd41", "bme280"]
        body: dict[int, Any] = gateway.wait(lambda f: f.type == m.DATA, timeout=20).body
        return body


def _stuck_script(run: AppRun, env: Environment, stop: threading.Event) -> None:
    """Air that changes between any two samples (steps mod 11 never repeat at the 1 s and 5 s
    sample spacings), with the BME280 frozen."""
    env.fault("bme280", "stuck")
    k = 0
    while not stop.wait(0.25):  # the air's pace, not a synchronisation
        k += 1
        env.set_air(pm1_0=10 + k % 11, pm2_5=20 + k % 11, pm10=30 + k % 11, co2=500 + k % 11)


def _faulty_script(sds: AppRun, env: Environment) -> dict[str, Any]:
    """After the first report: the faults as reported, then the sensors healthy again."""
    out = {"first": sds.wait_data(1, timeout=10)[0], "faults": sds.faults()}
    env.fault("pm", None)
    env.fault("scd41", None)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """pms: healthy, duty-cycled PM (8 s reports, 1 s samples, 1 s warm-up), a drifted SCD41;
    drops: the same with a PMS5003 that loses the first command after each wake; sds: an
    SDS011 left in a 5-minute working period, sending corrupt frames, and an unplugged SCD41
    from power-up, 3 s reports; stuck: air that changes, a frozen BME280. Each run's script
    drives it in its own thread, so their real-time waits overlap."""
    with (
        Environment(sensor_speedup=FAST_SENSORS) as pms_env,
        Environment(pm_sensor="sds011", sensor_speedup=FAST_SENSORS) as sds_env,
        Environment(sensor_speedup=FAST_SENSORS) as node_env,
        Environment(sensor_speedup=FAST_SENSORS) as stuck_env,
        Environment(sensor_speedup=FAST_SENSORS) as drops_env,
    ):  # fmt: skip
        for env in (pms_env, sds_env, node_env, stuck_env, drops_env):
            env.set_air(**AIR)
        pms_env.fault("scd41", "drift")
        drops_env.fault("pm", "drop_after_wake")
        sds_env.pm.work_period_min = 5  # kept in the sensor from an earlier life
        sds_env.fault("pm", "corrupt")
        sds_env.fault("scd41", "unplugged")
        duty = {"report_interval_s": 8, "sample_interval_s": 1, "pm_warmup_s": 1}
        with (
            AppRun(tmp_path_factory.mktemp("pms"), pms_env, "aq_node", **duty) as pms,
            AppRun(tmp_path_factory.mktemp("drops"), drops_env, "aq_node", **duty) as drops,
            AppRun(tmp_path_factory.mktemp("sds"), sds_env, "aq_node", pm_sensor="sds011",
                   report_interval_s=3, sample_interval_s=1, pm_warmup_s=1) as sds,
            AppRun(tmp_path_factory.mktemp("stuck"), stuck_env, "aq_node", stuck_after_s=3,
                   report_interval_s=3, sample_interval_s=1, pm_warmup_s=1) as stuck,
            ThreadPoolExecutor(4) as pool,
        ):  # fmt: skip
            stop = threading.Event()
            pool.submit(_stuck_script, stuck, stuck_env, stop)
            yield {
                "pms": pms, "pms_env": pms_env, "sds": sds, "sds_env": sds_env,
                "drops": drops, "drops_env": drops_env,
                "healthy": pool.submit(_healthy_script, pms, pms_env),
                "faulty": pool.submit(_faulty_script, sds, sds_env),
                "node": pool.submit(_node_script, tmp_path_factory.mktemp("node"), node_env),
                "stuck": stuck,
            }  # fmt: skip
            stop.set()


def _near(got: list[float], want: float, tol: float) -> bool:
    return all(abs(v - want) <= tol for v in got[:3])


def test_first_report_as_soon_as_every_sensor_has_a_sample(runs: dict[str, Any]) -> None:
    """The first DATA comes once PM (after warm-up), CO2 and T/RH/P have samples, values right:
    the PMS5003's atmospheric and CF=1 PM (1.5 times higher from 50 µg/m³ on) and its counts."""
    script = runs["healthy"].result(timeout=40)
    first, t_ms = script["first"], script["t_ms"]
    assert runs["pms"].lines[0] == {"sensors": ["pms5003", "scd41", "bme280"]}
    # The SCD41's first measurement 5 s after its (re)start: 0.5 s stop, the refused
    # recalibration's stop and FRC (~1 s), then the 5 s period.
    assert 5000 <= t_ms <= 9000
    r = readings(first)
    assert first[3] == round(t_ms / 1000)  # interval_s: since boot
    assert _near(r["pm1_0"], 20, 0) and _near(r["pm2_5"], 31, 0) and _near(r["pm10"], 45, 0)
    assert _near(r["pm1_0_cf1"], 20, 0) and _near(r["pm2_5_cf1"], 32, 0)
    assert _near(r["pm10_cf1"], 62, 0)  # 45 x 1.375
    assert _near(r["particles_0_3um"], 31 * 60 + 45 * 10, 0)
    assert _near(r["particles_10um"], 1, 0)
    assert _near(r["co2"], 612 + SCD41_DRIFT_PPM, 0)
    assert _near(r["temperature"], 29.37, 0.011) and _near(r["humidity"], 71.5, 0.011)
    assert _near(r["pressure"], 1008.25, 0.011)
    assert r["co2"][3] >= 1 and r["temperature"][3] >= 1 and r["pm2_5"][3] >= 1


def test_duty_cycle_and_calibration(runs: dict[str, Any]) -> None:
    """PM sleeps after a report and wakes a warm-up before its window; ASC is off; `calibrate`
    co2 runs a forced recalibration, refused before 3 minutes of measuring and then taken (the
    drifted SCD41 reads the reference after it); a temperature reference sets an offset;
    bad arguments are refused."""
    pms: AppRun = runs["pms"]
    env: Environment = runs["pms_env"]
    script = runs["healthy"].result(timeout=40)
    assert script["asc_enabled"] is False
    code, message, _ = script["too_early"]
    assert code == 3 and "0xFFFF" in message and "3 minutes" in message
    assert script["bad"][0] == 2 and "co2" in script["bad"][1]
    assert script["out_of_range"][0] == 2 and "400 to 5000" in script["out_of_range"][1]
    assert script["reboot"] is None  # the core's command, not the app's
    assert set(script["config"]["config_errors"]) == {"pm_sensor", "calibration"}
    assert script["sensor_s"] > 200
    offset = round(29.0 - 29.37, 2)
    assert script["calibrate"] == [0, None, {
        "co2_frc": {"reference_ppm": 612, "correction_ppm": -SCD41_DRIFT_PPM},
        "calibration": {"temperature": offset},
    }]  # fmt: skip
    assert env.scd41.reading_ppm() == 612

    def calibrated() -> list[dict[str, list[float]]]:
        later = [readings(d) for d in pms.data[script["seen"] :]]
        return [r for r in later if r.get("co2", [0, 0])[1] == 612 == r["co2"][2]]

    pms.wait(lambda: bool(calibrated()), timeout=20)
    r = calibrated()[0]
    assert r["temperature"][2] == round(30.0 + offset, 2)
    # PM: its window; the BME280 at every sample (fewer than 8 when the PM sensor's restart,
    # longer than this 1 s warm-up, holds up the first sample of the window)
    assert 3 <= r["pm2_5"][3] <= 7 and r["pressure"][3] >= r["pm2_5"][3]
    commands = env.pm.commands
    after_first = commands[commands.index(SLEEP) :]
    assert WAKE in after_first  # asleep after the first report, awake for the next window


def test_a_command_lost_after_wake_loses_no_window(runs: dict[str, Any]) -> None:
    """A PMS5003 that drops the first command after each wake: the passive mode is sent
    again until its reply comes, and every report after the first still has its PM window."""
    drops: AppRun = runs["drops"]
    env: Environment = runs["drops_env"]
    drops.wait_data(4, timeout=40)
    windows = [readings(d).get("pm2_5", [0, 0, 0, 0])[3] for d in drops.data[1:]]
    assert all(3 <= n <= 7 for n in windows), windows
    assert env.pm.dropped, "the emulator lost no command: nothing was tested"
    assert any("took on try 2" in x.get("log", [0, ""])[1] for x in drops.lines)


def test_faulty_sensors_are_reported_and_the_others_go_on(runs: dict[str, Any]) -> None:
    """A corrupt SDS011 and an unplugged SCD41 become faults; T/RH/P report alone; once
    healthy again both come back and their faults go. The SDS011's working period, left at
    5 minutes in the sensor, is set back to continuous."""
    sds: AppRun = runs["sds"]
    script = runs["faulty"].result(timeout=30)
    assert set(readings(script["first"])) == {"temperature", "humidity", "pressure"}
    faults = script["faults"]
    assert "checksum" in faults["sds011"] and "no answer" in faults["scd41"]
    assert any(x.get("log", [0])[0] == 4 for x in sds.lines)  # warnings go to the gateway
    sds.wait(lambda: not sds.faults() and "co2" in readings(sds.data[-1]), timeout=15)
    r = readings(sds.data[-1])
    assert _near(r["pm2_5"], 31.2, 0.01) and _near(r["pm10"], 45.4, 0.01)
    assert "pm1_0" not in r and "pm2_5_cf1" not in r  # the SDS011 has neither
    assert runs["sds_env"].pm.work_period_min == 0


def test_a_frozen_sensor_is_reported_stuck(runs: dict[str, Any]) -> None:
    """A BME280 sending the very same values for `stuck_after_s` is a fault while the changing
    PM and CO2 are not; its values still go out."""
    run: AppRun = runs["stuck"]
    run.wait(lambda: "bme280" in run.faults(), timeout=15)
    assert run.faults()["bme280"].startswith("stuck")
    count = len(run.data)
    run.wait(lambda: len(run.data) >= count + 2 and "co2" in readings(run.data[-1]), timeout=15)
    assert set(run.faults()) == {"bme280"}
    assert "temperature" in readings(run.data[-1])


def test_emulated_node_data_decodes_to_the_air_set(runs: dict[str, Any]) -> None:
    """The real firmware on the emulated board: its first signed DATA, decoded by the
    protocol package, carries the air the environment set, within sensor resolution."""
    body = runs["node"].result(timeout=40)
    r = readings(body)
    assert _near(r["pm1_0"], 20, 0) and _near(r["pm2_5"], 31, 0) and _near(r["pm10"], 45, 0)
    assert _near(r["co2"], 612, 0) and _near(r["temperature"], 29.37, 0.011)
    assert _near(r["humidity"], 71.5, 0.011) and _near(r["pressure"], 1008.25, 0.011)


def test_stats_rounding_under_micropython_and_cpython(tmp_path: Path) -> None:
    """Stats: mean rounds half up (negative values too), min/max/count, reset per interval."""
    from streetsense.firmware.ssnode.stats import Stats

    s = Stats(2)
    for v in (-5, -6, 4):
        s.add(0, v)
    assert s.reading(0, 5, -2) == [5, -2, -2, -6, 4, 3]
    assert s.reading(1, 4, 0) is None
    s.reset()
    assert s.reading(0, 5, -2) is None
