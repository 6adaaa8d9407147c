"""The StreetSense gateway: serial and BLE nodes in, a durable journal, MQTT out.

Configuration (`config`) and the node registry (`registry`) are the entry points; the
service itself lives in `service` (``Gateway(config)``).
"""

from .config import ConfigError, GatewayConfig, Problem, check_config, load_config
from .registry import NodeInfo, Registry, RegistryError, append_node

__all__ = [
    "ConfigError",
    "GatewayConfig",
    "NodeInfo",
    "Problem",
    "Registry",
    "RegistryError",
    "append_node",
    "check_config",
    "load_config",
]
