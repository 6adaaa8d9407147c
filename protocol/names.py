"""Names for the numbers in protocol v1's bodies (SPEC.md §5): body keys, codes, classes.

So that code reads ``body[DATA_READINGS]``, not ``body[4]``. The key numbers are those of
``messages.SCHEMAS``, which stays the table the schema check reads (a test keeps the two
equal); message types, clocks, result codes, event codes and log levels are in ``messages``.
Imported only by code that wants the names: on a node it costs RAM for each one.
"""

from .compat import const
from .messages import (
    EVENT_VEHICLE,
    OTA_CONFIRMED,
    OTA_FAILED,
    OTA_IDLE,
    OTA_INSTALLED,
    OTA_RECEIVING,
    OTA_ROLLED_BACK,
    RESULT_BAD_ARGS,
    RESULT_FAILED,
    RESULT_OK,
    RESULT_UNKNOWN_COMMAND,
)

# HELLO 0x01 (§5.2)
HELLO_KIND = const(1)
HELLO_FIRMWARE = const(2)
HELLO_PROTOCOL = const(3)
HELLO_SENSORS = const(4)
HELLO_RESET_CAUSE = const(5)
HELLO_BOOT = const(6)
HELLO_CAPABILITIES = const(7)
HELLO_UPTIME_MS = const(8)

# DATA 0x02 (§5.3)
DATA_TS = const(1)
DATA_CLOCK = const(2)
DATA_INTERVAL_S = const(3)
DATA_READINGS = const(4)

# EVENT 0x03 (§5.4)
EVENT_TS = const(1)
EVENT_CLOCK = const(2)
EVENT_CODE = const(3)  # the key named "event"
EVENT_ARGS = const(4)

# STATUS 0x04 (§5.5)
STATUS_UPTIME_S = const(1)
STATUS_FREE_HEAP = const(2)
STATUS_LINK = const(3)
STATUS_FAULTS = const(4)
STATUS_TS = const(5)
STATUS_CLOCK = const(6)
STATUS_COUNTERS = const(7)  # a kind app's counters (issue 14: traffic)

# LOG 0x05 (§5.6)
LOG_LEVEL = const(1)
LOG_MESSAGE = const(2)
LOG_TS = const(3)
LOG_CLOCK = const(4)

# RESULT 0x06 (§5.7)
RESULT_REQUEST = const(1)
RESULT_CODE = const(2)
RESULT_MESSAGE = const(3)
RESULT_DATA = const(4)

# ACK 0x10 (§5.8)
ACK_BOOT = const(1)
ACK_SEQ = const(2)

# TIME 0x11 (§5.9)
TIME_UTC_MS = const(1)

# CONFIG 0x12 (§5.10)
CONFIG_REQUEST = const(1)
CONFIG_SETTINGS = const(2)

# COMMAND 0x13 (§5.11)
COMMAND_REQUEST = const(1)
COMMAND_NAME = const(2)
COMMAND_ARGS = const(3)

# OTA_STATUS 0x07, OTA_BEGIN 0x14, OTA_CHUNK 0x15 (§5.13)
OTA_STATUS_REQUEST = const(1)
OTA_STATUS_STATE = const(2)
OTA_STATUS_OFFSET = const(3)
OTA_STATUS_VERSION = const(4)
OTA_STATUS_MESSAGE = const(5)
OTA_BEGIN_REQUEST = const(1)
OTA_BEGIN_VERSION = const(2)
OTA_BEGIN_SIZE = const(3)
OTA_BEGIN_SHA256 = const(4)
OTA_BEGIN_MANIFEST_SIZE = const(5)
OTA_CHUNK_REQUEST = const(1)
OTA_CHUNK_OFFSET = const(2)
OTA_CHUNK_DATA = const(3)

# Vehicle classes: the vehicle EVENT's `class` arg (§5.4).
VEHICLE_MOTORBIKE = const(1)
VEHICLE_CAR = const(2)
VEHICLE_HEAVY = const(3)
VEHICLE_UNKNOWN = const(4)  # counted, not classed (issue 14)
VEHICLE_CLASSES = {VEHICLE_MOTORBIKE: "motorbike", VEHICLE_CAR: "car",
                   VEHICLE_HEAVY: "heavy_vehicle", VEHICLE_UNKNOWN: "unknown"}

# Codes as words, for logs and payloads (a code v1 does not name has no entry).
RESULT_NAMES = {RESULT_OK: "OK", RESULT_UNKNOWN_COMMAND: "UNKNOWN_COMMAND",
                RESULT_BAD_ARGS: "BAD_ARGS", RESULT_FAILED: "FAILED"}
EVENT_NAMES = {EVENT_VEHICLE: "vehicle"}
OTA_STATE_NAMES = {OTA_IDLE: "idle", OTA_RECEIVING: "receiving", OTA_INSTALLED: "installed",
                   OTA_FAILED: "failed", OTA_ROLLED_BACK: "rolled_back",
                   OTA_CONFIRMED: "confirmed"}
LOG_LEVEL_NAMES = {0: "emergency", 1: "alert", 2: "critical", 3: "error", 4: "warning",
                   5: "notice", 6: "info", 7: "debug"}
