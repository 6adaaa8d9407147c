"""Drivers for the emulated board: an `EmulatedNode` (real firmware on the MicroPython unix
port) and its `Environment` (sensor emulators), behind the async driver interfaces.

The sync calls of node and environment run in worker threads, so the test's event loop (and
the MQTT observer on it) keeps running while a node powers up or a relay changes state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..artefacts import Artefacts, FrameLog
from ..environment import FAST_SENSORS, Environment, expected_counts
from ..node import EmulatedNode, LinkRelay
from ..street import layout_for
from ..street_scenarios import scenario_truth
from .drivers import Board
from .resources import EmulatedBoard

__all__ = ["emulated_board", "node_name"]


def node_name(node_id: int) -> str:
    """The registry name the rig gives a node: ``HN-0042``."""
    return f"HN-{node_id:04d}"


class EmulatedPower:
    """Power = the MicroPython process: off is SIGKILL, on starts it on the same flash."""

    def __init__(self, node: EmulatedNode) -> None:
        self._node = node

    async def on(self) -> None:
        if not self._node.running:
            await asyncio.to_thread(self._node.start)

    async def off(self) -> None:
        await asyncio.to_thread(self._node.stop)

    async def cycle(self) -> None:
        await asyncio.to_thread(self._node.power_cycle)


class EmulatedConsole:
    """The node process's stdout and stderr."""

    def __init__(self, node: EmulatedNode) -> None:
        self._node = node

    async def text(self) -> str:
        return "\n".join(self._node.console.lines) + "\n"

    async def wait_for(self, pattern: str, *, timeout: float) -> str:
        match = await asyncio.to_thread(self._node.console.wait_for, pattern, timeout)
        return match.string


class EmulatedLink:
    """The node's `LinkRelay` (seeded faults), with every byte it carries tapped into
    ``frames`` (as sent, before faults: "up" node→gateway, "down" gateway→node)."""

    def __init__(self, relay: LinkRelay) -> None:
        self._relay = relay
        self.frames = FrameLog()
        relay.tap = self.frames.feed

    async def set_faults(self, *, drop: float = 0.0, ber: float = 0.0,
                         delay_ms: int = 0) -> None:
        self._relay.set_faults(drop=drop, ber=ber, delay_ms=delay_ms)

    async def unplug(self) -> None:
        self._relay.unplug()

    async def replug(self) -> None:
        self._relay.replug()

    async def counters(self) -> dict[str, int]:
        return dict(self._relay.counters)


class EmulatedEnvironment:
    """The sensor emulators and detector lines of the board."""

    def __init__(self, environment: Environment) -> None:
        self._env = environment

    async def set_air(self, **values: float) -> None:
        await asyncio.to_thread(lambda: self._env.set_air(**values))

    async def vehicle(self, lane: int, speed_kmh: float, length_m: float,
                      direction: int = 1) -> None:
        await asyncio.to_thread(self._env.vehicle, lane, speed_kmh, length_m, direction)

    async def traffic(self, vehicles_per_hour: float, mix: dict[str, float],
                      duration_s: float, seed: int) -> list[dict[str, int]]:
        """Schedules the vehicles; returns the counts per lane and class they make."""
        vehicles = await asyncio.to_thread(self._env.traffic, vehicles_per_hour, mix,
                                           duration_s, seed)
        return expected_counts(vehicles, self._env.lanes)

    async def scenario(self, name: str, duration_s: float, seed: int) -> dict[str, Any]:
        """Runs the street scenario from now; returns its truth (see `scenario_truth`)."""
        passages = await asyncio.to_thread(self._env.scenario, name, duration_s, seed)
        return scenario_truth(passages, self._env.lanes)

    async def wait_idle(self, *, timeout: float) -> None:
        if not await asyncio.to_thread(self._env.wait_traffic, timeout):
            raise AssertionError(f"scheduled vehicles not all driven within {timeout} s")

    async def wait_armed(self, *, timeout: float) -> None:
        if not await asyncio.to_thread(self._env.wait_detectors_armed, self._env.layout.pairs,
                                       timeout):
            raise AssertionError(f"the node did not arm its detectors within {timeout} s")

    async def fault(self, sensor: str, mode: str | None) -> None:
        await asyncio.to_thread(self._env.fault, sensor, mode)  # type: ignore[arg-type]


@contextmanager
def emulated_board(resource: EmulatedBoard, *, node_id: int, key: bytes,
                   settings: dict[str, Any], seed: int, workdir: Path,
                   artefacts: Artefacts) -> Iterator[Board]:
    """A provisioned emulated node with its environment, started; stopped on exit."""
    # The sensors' time runs as fast as the rig's short PM warm-up needs (FAST_AIR_SETTINGS).
    with Environment(resource.kind, layout=layout_for(settings),
                     pm_sensor=str(settings.get("pm_sensor", "pms5003")),
                     sensor_speedup=FAST_SENSORS) as environment:
        node = EmulatedNode(resource.kind, flash_dir=workdir / "flash", environment=environment,
                            node_id=node_id, key=key, seed=seed,
                            extra_config=settings)
        try:
            link = EmulatedLink(node.link)
            artefacts.add_text("console.txt", lambda: "\n".join(node.console.lines) + "\n")
            artefacts.add_text("link-frames.txt", link.frames.render)
            node.start()
            yield Board(name=node_name(node_id), node_id=node_id, key=key, kind=resource.kind,
                        port=node.port, capabilities=resource.capabilities,
                        power=EmulatedPower(node), console=EmulatedConsole(node), link=link,
                        environment=EmulatedEnvironment(environment))
        finally:
            node.close()
