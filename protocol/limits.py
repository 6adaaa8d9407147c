"""Limits of node settings and command arguments (SPEC.md §5.12).

The gateway checks a CONFIG or COMMAND against them before it signs it, and the node checks
it again before it applies it (answering BAD_ARGS): a value outside them is a slip or an
attack, never something a street sensor needs. Settings and arguments not listed here are
checked by the node's kind-specific code alone. Runs on MicroPython and CPython.
"""

# setting -> (lowest, highest), integers
SETTINGS = {
    "report_interval_s": (1, 86400),
    "sample_interval_s": (1, 3600),
    "status_interval_s": (1, 86400),
    "retry_max_s": (1, 3600),
    "pm_warmup_s": (0, 600),  # PMS5003: data settle ~30 s after wake (REFERENCE.md)
    "stuck_after_s": (0, 604800),
}

# command -> argument -> (lowest, highest), integers
COMMAND_ARGS = {
    "reboot": {"delay_s": (0, 3600)},
    "identify": {"seconds": (1, 600)},
}

# quantity -> (largest |offset| of the `calibration` setting, lowest and highest reference
# value of the `calibrate` command), in the quantity's unit. Offsets are ten times or more
# the datasheets' accuracy (PMS5003 ±10 ug/m3; SCD4x ±(50 ppm + 5 %); BME280 ±1 degC,
# ±3 %RH, ±1 hPa): beyond them the sensor is broken, not drifting. References span the
# sensors' ranges (PMS5003 0-1000 ug/m3, SCD4x 400-5000 ppm, BME280 -40-85 degC,
# 300-1100 hPa).
CALIBRATION = {
    "pm1_0": (100, 0, 1000),
    "pm2_5": (100, 0, 1000),
    "pm10": (100, 0, 1000),
    "co2": (1000, 400, 5000),
    "temperature": (10, -40, 85),
    "humidity": (20, 0, 100),
    "pressure": (20, 300, 1100),
}


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_error(value, low, high):
    if _int(value) and low <= value <= high:
        return None
    return "integer %d to %d" % (low, high)


def _calibration_error(values, reference):
    if not isinstance(values, dict):
        return "map of quantity name to value"
    for name, value in values.items():
        limits = CALIBRATION.get(name)
        if limits is None:
            continue  # the node knows which quantities it measures
        largest, low, high = limits
        if reference:
            if not _number(value) or not low <= value <= high:
                return "%s: %d to %d" % (name, low, high)
        elif not _number(value) or not -largest <= value <= largest:
            return "%s: offset -%d to %d" % (name, largest, largest)
    return None


def setting_error(name, value):
    """Why ``value`` is beyond the limits of setting ``name``, or None."""
    if name in SETTINGS:
        low, high = SETTINGS[name]
        return _range_error(value, low, high)
    if name == "calibration":
        return _calibration_error(value, False)
    return None


def argument_error(command, args):
    """Why ``args`` (a map) of COMMAND ``command`` are beyond their limits, or None."""
    if command == "calibrate":
        return _calibration_error(args, True)
    limits = COMMAND_ARGS.get(command, {})
    for name, value in args.items():
        if name in limits:
            low, high = limits[name]
            error = _range_error(value, low, high)
            if error:
                return "%s: %s" % (name, error)
    return None
