"""A gateway serving emulated boards as a remote HIL bench: the remote mode without a Pi.

    python -m streetsense.hil.rig.emulated_bench --config gateway.toml \\
        --board air-quality:42 --board traffic:43 [--seed 1]

starts one emulated node (with its sensor environment) per ``--board``, adds their PTYs to
the config's ``[[serial]]`` ports and their keys to its registry, then runs the real gateway
with its HIL server (``[hil] enabled``, ``listen``, ``token_file`` from the config). A test
session then points ``--hil-gateway hil://host:port`` at it. Readiness is sd_notify READY.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tomllib
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from streetsense.gateway.bench.server import BenchBoard, BenchLinks, HilServer
from streetsense.gateway.config import load_config
from streetsense.gateway.notify import Notifier
from streetsense.gateway.service import Gateway
from streetsense.protocol.messages import HELLO

from ..artefacts import FrameLog
from ..environment import FAST_SENSORS, Environment, expected_counts
from ..gateway_proc import NodeEntry, to_toml
from ..node import EmulatedNode
from ..plugin import FAST_AIR_SETTINGS, node_key
from ..street_scenarios import scenario_truth
from .emulated import node_name


class _Console:
    def __init__(self, node: EmulatedNode) -> None:
        self._node = node

    def lines(self) -> list[str]:
        return list(self._node.console.lines)

    def wait_for(self, pattern: str, timeout: float) -> str:
        return self._node.console.wait_for(pattern, timeout).string


class _Environment:
    """The Environment with JSON-able results, as the HIL server hands them to a client."""

    def __init__(self, environment: Environment) -> None:
        self._env = environment

    def set_air(self, **values: float) -> None:
        self._env.set_air(**values)

    def vehicle(self, lane: int, speed_kmh: float, length_m: float, direction: int = 1) -> None:
        self._env.vehicle(lane, speed_kmh, length_m, direction)

    def traffic(self, vehicles_per_hour: float, mix: dict[str, float], duration_s: float,
                seed: int) -> list[dict[str, int]]:
        vehicles = self._env.traffic(vehicles_per_hour, mix, duration_s, seed)
        return expected_counts(vehicles, self._env.lanes)

    def scenario(self, name: str, duration_s: float, seed: int) -> dict[str, Any]:
        return scenario_truth(self._env.scenario(name, duration_s, seed), self._env.lanes)

    def wait_idle(self, timeout: float) -> bool:
        return self._env.wait_traffic(timeout)

    def wait_armed(self, timeout: float) -> bool:
        return self._env.wait_detectors_armed(self._env.layout.pairs, timeout)

    def fault(self, sensor: str, mode: str | None) -> None:
        self._env.fault(sensor, mode)  # type: ignore[arg-type]


def _board(name: str, node_id: int, kind: str, node: EmulatedNode, environment: Environment,
           links: BenchLinks) -> BenchBoard:
    async def power(action: str) -> None:
        step = {"on": node.start, "off": node.stop, "cycle": node.power_cycle}[action]
        if not (action == "on" and node.running):
            await asyncio.to_thread(step)

    async def configure(settings: dict[str, Any]) -> None:
        """Rewrite the settings that differ and restart the node; back once it said HELLO."""
        config = node.config
        if all(config.get(key) == value for key, value in settings.items()):
            return
        hello = FrameLog()

        def tap(board: str, direction: str, data: bytes) -> None:
            if board == name:
                hello.feed(direction, data)

        links.taps.append(tap)
        try:
            await asyncio.to_thread(node.stop)
            (node.flash_dir / "config.json").write_text(json.dumps({**config, **settings}))
            await asyncio.to_thread(node.start)
            await hello.wait(lambda f: f.direction == "up" and f.raw is not None
                             and f.raw[1] == HELLO, timeout=30)
        finally:
            links.taps.remove(tap)

    return BenchBoard(name=name, node_id=node_id, node_name=node_name(node_id), kind=kind,
                      power=power, console=_Console(node), environment=_Environment(environment),
                      configure=configure)


async def _serve(config_path: Path, boards: list[tuple[str, int, EmulatedNode, Environment]],
                 seed: int) -> None:
    config = load_config(config_path)
    assert config.hil.token_file is not None
    links = BenchLinks(seed=seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # This process serves the bench itself (its boards are emulated): the gateway must not
    # start the HIL server it runs for real benches.
    gateway = Gateway(replace(config, hil=replace(config.hil, enabled=False)),
                      link_filter=links.wrap)
    async with gateway.running():
        server = HilServer(
            listen=config.hil.listen, token=config.hil.token_file.read_text().strip(),
            boards=[_board(f"board-{node_id}", node_id, kind, node, env, links)
                    for kind, node_id, node, env in boards],
            links=links,
            info={"gateway": config.gateway.id, "site": config.gateway.site,
                  "prefix": config.mqtt.prefix, "mqtt_url": config.mqtt.url})
        await server.start()
        notifier = Notifier()
        notifier.ready(f"HIL bench on {server.host}:{server.port}")
        try:
            await stop.wait()
        finally:
            notifier.stopping()
            await server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--board", action="append", required=True, metavar="KIND:ID")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    document = tomllib.loads(args.config.read_text())
    workdir = args.config.parent / "bench"
    with ExitStack() as stack:
        boards = []
        for spec in args.board:
            kind, _, number = spec.partition(":")
            node_id = int(number)
            # Sensor time as fast as FAST_AIR_SETTINGS' short PM warm-up needs.
            environment = stack.enter_context(Environment(kind, sensor_speedup=FAST_SENSORS))
            node = stack.enter_context(EmulatedNode(
                kind, flash_dir=workdir / f"flash-{node_id}", environment=environment,
                node_id=node_id, key=node_key(args.seed, node_id), seed=args.seed,
                extra_config=FAST_AIR_SETTINGS))
            boards.append((kind, node_id, node, environment))
        document["serial"] = [*document.get("serial", []),
                              *({"path": node.port, "name": f"board-{node_id}"}
                                for _, node_id, node, _ in boards)]
        registry = Path(document["registry_path"])
        nodes = [NodeEntry(node_id, node_name(node_id), kind, node_key(args.seed, node_id))
                 for kind, node_id, _, _ in boards]
        registry.write_text(to_toml({"node": [entry.as_table() for entry in nodes]}))
        bench_config = args.config.with_name("bench.toml")
        bench_config.write_text(to_toml(document))
        asyncio.run(_serve(bench_config, boards, args.seed))


if __name__ == "__main__":
    main()
