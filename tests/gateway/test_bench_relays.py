"""Bench relays through gpiozero's mock pins: power, reset pulse and bootloader sequences."""

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from streetsense.gateway.bench.config import RelayLine
from streetsense.gateway.bench.relays import BenchError, BenchPower

# Relay boards of the common kind switch on a low input: power and boot; reset is active high.
LINES = {
    "power": RelayLine(17, active_high=False),
    "reset": RelayLine("GPIO27"),
    "boot": RelayLine(22, active_high=False),
}


class Recorder:
    """An async sleep that records the lines' states at every wait instead of waiting."""

    def __init__(self) -> None:
        self.bench: BenchPower | None = None
        self.waits: list[tuple[float, dict[str, bool]]] = []

    async def __call__(self, seconds: float) -> None:
        assert self.bench is not None
        self.waits.append((seconds, self.bench.state()))


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """A fresh mock pin factory (a Raspberry Pi's header, no hardware)."""
    pins = MockFactory()
    yield pins
    pins.close()


def bench(factory: MockFactory, lines: dict[str, RelayLine] = LINES) -> tuple[BenchPower, Recorder]:
    """A BenchPower on mock pins with a recording sleep."""
    recorder = Recorder()
    power = BenchPower(lines, pin_factory=factory, sleep=recorder)
    recorder.bench = power
    return power, recorder


def levels(factory: MockFactory) -> dict[str, bool]:
    """Physical pin levels of the three relay inputs."""
    return {
        name: factory.pin(pin).state for name, pin in (("power", 17), ("reset", 27), ("boot", 22))
    }


def test_starts_powered_and_released(factory: MockFactory) -> None:
    """At start the board is powered, reset and boot released; active-low pins are inverted."""
    power, _ = bench(factory)
    assert power.state() == {"power": True, "reset": False, "boot": False}
    assert levels(factory) == {"power": False, "reset": False, "boot": True}
    assert power.capabilities == {"power", "reset", "bootloader"}
    power.close()


def test_off_and_on(factory: MockFactory) -> None:
    """off() releases reset and boot and cuts power; on() restores power only."""
    with bench(factory)[0] as power:
        power.off()
        assert power.state() == {"power": False, "reset": False, "boot": False}
        assert levels(factory)["power"] is True  # active low: high = relay off
        power.on()
        assert power.state() == {"power": True, "reset": False, "boot": False}


async def test_cycle(factory: MockFactory) -> None:
    """cycle() holds the board off for off_s, then powers it again."""
    power, recorder = bench(factory)
    await power.cycle(off_s=2.5)
    assert recorder.waits == [(2.5, {"power": False, "reset": False, "boot": False})]
    assert power.state()["power"] is True
    assert list(power.history) == [
        ("reset", False),
        ("boot", False),
        ("power", False),
        ("power", True),
    ]
    power.close()


async def test_reset_pulse(factory: MockFactory) -> None:
    """reset() holds the reset line for the pulse with power on, then releases it."""
    power, recorder = bench(factory)
    await power.reset(pulse_s=0.2)
    assert recorder.waits == [(0.2, {"power": True, "reset": True, "boot": False})]
    assert power.state() == {"power": True, "reset": False, "boot": False}
    assert levels(factory)["reset"] is False
    power.close()


async def test_enter_bootloader_with_reset_line(factory: MockFactory) -> None:
    """Boot is held through the reset pulse and after it, then released."""
    power, recorder = bench(factory)
    await power.enter_bootloader(pulse_s=0.1, hold_s=0.3)
    assert recorder.waits == [
        (0.1, {"power": True, "reset": True, "boot": True}),
        (0.3, {"power": True, "reset": False, "boot": True}),
    ]
    assert power.state() == {"power": True, "reset": False, "boot": False}
    power.close()


async def test_without_reset_line_power_cycles(factory: MockFactory) -> None:
    """With power and boot only, reset and bootloader entry power-cycle the board instead."""
    power, recorder = bench(factory, {"power": LINES["power"], "boot": LINES["boot"]})
    assert power.capabilities == {"power", "reset", "bootloader"}
    await power.reset()
    await power.enter_bootloader(hold_s=0.2)
    assert recorder.waits == [
        (1.0, {"power": False, "boot": False}),
        (1.0, {"power": False, "boot": True}),
        (0.2, {"power": True, "boot": True}),
    ]
    assert power.state() == {"power": True, "boot": False}
    power.close()


async def test_missing_lines_are_clear_errors(factory: MockFactory) -> None:
    """A bench without a line says which config entry is missing; unknown names are refused."""
    power, _ = bench(factory, {"reset": LINES["reset"]})
    assert power.capabilities == {"reset"}
    with pytest.raises(BenchError, match=r"no power line .* hil\.relays\.<port>\.power"):
        power.on()
    with pytest.raises(BenchError, match="no boot line"):
        await power.enter_bootloader()
    power.close()
    with pytest.raises(ValueError, match="unknown bench line"):
        BenchPower({"fan": RelayLine(5)}, pin_factory=factory)


def test_close_releases_the_pins(factory: MockFactory) -> None:
    """After close() the same pins can be claimed again (e.g. by a restarted bench server)."""
    bench(factory)[0].close()
    again, _ = bench(factory)
    assert again.state()["power"] is True
    again.close()
