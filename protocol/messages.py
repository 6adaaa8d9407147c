"""Message catalogue of protocol v1: type codes, body keys and schemas, channels.

SPEC.md section "Messages" is the prose form of the tables below.
"""

from .compat import const
from .errors import MalformedBody

HELLO = const(0x01)
DATA = const(0x02)
EVENT = const(0x03)
STATUS = const(0x04)
LOG = const(0x05)
RESULT = const(0x06)
OTA_STATUS = const(0x07)  # firmware update (SPEC.md §5.13, issue 22)
ACK = const(0x10)
TIME = const(0x11)
CONFIG = const(0x12)
COMMAND = const(0x13)
OTA_BEGIN = const(0x14)
OTA_CHUNK = const(0x15)

# Types sent by the gateway to a node (the DOWNLINK flag is set on them).
DOWNLINK_TYPES = (ACK, TIME, CONFIG, COMMAND, OTA_BEGIN, OTA_CHUNK)

# Value kinds of a body key: i int, s str, b bytes, l list, m map, t bool.
# Each schema: type -> (name, {key: (field name, kind, required)}).
SCHEMAS = {
    HELLO: ("hello", {
        1: ("kind", "s", True),
        2: ("firmware", "s", True),
        3: ("protocol", "l", True),
        4: ("sensors", "l", True),
        5: ("reset_cause", "i", True),
        6: ("boot", "i", True),
        7: ("capabilities", "l", False),
        8: ("uptime_ms", "i", False),
    }),
    DATA: ("data", {
        1: ("ts", "i", True),
        2: ("clock", "i", True),
        3: ("interval_s", "i", False),
        4: ("readings", "l", True),
    }),
    EVENT: ("event", {
        1: ("ts", "i", True),
        2: ("clock", "i", True),
        3: ("event", "i", True),
        4: ("args", "m", False),
    }),
    STATUS: ("status", {
        1: ("uptime_s", "i", True),
        2: ("free_heap", "i", True),
        3: ("link", "m", True),
        4: ("faults", "m", False),
        5: ("ts", "i", False),
        6: ("clock", "i", False),
        7: ("counters", "m", False),  # a kind app's counters since boot (traffic: SPEC §5.5)
    }),
    LOG: ("log", {
        1: ("level", "i", True),
        2: ("message", "s", True),
        3: ("ts", "i", False),
        4: ("clock", "i", False),
    }),
    RESULT: ("result", {
        1: ("request", "i", True),
        2: ("code", "i", True),
        3: ("message", "s", False),
        4: ("data", "m", False),
    }),
    ACK: ("ack", {
        1: ("boot", "i", True),
        2: ("seq", "i", True),
    }),
    TIME: ("time", {
        1: ("utc_ms", "i", True),
    }),
    CONFIG: ("config", {
        1: ("request", "i", True),
        2: ("settings", "m", True),
    }),
    COMMAND: ("command", {
        1: ("request", "i", True),
        2: ("name", "s", True),
        3: ("args", "m", False),
    }),
    OTA_STATUS: ("ota_status", {
        1: ("request", "i", True),
        2: ("state", "i", True),
        3: ("offset", "i", True),
        4: ("version", "s", True),
        5: ("message", "s", False),
    }),
    OTA_BEGIN: ("ota_begin", {
        1: ("request", "i", True),
        2: ("version", "s", True),
        3: ("size", "i", True),
        4: ("sha256", "b", True),
        5: ("manifest_size", "i", True),
    }),
    OTA_CHUNK: ("ota_chunk", {
        1: ("request", "i", True),
        2: ("offset", "i", True),
        3: ("data", "b", True),
    }),
}  # fmt: skip

# DATA/EVENT/STATUS/LOG "clock": where the timestamp "ts" (seconds) comes from.
CLOCK_UTC = const(0)  # Unix time, the node has applied a TIME message
CLOCK_UPTIME = const(1)  # seconds since the node booted (no TIME yet)

# EVENT codes.
EVENT_VEHICLE = const(1)

# RESULT codes.
RESULT_OK = const(0)
RESULT_UNKNOWN_COMMAND = const(1)
RESULT_BAD_ARGS = const(2)
RESULT_FAILED = const(3)

# OTA_STATUS states (SPEC.md §5.13).
OTA_IDLE = const(0)  # no transfer
OTA_RECEIVING = const(1)  # `offset` bytes of the image are on flash
OTA_INSTALLED = const(2)  # verified and switched: the node resets into it
OTA_FAILED = const(3)  # the transfer was refused or did not verify: `message` says why
OTA_ROLLED_BACK = const(4)  # the new firmware did not reach the gateway: the previous runs
OTA_CONFIRMED = const(5)  # the new firmware runs, its HELLO was acknowledged
OTA_CHUNK_MAX = const(448)  # bytes of `data` in one OTA_CHUNK (fits a signed frame, §2)

