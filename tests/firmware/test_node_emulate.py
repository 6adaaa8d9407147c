"""`streetsense emulate`: provisions a flash, registers it (key never printed), prints the port,
stops on Ctrl-C."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from streetsense.gateway.registry import Registry
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.hil.scene import StreetScene
from streetsense.protocol import messages as m
from streetsense.tools.emulate import emulate
from tests.firmware.node_harness import hello

pytestmark = pytest.mark.micropython

COMMAND = [sys.executable, "-c", "from streetsense.tools.emulate import emulate; emulate()"]


class Emulate:
    """`emulate` as a subprocess, its stdout lines in a queue."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; seen: {self.seen}") from None
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def scene_temperature(seed: int, hours: tuple[float, float]) -> tuple[float, float]:
    """The lowest and highest temperature the street scene sets between two hours."""
    scene = StreetScene(seed)
    steps = [hours[0] + i * (hours[1] - hours[0]) / 60 for i in range(61)]
    values = [scene.conditions(h).temperature for h in steps]
    return min(values), max(values)


def test_emulate_provisions_then_reuses_the_flash(tmp_path: Path) -> None:
    """With --node-id on a new flash: a fresh key registered in --registry (mode 0600, never
    printed), a port where the node says a signed HELLO and reports the street scene's air;
    Ctrl-C stops it; run again, the same node boots a second time and is found registered."""
    flash = tmp_path / "flash"
    flash.mkdir()
    registry = tmp_path / "nodes.toml"
    fast = {"pm_warmup_s": 1, "sample_interval_s": 1, "report_interval_s": 2}
    (flash / "config.json").write_text(json.dumps(fast))  # kept by the provisioning
    first = Emulate("--kind", "air-quality", "--node-id", "42", "--flash-dir", str(flash),
                    "--registry", str(registry))
    try:
        first.expect(rf"^# node 42 \(node-0042\) registered in {re.escape(str(registry))}$")
        key = Registry.load(registry).lookup(42).key  # type: ignore[union-attr]
        assert registry.stat().st_mode & 0o777 == 0o600
        port = first.expect(r"^port: (\S+)$")[1]
        with MiniGateway(port, {42: key}) as gw:
            assert gw.wait(hello(1)).verified
            data = gw.wait(lambda f: f.type == m.DATA, timeout=30)
        assert first.interrupt() == 0
        first.expect(r"^# stopped$")
        assert not [line for line in first.seen if key.hex() in line]  # never on screen
    finally:
        first.kill()
    second = Emulate("--kind", "air-quality", "--flash-dir", str(flash), "--registry",
                     str(registry))
    try:
        second.expect(r"^# node 42 \(node-0042\) is registered in ")
        port = second.expect(r"^port: (\S+)$")[1]
        with MiniGateway(port, {42: key}) as gw:
            gw.wait(hello(2))
        assert second.interrupt() == 0
    finally:
        second.kill()
    assert key != bytes(32)
    temperature = next(r for r in data.body[4] if r[0] == m.channel(5))  # BME280, 0.01 degC
    low, high = scene_temperature(0, (7.0, 7.5))  # seed 0 starts at 7 h, 60x: 30 min in 30 s
    assert low - 0.1 <= temperature[2] / 100 <= high + 0.1


def test_emulate_refuses_another_id_on_a_provisioned_flash(tmp_path: Path) -> None:
    """A flash provisioned as one node is not silently turned into another."""
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text('{"node_id": 7, "key": "' + "ab" * 32 + '"}')
    result = CliRunner().invoke(
        emulate, ["--kind", "traffic", "--node-id", "8", "--flash-dir", str(flash)]
    )
    assert result.exit_code == 2
    assert "holds node 7" in result.output


def test_emulate_runs_a_street_scenario_on_a_layout(tmp_path: Path) -> None:
    """--scenario dense_motorbikes --layout sublane: the node gets the sub-lane settings and
    counts the scenario's motorbikes (two lanes of three zone pairs)."""
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "config.json").write_text(json.dumps({"report_interval_s": 3}))
    registry = tmp_path / "nodes.toml"
    run = Emulate("--kind", "traffic", "--node-id", "43", "--flash-dir", str(flash),
                  "--scenario", "dense_motorbikes", "--layout", "sublane", "--registry",
                  str(registry))
    try:
        run.expect(r"^# node 43 \(node-0043\) registered in ")
        key = Registry.load(registry).lookup(43).key  # type: ignore[union-attr]
        port = run.expect(r"^port: (\S+)$")[1]
        with MiniGateway(port, {43: key}) as gw:
            assert gw.wait(hello(1, 43)).body[4] == ["lane0", "lane1"]

            def motorbikes(f: object) -> bool:
                return getattr(f, "type", None) == m.DATA and any(
                    r[0] & 0xFF == 16 and r[2] > 0 for r in f.body[4])  # type: ignore[attr-defined]

            gw.wait(motorbikes, timeout=30)
        assert run.interrupt() == 0
    finally:
        run.kill()
    config = json.loads((flash / "config.json").read_text())
    assert (config["sublanes"], config["detector_width_cm"]) == (3, 120)


def test_emulate_scenario_is_for_traffic_nodes() -> None:
    """--scenario on an air-quality node is a usage error that says why."""
    result = CliRunner().invoke(emulate, ["--kind", "air-quality", "--scenario", "free_flow"])
    assert result.exit_code == 2 and "--kind traffic" in result.output
