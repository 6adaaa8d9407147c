"""Home Assistant MQTT discovery: one retained sensor config per node reading."""

import json
from typing import Any

from streetsense.gateway.discovery import HomeAssistantDiscovery
from streetsense.gateway.registry import NodeInfo

KEY = bytes(32)
AQ = NodeInfo(42, "HN-0042", "air-quality", KEY, location="Hoan Kiem")
TRAFFIC = NodeInfo(7, "HN-0007", "traffic", KEY)


def discovery() -> HomeAssistantDiscovery:
    """Discovery for site hanoi, gateway gw-01, the default prefixes."""
    return HomeAssistantDiscovery(
        prefix="streetsense", site="hanoi", gateway_id="gw-01", ha_prefix="homeassistant"
    )


def configs(messages: list[tuple[str, bytes]]) -> dict[str, dict[str, Any]]:
    """{topic: decoded config}."""
    return {topic: json.loads(payload) for topic, payload in messages}


def test_air_quality_node_sensors() -> None:
    """A data message announces each reading with unit, device class, topics and device."""
    message = {
        "readings": {
            "pm2_5": {"value": 31.2},
            "co2": {"value": 612},
            "temperature": {"value": 29.5},
        }
    }
    found = configs(discovery().on_data(AQ, message))
    assert sorted(found) == [
        "homeassistant/sensor/streetsense_hanoi_hn_0042_co2/config",
        "homeassistant/sensor/streetsense_hanoi_hn_0042_pm2_5/config",
        "homeassistant/sensor/streetsense_hanoi_hn_0042_temperature/config",
    ]
    pm = found["homeassistant/sensor/streetsense_hanoi_hn_0042_pm2_5/config"]
    assert pm == {
        "name": "PM2.5",
        "unique_id": "streetsense_hanoi_hn_0042_pm2_5",
        "state_topic": "streetsense/hanoi/HN-0042/data",
        "value_template": "{{ value_json.readings['pm2_5'].value }}",
        "state_class": "measurement",
        "availability": [
            {"topic": "streetsense/hanoi/HN-0042/state", "value_template": "{{ value_json.state }}"}
        ],
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "device": {
            "identifiers": ["streetsense_hanoi_hn_0042"],
            "name": "HN-0042",
            "manufacturer": "StreetSense",
            "model": "air-quality node",
            "serial_number": "42",
            "via_device": "streetsense_gateway_gw_01",
            "suggested_area": "Hoan Kiem",
        },
        "origin": {"name": "StreetSense gateway"},
        "unit_of_measurement": "µg/m³",
        "device_class": "pm25",
    }
    co2 = found["homeassistant/sensor/streetsense_hanoi_hn_0042_co2/config"]
    assert (co2["device_class"], co2["unit_of_measurement"]) == ("carbon_dioxide", "ppm")
    temperature = found["homeassistant/sensor/streetsense_hanoi_hn_0042_temperature/config"]
    assert temperature["unit_of_measurement"] == "°C"


def test_announced_once_and_new_readings_later() -> None:
    """Readings already announced are not sent again; a new lane is announced when it appears."""
    ha = discovery()
    lane0 = {"readings": {"motorbikes": {}, "cars": {}}}
    assert len(ha.on_data(TRAFFIC, lane0)) == 2
    assert ha.on_data(TRAFFIC, lane0) == []
    (added,) = configs(ha.on_data(TRAFFIC, {"readings": {"motorbikes": {}, "motorbikes_1": {}}}))
    config = configs(ha.on_data(TRAFFIC, {"readings": {"speed_mean_1": {}}}))
    (speed,) = config.values()
    assert added.endswith("streetsense_hanoi_hn_0007_motorbikes_1/config")
    assert (speed["name"], speed["device_class"], speed["unit_of_measurement"]) == (
        "Mean speed lane 1",
        "speed",
        "km/h",
    )


def test_pms5003_cf1_and_counts_have_labels_and_units() -> None:
    """CF=1 PM and the particle counts (SPEC §5.3.1) are announced with their own labels."""
    found = configs(discovery().on_data(AQ, {"readings": {"pm2_5_cf1": {}, "particles_0_3um": {}}}))
    by_name = {c["name"]: c for c in found.values()}
    assert by_name["PM2.5 CF=1"]["unit_of_measurement"] == "µg/m³"
    assert by_name["PM2.5 CF=1"]["device_class"] == "pm25"
    assert by_name["Particles >0.3 µm"]["unit_of_measurement"] == "/0.1 L"


def test_unknown_quantity_has_no_unit() -> None:
    """A reading of a quantity the gateway does not know is announced plainly by its key."""
    (config,) = configs(discovery().on_data(AQ, {"readings": {"q99": {"value": 1}}})).values()
    assert config["name"] == "q99" and "unit_of_measurement" not in config
    assert "device_class" not in config


def test_remove_deletes_the_entities() -> None:
    """remove() gives an empty retained payload for every config announced for the node."""
    ha = discovery()
    announced = ha.on_data(AQ, {"readings": {"pm10": {}, "humidity": {}}})
    assert ha.remove(AQ) == [(topic, b"") for topic, _ in sorted(announced)]
    assert ha.remove(AQ) == []
    assert len(ha.on_data(AQ, {"readings": {"pm10": {}}})) == 1  # announced again after removal