# LOG levels (syslog severities).
LOG_ERROR = const(3)
LOG_WARNING = const(4)
LOG_INFO = const(6)
LOG_DEBUG = const(7)

# DATA readings are arrays: [channel, exponent, value] for one sample, or
# [channel, exponent, mean, min, max, count] for an interval's statistics.
# Values are fixed-point: real value = value * 10**exponent.
# The channel's low byte is the quantity; its high byte the instance (a lane, a sensor).
QUANTITIES = {
    1: ("pm1_0", "ug/m3"),
    2: ("pm2_5", "ug/m3"),
    3: ("pm10", "ug/m3"),
    4: ("co2", "ppm"),
    5: ("temperature", "degC"),
    6: ("humidity", "%RH"),
    7: ("pressure", "hPa"),
    16: ("motorbikes", "vehicles"),
    17: ("cars", "vehicles"),
    18: ("heavy_vehicles", "vehicles"),
    19: ("speed_mean", "km/h"),
    20: ("occupancy", "%"),
    21: ("unclassified_vehicles", "vehicles"),
    22: ("unknown_vehicles", "vehicles"),  # counted, class not measurable (SPEC §5.3)
    23: ("speed_space_mean", "km/h"),  # harmonic mean; speed_mean is the time-mean
}

# Air quality, the PMS5003's other words (SPEC.md §5.3.1): PM at CF=1 beside the atmospheric
# pm1_0/pm2_5/pm10 above, and the particles beyond each size in 0.1 L of air.
QUANTITIES.update({
    8: ("pm1_0_cf1", "ug/m3"),
    9: ("pm2_5_cf1", "ug/m3"),
    10: ("pm10_cf1", "ug/m3"),
    32: ("particles_0_3um", "#/0.1L"),
    33: ("particles_0_5um", "#/0.1L"),
    34: ("particles_1_0um", "#/0.1L"),
    35: ("particles_2_5um", "#/0.1L"),
    36: ("particles_5_0um", "#/0.1L"),
    37: ("particles_10um", "#/0.1L"),
})


def channel(quantity, instance=0):
    """The channel number of ``quantity`` at ``instance`` (a lane, a sensor index)."""
    return (instance << 8) | quantity


def _kind_ok(value, kind):
    if kind == "i":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "s":
        return isinstance(value, str)
    if kind == "l":
        return isinstance(value, list)
    if kind == "m":
        return isinstance(value, dict)
    if kind == "b":
        return isinstance(value, bytes)
    return isinstance(value, bool)


def _check_reading(reading, index):
    if not isinstance(reading, list) or len(reading) not in (3, 6):
        raise MalformedBody("a reading is [ch, exp, value] or [ch, exp, mean, min, max, n]",
                            "readings", index)
    for item in reading:
        if not _kind_ok(item, "i"):
            raise MalformedBody("reading items are integers", "readings", index)
    if not 0 <= reading[0] <= 0xFFFFFFFF:
        raise MalformedBody("reading channel out of range 0..2**32-1", "readings", index)
    if not -9 <= reading[1] <= 9:
        raise MalformedBody("reading exponent out of range -9..9", "readings", index)
    if len(reading) == 6 and reading[5] < 0:
        raise MalformedBody("reading count is negative", "readings", index)


# What a known key's value must be beyond its kind (SPEC.md §5): each rule returns None when
# the value is fine, else what is wrong with it. `boot` is the frame header's boot.
def _u32(value, body, boot):
    return None if 0 <= value <= 0xFFFFFFFF else "out of range 0..2**32-1"


def _not_negative(value, body, boot):
    return None if value >= 0 else "negative"


def _clock(value, body, boot):
    return None if value == CLOCK_UTC or value == CLOCK_UPTIME else "neither 0 (UTC) nor 1 (uptime)"


def _level(value, body, boot):
    return None if 0 <= value <= 7 else "not a syslog severity 0..7"


def _utc_ms(value, body, boot):
    return None if 0 <= value <= 0x7FFFFFFFFFFFFFFF else "out of range 0..2**63-1"


def _kind_name(value, body, boot):
    # Empty only for a factory-state node never provisioned (SPEC.md §5.2, §6.6).
    if value:
        return None
    capabilities = body.get(7)
    # Compared item by item as strings: MicroPython warns on bytes == str (a bin capability).
    if isinstance(capabilities, list) and any(
            isinstance(item, str) and item == "factory" for item in capabilities):
        return None
    return "empty outside a factory-state HELLO"


def _protocol(value, body, boot):
    if len(value) != 2:
        return "not [major, minor]"
    for part in value:
        if not _kind_ok(part, "i") or not 0 <= part <= 15:
            return "major and minor are integers 0..15"
    return None


def _strs(value, body, boot):
    for item in value:  # an array's items, a map's keys
        if not isinstance(item, str):
            return "holds a non-string" if isinstance(value, list) else "has a non-string key"
    return None


