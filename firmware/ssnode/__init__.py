"""StreetSense node firmware (MicroPython, ESP32): deployed to the device, not run by CPython."""
