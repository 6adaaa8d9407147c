"""Node settings on flash (`config.json`) and the boot counter (`bootcount`).

Both files are written atomically: the new content goes to a `.tmp` file that is then renamed
over the old one, so a power cut leaves either the old or the new version, never half of one.
Keys the firmware does not know are kept, so a newer gateway's settings survive a save.
"""

import json
import os

CONFIG_FILE = "config.json"
BOOTCOUNT_FILE = "bootcount"

# `node_id` 0 with an empty `key` is the factory state (SPEC.md §6.6). `kind` is set by
# provisioning and kept by a factory reset; a freshly flashed node has none, so its factory
# HELLO claims no kind it was never given (provision refuses a kind the board contradicts).
DEFAULTS = {
    "node_id": 0,
    "key": "",
    "kind": "",
    "link": "serial",
    "report_interval_s": 60,
    "sample_interval_s": 5,
    "status_interval_s": 300,
    "retry_max_s": 30,  # cap of the uplink retransmission backoff
    "spool_max_kb": 1024,  # flash the queue may use during a gateway outage
    "pm_sensor": "pms5003",
    "pm_warmup_s": 30,
    "stuck_after_s": 1800,  # the same PM/CO2/T/RH values this long: a stuck sensor (0: never)
    "calibration": {},
    "co2_asc": False,  # the SCD41's automatic self-calibration: wrong next to a road
    "lanes": 2,
    "sublanes": 1,  # zone pairs side by side per lane (1: one pair across the lane)
    "detector_spacing_cm": 200,
    "detector_length_cm": 50,  # length of a detection zone along the lane
    "detector_width_cm": 350,  # its width across the lane (a lane's: a beam across it)
    "motorbike_max_cm": 250,
    "car_max_cm": 600,
    "length_max_cm": 2000,  # nothing longer drives a city street (a road train: 20 m)
    "debounce_ms": 20,
    "ota_trial_s": 600,  # a firmware on trial that has no HELLO acknowledged by then resets
}


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    try:
        os.rename(tmp, path)
    except OSError:  # FAT cannot rename over a file; littlefs (the ESP32 default) can
        os.remove(path)
        os.rename(tmp, path)


def _read(path):
    """The file's text, or the text of its `.tmp` twin left by a cut between remove and rename."""
    for name in (path, path + ".tmp"):
        try:
            with open(name) as f:
                return f.read()
        except OSError:
            pass
    return None


def load(path=CONFIG_FILE):
    """The settings: defaults overlaid with what the file holds (a broken file counts as empty)."""
    config = dict(DEFAULTS)
    text = _read(path)
    if text:
        try:
            stored = json.loads(text)
        except ValueError:
            stored = None
        if isinstance(stored, dict):
            config.update(stored)
    return config


def save(config, path=CONFIG_FILE):
    _write_atomic(path, json.dumps(config))


def next_boot(path=BOOTCOUNT_FILE):
    """Increment the persisted boot counter and return the new value (1 on the first boot)."""
    text = _read(path)
    try:
        boot = int(text) + 1 if text else 1
    except ValueError:
        boot = 1
    _write_atomic(path, str(boot))
    return boot
