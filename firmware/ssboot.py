"""Boot selection between app slots, trial boots, rollback and safe mode (issue 22).

The node's flash holds the app (the `ssnode` and `streetsense` packages) in a slot: the
files `streetsense flash` wrote at the top level (slot ""), or a folder `app_a`/`app_b` that
a firmware update filled. `slot.json` names the slot to run; it is only ever replaced whole
(written to `slot.json.tmp`, then renamed over it), so a power cut leaves the old or the new
pointer, never a mix. This module is never updated over the air: whatever an update brings,
the node can always come back here and run the previous slot.

Fields of the pointer: `active` and `previous` slots, `trial` (the active slot has not yet
had its HELLO acknowledged), `tries` (boots started on trial), `version` (of the trial),
`fails` (boots in a row that ended before the app was up, see `Slot.up`) and `rolled_back`
(what to tell the gateway after a rollback). A trial that is not confirmed within
TRIAL_BOOTS boots is abandoned for `previous`; FAILS_FOR_SAFE_MODE failed boots in a row
start the app in safe mode: the link to the gateway only, no sensors (ESPHome's safe mode).
"""

import json
import os
import sys

import machine
from micropython import const

POINTER = "slot.json"
TRIAL_BOOTS = const(3)
FAILS_FOR_SAFE_MODE = const(5)
SLOTS = ("app_a", "app_b")


def _load():
    for name in (POINTER, POINTER + ".tmp"):  # the .tmp twin: a cut between remove and rename
        try:
            with open(name) as f:
                pointer = json.loads(f.read())
            if isinstance(pointer, dict):
                return pointer
        except (OSError, ValueError):
            pass
    return {"active": "", "previous": "", "trial": False, "tries": 0, "fails": 0}


def _store(pointer):
    tmp = POINTER + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(pointer))
    try:
        os.rename(tmp, POINTER)
    except OSError:  # FAT cannot rename over a file; littlefs (the ESP32 default) can
        os.remove(POINTER)
        os.rename(tmp, POINTER)


class Slot:
    """What the app needs of the boot selector: which slot runs and how it is going."""

    def __init__(self, pointer):
        self.pointer = pointer
        self.safe_mode = pointer.get("fails", 0) > FAILS_FOR_SAFE_MODE

    @property
    def active(self):
        return self.pointer.get("active", "")

    def inactive(self):
        """The slot folder an update is installed into: never the running one."""
        return SLOTS[1] if self.active == SLOTS[0] else SLOTS[0]

    def up(self):
        """The app has run long enough: this boot did not fail."""
        if self.pointer.get("fails"):
            self.pointer["fails"] = 0
            _store(self.pointer)

    def confirm(self):
        """The gateway acknowledged this boot's HELLO. Returns the version that was on trial
        (None if none was) and the rollback report to send (None if there was none)."""
        pointer = self.pointer
        trial = pointer.get("version") if pointer.get("trial") else None
        rolled = pointer.pop("rolled_back", None)
        if trial is not None or rolled is not None:
            pointer["trial"] = False
            pointer["tries"] = 0
            _store(pointer)
        return trial, rolled

    def switch(self, slot, version):
        """Run `slot` from the next boot on, on trial; the current slot stays the fallback."""
        self.pointer = {"active": slot, "previous": self.active, "trial": True, "tries": 0,
                        "fails": 0, "version": version}  # fmt: skip
        _store(self.pointer)


def select():
    """Count this boot, roll back an unconfirmed trial after TRIAL_BOOTS; the Slot to run."""
    pointer = _load()
    if pointer.get("trial"):
        if pointer.get("tries", 0) >= TRIAL_BOOTS:
            why = (f"firmware {pointer.get('version')} not acknowledged by the gateway in "
                   f"{pointer.get('tries')} boots")
            print("W rollback:", why)
            pointer = {"active": pointer.get("previous", ""), "previous": "", "trial": False,
                       "tries": 0, "fails": 0,
                       "rolled_back": {"version": pointer.get("version"), "why": why}}
        else:
            pointer["tries"] = pointer.get("tries", 0) + 1
    slot = pointer.get("active", "")
    if slot and not _is_dir(slot):  # a slot that is not there cannot run: back to the last
        print(f"W slot {slot!r} missing: running {pointer.get('previous', '')!r}")
        pointer["active"] = slot = pointer.get("previous", "")
        pointer["trial"] = False
    pointer["fails"] = pointer.get("fails", 0) + 1
    _store(pointer)
    if pointer["fails"] > 2 * FAILS_FOR_SAFE_MODE:
        slot = ""  # even safe mode fails in this slot: the flashed files, in safe mode
    if slot:
        sys.path.insert(0, slot)
    return Slot(pointer)


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def start():
    """Run the selected app; whatever ends it, reset (a crash counts as a failed boot)."""
    slot = select()
    try:
        from ssnode.app import main  # type: ignore[import-not-found]  # from the slot

        main(slot)
    except Exception as exc:  # an app that cannot even start: reset, the next boot decides
        sys.print_exception(exc)
        print(f"E app in slot {slot.active!r} failed: {exc!r}")
    machine.reset()