def _hello_boot(value, body, boot):
    if boot is not None and value != boot:
        return "differs from the header boot"
    return None


def _str_to(kind):
    def rule(value, body, boot):
        for key in value:
            if not isinstance(key, str) or not _kind_ok(value[key], kind):
                return "must map strings to %s" % ("strings" if kind == "s" else "integers")
        return None
    return rule


def _event_args(value, body, boot):
    wrong = _strs(value, body, boot)
    if wrong is None and body[3] == EVENT_VEHICLE:
        for name in VEHICLE_ARGS:
            if name in value and not _kind_ok(value[name], "i"):
                return "vehicle %s must be an integer" % name
    return wrong


def _ota_state(value, body, boot):
    return None if OTA_IDLE <= value <= OTA_CONFIRMED else "not a state 0..5"


def _sha256(value, body, boot):
    return None if len(value) == 32 else "not 32 bytes"


def _image_size(value, body, boot):
    return None if 0 < value <= 0xFFFFFFFF else "out of range 1..2**32-1"


def _manifest_size(value, body, boot):
    size = body[3]
    return None if 0 < value <= size else "not 1..size"


def _chunk_data(value, body, boot):
    return None if 0 < len(value) <= OTA_CHUNK_MAX else "not 1..%d bytes" % OTA_CHUNK_MAX


def _readings(value, body, boot):
    for index in range(len(value)):
        _check_reading(value[index], index)
    return None


# The vehicle EVENT's args (SPEC.md §5.4), all integers when present.
VEHICLE_ARGS = ("lane", "dir", "speed_dkmh", "length_cm", "class")

# (type, key) -> rule, checked right after the key's kind.
RULES = {
    (HELLO, 1): _kind_name, (HELLO, 3): _protocol, (HELLO, 4): _strs,
    (HELLO, 6): _hello_boot, (HELLO, 7): _strs,
    (DATA, 1): _not_negative, (DATA, 2): _clock, (DATA, 4): _readings,
    (EVENT, 1): _not_negative, (EVENT, 2): _clock, (EVENT, 4): _event_args,
    (STATUS, 3): _str_to("i"), (STATUS, 4): _str_to("s"),
    (STATUS, 5): _not_negative, (STATUS, 6): _clock,
    (STATUS, 7): _str_to("i"),  # a kind app's counters (issue 14: traffic)
    (LOG, 1): _level, (LOG, 3): _not_negative, (LOG, 4): _clock,
    (RESULT, 4): _strs,
    (ACK, 1): _u32, (ACK, 2): _u32,
    (TIME, 1): _utc_ms,
    (CONFIG, 2): _strs,
    (COMMAND, 3): _strs,
    (OTA_STATUS, 2): _ota_state, (OTA_STATUS, 3): _u32,
    (OTA_BEGIN, 3): _image_size, (OTA_BEGIN, 4): _sha256, (OTA_BEGIN, 5): _manifest_size,
    (OTA_CHUNK, 2): _u32, (OTA_CHUNK, 3): _chunk_data,
}  # fmt: skip


def validate(mtype, body, boot=None):
    """Check ``body`` against the schema of ``mtype``; unknown keys are allowed and kept.

    ``boot`` is the header's boot (HELLO repeats it). Keys are checked in ascending order,
    each for presence, kind, then its rule: the first failure is raised, the same one on
    both interpreters (their dict orders differ). Unknown message types are not checked
    (receivers ignore them, see SPEC.md).
    """
    schema = SCHEMAS.get(mtype)
    if schema is None:
        return
    if not isinstance(body, dict):
        raise MalformedBody("body of %s must be a map" % schema[0], "body", body)
    fields = schema[1]
    for key in sorted(fields):
        name, kind, required = fields[key]
        if key not in body:
            if required:
                raise MalformedBody("%s body lacks %s" % (schema[0], name), name, None)
            continue
        value = body[key]
        if not _kind_ok(value, kind):
            raise MalformedBody("%s.%s has the wrong type" % (schema[0], name), name, value)
        rule = RULES.get((mtype, key))
        wrong = rule(value, body, boot) if rule is not None else None
        if wrong is not None:
            raise MalformedBody("%s.%s %s" % (schema[0], name, wrong), name, value)


def type_name(mtype):
    """The lower-case name of a message type, or None for a type this version does not know."""
    schema = SCHEMAS.get(mtype)
    return schema[0] if schema else None


def named(mtype, body):
    """The body with field names instead of integer keys (unknown keys kept as numbers)."""
    schema = SCHEMAS.get(mtype)
    if schema is None or not isinstance(body, dict):
        return body
    fields = schema[1]
    out = {}
    for key, value in body.items():
        field = fields.get(key)
        out[field[0] if field else key] = value
    return out
