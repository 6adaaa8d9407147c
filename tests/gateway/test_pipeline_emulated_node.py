"""The real firmware on the emulated board -> the gateway -> mosquitto: the issue's end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.hil.environment import FAST_SENSORS, Environment
from streetsense.hil.keys import numbered_key
from streetsense.hil.node import EmulatedNode
from streetsense.hil.observer import MqttObserver
from tests.support.gateway_rig import make_config, node_info, topic

pytestmark = pytest.mark.micropython


async def test_pipeline_emulated_air_quality_node_readings_on_mqtt(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """An EmulatedNode's HELLO becomes its birth and its readings, the environment's values
    within sensor resolution, appear on `data` with units and UTC time (after the TIME)."""
    with Environment(sensor_speedup=FAST_SENSORS) as env:
        env.set_air(pm1_0=20, pm2_5=31.2, pm10=45.4, co2=612, temperature=29.37,
                    humidity=71.5, pressure=1008.25)
        node = EmulatedNode("air-quality", flash_dir=tmp_path / "flash", environment=env,
                            node_id=42, key=numbered_key(42),
                            extra_config={"sample_interval_s": 1, "pm_warmup_s": 1,
                                          "report_interval_s": 3})
        with node:
            port = Path(node.port)
            config = make_config(tmp_path, mosquitto.url, [port], [node_info(42)])
            async with MqttObserver(mosquitto.url, topics=["streetsense/#"]) as observer, \
                    Gateway(config, derivers=[]).running():
                state = await observer.expect(topic("HN-0042", "state"),
                                              lambda m: "birth" in m.json(), timeout=30)
                assert state.json()["birth"]["sensors"] == ["pms5003", "scd41", "bme280"]
                message = await observer.expect(
                    topic("HN-0042", "data"), lambda m: m.json()["clock"] == "utc"
                    and "co2" in m.json()["readings"], timeout=30)
    data = message.json()
    readings = data["readings"]
    assert data["node"] == "HN-0042" and data["kind"] == "air-quality"
    assert data["boot"] == node.boot_count and data["delayed"] is False
    assert readings["pm2_5"]["unit"] == "ug/m3" and abs(readings["pm2_5"]["value"] - 31) <= 1
    assert abs(readings["pm10"]["value"] - 45) <= 1
    assert readings["co2"]["unit"] == "ppm" and abs(readings["co2"]["value"] - 612) <= 1
    assert abs(readings["temperature"]["value"] - 29.37) <= 0.02
    assert abs(readings["humidity"]["value"] - 71.5) <= 0.02
    assert abs(readings["pressure"]["value"] - 1008.25) <= 0.02
