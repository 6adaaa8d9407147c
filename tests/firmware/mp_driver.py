"""MicroPython side of the driver tests: one driver, driven line by line from stdin.

Usage: micropython mp_driver.py BOARD_DIR FIRMWARE_DIR
Each input line is `open NAME` (build the driver on the emulated board's bus),
`METHOD [INT ...]` (call it on the driver) or `ATTRIBUTE` (its value); each output line is
JSON: {"ok": result} or {"err": exception class name, "msg": text}.
"""

import sys

sys.path[:] = [sys.argv[1], sys.argv[2], ".frozen"]  # board shim first: it is `machine`

import json  # noqa: E402

import machine  # noqa: E402


def open_driver(name):
    if name == "pms5003":
        from ssnode.drivers.pms5003 import PMS5003

        return PMS5003(machine.UART(1, baudrate=9600, tx=17, rx=16))
    if name == "sds011":
        from ssnode.drivers.sds011 import SDS011

        return SDS011(machine.UART(1, baudrate=9600, tx=17, rx=16))
    i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=100000)
    if name == "scd4x":
        from ssnode.drivers.scd4x import SCD4x

        return SCD4x(i2c)
    if name == "bme280":
        from ssnode.drivers.bme280 import BME280

        return BME280(i2c)
    raise ValueError("unknown driver " + name)


def main():
    driver = None
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        words = line.split()
        try:
            if words[0] == "open":
                driver = open_driver(words[1])
                result = None
            else:
                result = getattr(driver, words[0])
                if callable(result):
                    result = result(*[int(w) for w in words[1:]])
            print(json.dumps({"ok": result}))
        except Exception as e:  # every failure goes back to the test
            print(json.dumps({"err": type(e).__name__, "msg": str(e)}))


main()
