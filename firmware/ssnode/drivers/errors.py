"""One root exception for every sensor driver, with the two failures callers act on."""


class SensorError(Exception):
    """Root of the driver errors; `sensor` names the part (e.g. "PMS5003")."""

    def __init__(self, sensor, message):
        super().__init__(f"{sensor}: {message}")
        self.sensor = sensor


class SensorMissing(SensorError):
    """The sensor did not answer: a NACK/OSError on I2C, or silence on UART."""


class ChecksumError(SensorError):
    """A frame or word arrived whose checksum/CRC does not match; the data was dropped."""

    def __init__(self, sensor, expected, got):
        super().__init__(sensor, f"checksum mismatch: computed 0x{expected:X}, frame has 0x{got:X}")
        self.expected = expected
        self.got = got
