"""Power, reset and boot-mode lines of a bench board, switched by relays on GPIO pins.

A HIL bench gateway drives each board through up to three relays (config ``hil.relays``):
``power`` (supply on/off), ``reset`` (pulls EN low on an ESP32) and ``boot`` (holds GPIO0
low so the ROM enters its serial bootloader at reset). `BenchPower` drives them through
gpiozero (one ``OutputDevice`` per line; ``active_high`` per relay board), so it runs on a
Pi with the default pin factory and in tests with ``gpiozero.pins.mock.MockFactory``.
The timed sequences are coroutines: the gateway's event loop keeps running while a board is
held off or in reset.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

from gpiozero import OutputDevice  # untyped: see [tool.mypy] overrides

from .config import BENCH_LINES, RelayLine

__all__ = ["BenchError", "BenchPower"]


class BenchError(RuntimeError):
    """The bench cannot do this: the line it needs is not wired (configured)."""


class BenchPower:
    """The relay lines of one board. ``lines`` maps "power", "reset" and/or "boot" to a
    `RelayLine`; ``pin_factory`` is gpiozero's (None: its default, the Pi's GPIO).

    At start the board is powered (if there is a power line) and reset and boot are
    released: a board on the bench runs unless a test says otherwise. ``history`` keeps the
    last transitions as (line, active), for a test's artefacts.
    """

    def __init__(
        self,
        lines: Mapping[str, RelayLine],
        *,
        pin_factory: Any = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        unknown = sorted(set(lines) - set(BENCH_LINES))
        if unknown:
            raise ValueError(f"unknown bench line(s) {unknown}: use {', '.join(BENCH_LINES)}")
        self._sleep = sleep
        self.history: deque[tuple[str, bool]] = deque(maxlen=256)
        self._devices: dict[str, OutputDevice] = {}
        try:
            for name in BENCH_LINES:  # power first: the board is up before anything else
                if name in lines:
                    line = lines[name]
                    self._devices[name] = OutputDevice(
                        line.pin,
                        active_high=line.active_high,
                        initial_value=name == "power",
                        pin_factory=pin_factory,
                    )
        except BaseException:
            self.close()
            raise

    @property
    def capabilities(self) -> frozenset[str]:
        """What this bench can do with the board: "power", "reset", "bootloader"."""
        can = set()
        if "power" in self._devices:
            can.add("power")
        if "reset" in self._devices or "power" in self._devices:
            can.add("reset")
            if "boot" in self._devices:
                can.add("bootloader")
        return frozenset(can)

    def state(self) -> dict[str, bool]:
        """Each wired line and whether its relay is active (power on, reset/boot held)."""
        return {name: bool(device.value) for name, device in self._devices.items()}

    def on(self) -> None:
        """Power the board."""
        self._set("power", True)

    def off(self) -> None:
        """Cut the board's power (reset and boot are released first)."""
        for name in ("reset", "boot"):
            if name in self._devices:
                self._set(name, False)
        self._set("power", False)

    async def cycle(self, off_s: float = 1.0) -> None:
        """Power off for ``off_s`` (long enough for the supply's capacitors), then on."""
        self.off()
        await self._sleep(off_s)
        self.on()

    async def reset(self, pulse_s: float = 0.1) -> None:
        """Hold reset for ``pulse_s`` and release it; with no reset line, a power cycle."""
        if "reset" not in self._devices:
            await self.cycle(off_s=max(pulse_s, 1.0))
            return
        self._set("reset", True)
        await self._sleep(pulse_s)
        self._set("reset", False)

    async def enter_bootloader(self, pulse_s: float = 0.1, hold_s: float = 0.1) -> None:
        """Restart into the ROM bootloader: hold boot, reset (or power-cycle), keep boot held
        ``hold_s`` after the board starts (the strap is sampled then), release boot."""
        if "boot" not in self._devices:
            raise BenchError("no boot line on this bench: add hil.relays.<port>.boot")
        self._set("boot", True)
        if "reset" in self._devices:
            self._set("reset", True)
            await self._sleep(pulse_s)
            self._set("reset", False)
        else:
            self._set("power", False)
            await self._sleep(max(pulse_s, 1.0))
            self._set("power", True)
        await self._sleep(hold_s)
        self._set("boot", False)

    def close(self) -> None:
        """Release the GPIO pins."""
        for device in self._devices.values():
            device.close()
        self._devices.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _set(self, name: str, active: bool) -> None:
        device = self._devices.get(name)
        if device is None:
            raise BenchError(f"no {name} line on this bench: add hil.relays.<port>.{name}")
        if active:
            device.on()
        else:
            device.off()
        self.history.append((name, active))
