"""Drivers: what a test can do to a board, behind one interface per function (labgrid's split).

Every driver is async, so tests read the same on every rig: ``await power.cycle()``,
``await console.wait_for("boot")``, ``await link.unplug()``, ``await environment.set_air(...)``.
The emulated drivers wrap an `EmulatedNode` (``streetsense.hil.node``) and its `Environment`
(their sync calls run in a worker thread); the remote ones (``streetsense.hil.remote``) speak
to a bench gateway. A `Board` bundles the drivers a rig has; a missing one is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..artefacts import FrameLog

__all__ = [
    "Board",
    "ConsoleDriver",
    "EnvironmentDriver",
    "LinkDriver",
    "PowerDriver",
]


class PowerDriver(Protocol):
    """The board's supply."""

    async def on(self) -> None:
        """Power on (no-op when on)."""

    async def off(self) -> None:
        """Cut the power at once (no shutdown)."""

    async def cycle(self) -> None:
        """Off, then on."""


class ConsoleDriver(Protocol):
    """The node's console output (UART0 / the process's stdout)."""

    async def text(self) -> str:
        """Everything the console has printed so far."""

    async def wait_for(self, pattern: str, *, timeout: float) -> str:
        """The first line (old or new) matching the regex; AssertionError after ``timeout``."""


class LinkDriver(Protocol):
    """The cable between node and gateway, with seeded fault injection."""

    frames: FrameLog

    async def set_faults(self, *, drop: float = 0.0, ber: float = 0.0,
                         delay_ms: int = 0) -> None:
        """Drop chunks with probability ``drop``, flip bits at rate ``ber``, delay bytes."""

    async def unplug(self) -> None:
        """Disconnect the cable: nothing passes either way."""

    async def replug(self) -> None:
        """Reconnect the cable."""

    async def counters(self) -> dict[str, int]:
        """Bytes passed, dropped, bits flipped... (names from the relay)."""


class EnvironmentDriver(Protocol):
    """The physical world the board's sensors see."""

    async def set_air(self, **values: float) -> None:
        """pm1_0, pm2_5, pm10 (µg/m³), co2 (ppm), temperature (°C), humidity (%RH),
        pressure (hPa)."""

    async def vehicle(self, lane: int, speed_kmh: float, length_m: float,
                      direction: int = 1) -> None:
        """One vehicle past a lane's detectors."""

    async def traffic(self, vehicles_per_hour: float, mix: dict[str, float],
                      duration_s: float, seed: int) -> list[dict[str, int]]:
        """Schedule a seeded stream of vehicles on every lane; returns, per lane, the count
        per class ("motorbike", "car", "heavy") that it makes."""

    async def scenario(self, name: str, duration_s: float, seed: int) -> dict[str, Any]:
        """Run a named street scenario (hil_tests/street_scenarios.py) over the board's
        detector layout for `duration_s` of arrivals; returns its ground truth: vehicles,
        counts per lane and class, lane changes."""

    async def wait_idle(self, *, timeout: float) -> None:
        """Wait until every scheduled vehicle has passed."""

    async def wait_armed(self, *, timeout: float) -> None:
        """Wait until the node listens on its detectors (its traffic app is up)."""

    async def fault(self, sensor: str, mode: str | None) -> None:
        """"unplugged", "corrupt", "stuck" or None (healthy again)."""


@dataclass
class Board:
    """One board under test with the drivers its rig offers (None = not on this rig).

    ``settings``: node settings the test wants that the rig could not write before the node
    started (a bench board): the strategy sends them as a CONFIG once the node is online.
    """

    name: str
    node_id: int
    key: bytes = field(repr=False)
    kind: str
    port: str | None
    capabilities: frozenset[str]
    power: PowerDriver | None = None
    console: ConsoleDriver | None = None
    link: LinkDriver | None = None
    environment: EnvironmentDriver | None = None
    settings: dict[str, Any] = field(default_factory=dict)
