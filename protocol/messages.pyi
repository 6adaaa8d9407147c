# Host-side types of messages.py (the device code carries no annotations). Names added to
# messages.py before they are added here are Any to the type checker (__getattr__ below).
from collections.abc import Callable
from typing import Any, Final

HELLO: Final[int]
DATA: Final[int]
EVENT: Final[int]
STATUS: Final[int]
LOG: Final[int]
RESULT: Final[int]
OTA_STATUS: Final[int]
ACK: Final[int]
TIME: Final[int]
CONFIG: Final[int]
COMMAND: Final[int]
OTA_BEGIN: Final[int]
OTA_CHUNK: Final[int]
DOWNLINK_TYPES: Final[tuple[int, ...]]
SCHEMAS: Final[dict[int, tuple[str, dict[int, tuple[str, str, bool]]]]]
CLOCK_UTC: Final[int]
CLOCK_UPTIME: Final[int]
EVENT_VEHICLE: Final[int]
RESULT_OK: Final[int]
RESULT_UNKNOWN_COMMAND: Final[int]
RESULT_BAD_ARGS: Final[int]
RESULT_FAILED: Final[int]
OTA_IDLE: Final[int]
OTA_RECEIVING: Final[int]
OTA_INSTALLED: Final[int]
OTA_FAILED: Final[int]
OTA_ROLLED_BACK: Final[int]
OTA_CONFIRMED: Final[int]
OTA_CHUNK_MAX: Final[int]
LOG_ERROR: Final[int]
LOG_WARNING: Final[int]
LOG_INFO: Final[int]
LOG_DEBUG: Final[int]
QUANTITIES: Final[dict[int, tuple[str, str]]]
VEHICLE_ARGS: Final[tuple[str, ...]]
RULES: Final[dict[tuple[int, int], Callable[[Any, Any, int | None], str | None]]]

def channel(quantity: int, instance: int = 0) -> int: ...
def validate(mtype: int, body: Any, boot: int | None = None) -> None: ...
def type_name(mtype: int) -> str | None: ...
def named(mtype: int, body: Any) -> Any: ...
def __getattr__(name: str) -> Any: ...
