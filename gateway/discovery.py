"""Home Assistant MQTT discovery for the nodes' readings.

For each reading a node publishes (``pm2_5``, ``motorbikes_1``, ...), one retained config on
``<ha prefix>/sensor/<unique id>/config``: the node is the device (via the gateway), the
state comes from the node's ``data`` topic through a value template, availability from the
node's retained ``state`` topic. `HomeAssistantDiscovery.on_data` returns the configs for
readings not announced yet, so a node's entities appear with its first data message and a
new lane or sensor appears when it first reports. A faulted sensor's reading is missing from
``data``, so Home Assistant shows it as unknown until it reports again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import GatewayConfig
from .registry import NodeInfo
from .topics import Topics

__all__ = ["HomeAssistantDiscovery", "SensorKind", "sensor_config"]


@dataclass(frozen=True)
class SensorKind:
    """How Home Assistant shows one quantity."""

    label: str
    unit: str | None
    device_class: str | None = None
    icon: str | None = None


# Units as Home Assistant expects them for each device class (not the wire units).
SENSORS: dict[str, SensorKind] = {
    "pm1_0": SensorKind("PM1.0", "µg/m³", "pm1"),
    "pm2_5": SensorKind("PM2.5", "µg/m³", "pm25"),
    "pm10": SensorKind("PM10", "µg/m³", "pm10"),
    "co2": SensorKind("CO2", "ppm", "carbon_dioxide"),
    "temperature": SensorKind("Temperature", "°C", "temperature"),
    "humidity": SensorKind("Humidity", "%", "humidity"),
    "pressure": SensorKind("Pressure", "hPa", "atmospheric_pressure"),
    "motorbikes": SensorKind("Motorbikes", "vehicles", icon="mdi:motorbike"),
    "cars": SensorKind("Cars", "vehicles", icon="mdi:car"),
    "heavy_vehicles": SensorKind("Heavy vehicles", "vehicles", icon="mdi:truck"),
    "unknown_vehicles": SensorKind("Vehicles of unknown class", "vehicles", icon="mdi:help"),
    "speed_mean": SensorKind("Mean speed", "km/h", "speed"),
    "speed_space_mean": SensorKind("Space-mean speed", "km/h", "speed"),
    "occupancy": SensorKind("Occupancy", "%", icon="mdi:road-variant"),
}
# A PMS5003's other words (SPEC §5.3.1): PM at CF=1 and the particle counts per 0.1 L.
SENSORS.update({
    "pm1_0_cf1": SensorKind("PM1.0 CF=1", "µg/m³", "pm1"),
    "pm2_5_cf1": SensorKind("PM2.5 CF=1", "µg/m³", "pm25"),
    "pm10_cf1": SensorKind("PM10 CF=1", "µg/m³", "pm10"),
    **{f"particles_{size}um": SensorKind(f"Particles >{label} µm", "/0.1 L", icon="mdi:blur")
       for size, label in (("0_3", "0.3"), ("0_5", "0.5"), ("1_0", "1.0"), ("2_5", "2.5"),
                           ("5_0", "5"), ("10", "10"))},
})


def _split(reading: str) -> tuple[str, int]:
    """``motorbikes_1`` → ("motorbikes", 1); ``pm2_5`` → ("pm2_5", 0)."""
    name, _, suffix = reading.rpartition("_")
    if name in SENSORS and suffix.isdigit():
        return name, int(suffix)
    return reading, 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())


def sensor_config(
    *,
    node: NodeInfo,
    reading: str,
    topics: Topics,
) -> tuple[str, dict[str, Any]]:
    """(unique id, discovery config) of one reading of ``node`` at ``topics``' gateway."""
    quantity, instance = _split(reading)
    kind = SENSORS.get(quantity, SensorKind(reading, None))
    label = kind.label
    if instance:
        label += f" lane {instance}" if node.kind == "traffic" else f" {instance + 1}"
    site, gateway_id = topics.site, topics.gateway_id
    unique_id = f"streetsense_{_slug(site)}_{_slug(node.name)}_{reading}"
    config: dict[str, Any] = {
        "name": label,
        "unique_id": unique_id,
        "state_topic": topics.node(node.name, "data"),
        "value_template": f"{{{{ value_json.readings['{reading}'].value }}}}",
        "state_class": "measurement",
        "availability": [
            {"topic": topics.node(node.name, "state"), "value_template": "{{ value_json.state }}"}
        ],
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "device": {
            "identifiers": [f"streetsense_{_slug(site)}_{_slug(node.name)}"],
            "name": node.name,
            "manufacturer": "StreetSense",
            "model": f"{node.kind} node",
            "serial_number": str(node.id),
            "via_device": f"streetsense_gateway_{_slug(gateway_id)}",
            **({"suggested_area": node.location} if node.location else {}),
        },
        "origin": {"name": "StreetSense gateway"},
    }
    if kind.unit is not None:
        config["unit_of_measurement"] = kind.unit
    if kind.device_class is not None:
        config["device_class"] = kind.device_class
    if kind.icon is not None:
        config["icon"] = kind.icon
    return unique_id, config


class HomeAssistantDiscovery:
    """Which discovery configs to publish (retained, QoS 1) as nodes report."""

    def __init__(self, *, prefix: str, site: str, gateway_id: str, ha_prefix: str) -> None:
        self.topics = Topics(prefix, site, gateway_id)
        self.ha_prefix = ha_prefix
        self._announced: dict[str, set[str]] = {}  # node name -> unique ids published

    @classmethod
    def from_config(cls, config: GatewayConfig) -> HomeAssistantDiscovery:
        return cls(
            prefix=config.mqtt.prefix,
            site=config.gateway.site,
            gateway_id=config.gateway.id,
            ha_prefix=config.homeassistant.prefix,
        )

    def on_data(self, node: NodeInfo, message: Mapping[str, Any]) -> list[tuple[str, bytes]]:
        """(topic, payload) of the configs for readings in this ``data`` message that were
        not announced yet."""
        return self.announce(node, message.get("readings", {}))

    def announce(self, node: NodeInfo, readings: Iterable[str]) -> list[tuple[str, bytes]]:
        """(topic, payload) of the configs for ``readings`` of ``node`` not announced yet."""
        done = self._announced.setdefault(node.name, set())
        out = []
        for reading in sorted(readings):
            unique_id, config = sensor_config(
                node=node, reading=reading, topics=self.topics
            )
            if unique_id not in done:
                done.add(unique_id)
                payload = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
                out.append((self._topic(unique_id), payload.encode()))
        return out

    def remove(self, node: NodeInfo) -> list[tuple[str, bytes]]:
        """(topic, empty payload) that delete ``node``'s entities (node removed or disabled)."""
        return [(self._topic(uid), b"") for uid in sorted(self._announced.pop(node.name, ()))]

    def _topic(self, unique_id: str) -> str:
        return f"{self.ha_prefix}/sensor/{unique_id}/config"
