# Host-side types of limits.py (the device code carries no annotations).
from typing import Any

SETTINGS: dict[str, tuple[int, int]]
COMMAND_ARGS: dict[str, dict[str, tuple[int, int]]]
CALIBRATION: dict[str, tuple[int, int, int]]

def setting_error(name: str, value: Any) -> str | None: ...
def argument_error(command: str, args: dict[str, Any]) -> str | None: ...
