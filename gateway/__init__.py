"""The StreetSense gateway: serial and BLE nodes in, a durable journal, MQTT out.

Configuration (`config`) and the node registry (`registry`) are the entry points; the
service itself lives in `service` (``Gateway(config)``), re-exported here on first use so that
tools which only read the config or the registry never load the MQTT and serial stacks.
"""

from typing import Any

from .config import ConfigError, GatewayConfig, Problem, check_config, load_config
from .registry import NodeInfo, Registry, RegistryError, append_node

__all__ = [
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "NodeInfo",
    "Problem",
    "Registry",
    "RegistryError",
    "append_node",
    "check_config",
    "load_config",
]


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from .service import Gateway

        return Gateway
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
