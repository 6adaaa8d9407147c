"""The board: ESP32 DevKitC pin map and the peripherals built on it.

The node core and the kind apps get one `Board` and take their UARTs, bus and pins from it,
so nothing else in the firmware names a pin. On the emulated board the same calls reach the
`machine` shim (hil_tests/board/machine.py).
"""

import machine
from micropython import const

LINK_UART = const(2)  # to the gateway
LINK_BAUD = const(115200)
LINK_TX = const(17)
LINK_RX = const(16)
LINK_RXBUF = const(1024)  # two full-size downlinks
PM_UART = const(1)
PM_BAUD = const(9600)
PM_TX = const(4)
PM_RX = const(5)
I2C_BUS = const(0)
I2C_SDA = const(21)
I2C_SCL = const(22)
I2C_FREQ = const(100000)
LED_PIN = const(2)
BOOT_BUTTON_PIN = const(0)
# Per zone pair (detector A, detector B), numbered across the road; inputs with pull-up,
# active low. GPIO 34-39 have no internal pull-up: 34/35 need external resistors.
DETECTOR_PINS = ((25, 26), (27, 14), (32, 33), (34, 35), (18, 19), (23, 13))


class Board:
    """Peripherals on first use, each built once."""

    def __init__(self):
        self._i2c = None
        self._led = None

    def link_uart(self):
        return machine.UART(
            LINK_UART, baudrate=LINK_BAUD, tx=LINK_TX, rx=LINK_RX, rxbuf=LINK_RXBUF, timeout=0
        )

    def pm_uart(self):
        return machine.UART(PM_UART, baudrate=PM_BAUD, tx=PM_TX, rx=PM_RX, timeout=0)

    def i2c(self):
        if self._i2c is None:
            self._i2c = machine.I2C(
                I2C_BUS, scl=machine.Pin(I2C_SCL), sda=machine.Pin(I2C_SDA), freq=I2C_FREQ
            )
        return self._i2c

    def detector_pins(self, pairs):
        """[(pin A, pin B)] for the first `pairs` zone pairs (at most 6)."""
        return [
            (machine.Pin(a, machine.Pin.IN, machine.Pin.PULL_UP),
             machine.Pin(b, machine.Pin.IN, machine.Pin.PULL_UP))
            for a, b in DETECTOR_PINS[:pairs]
        ]  # fmt: skip

    def led(self):
        if self._led is None:
            self._led = machine.Pin(LED_PIN, machine.Pin.OUT, value=0)
        return self._led

    def boot_button_held(self):
        """True while the BOOT button (GPIO 0, active low) is pressed."""
        return machine.Pin(BOOT_BUTTON_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0

    def watchdog(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)

    def reset_cause(self):
        return machine.reset_cause()

    def reset(self):
        machine.reset()
