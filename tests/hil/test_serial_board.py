"""Bench-board mode (``--hil-board serial:PORT,...``): the scenarios through a relay in the
board's cable. An emulated node's PTY stands in for the board's USB serial adapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streetsense.hil.environment import Environment
from streetsense.hil.node import EmulatedNode
from streetsense.hil.plugin import FAST_SETTINGS, node_key

HERE = Path(__file__).parent


def test_scenarios_run_against_a_bench_board(tmp_path: Path) -> None:
    """A link scenario passes on a serial board; power and environment ones skip."""
    key = node_key(5, 43)
    with Environment("traffic") as environment, EmulatedNode(
            "traffic", flash_dir=tmp_path / "flash", environment=environment, node_id=43,
            key=key, extra_config=FAST_SETTINGS) as node:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREETSENSE_HIL")}
        env.update(STREETSENSE_HIL_BOARD=f"serial:{node.port},kind=traffic,node_id=43,"
                                         f"key={key.hex()}",
                   STREETSENSE_HIL_ARTEFACTS=str(tmp_path / "artefacts"))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
             str(HERE / "test_outages.py"), str(HERE / "test_commands.py"),
             str(HERE / "test_sensors.py"),
             "-k", "cable_unplugged or power_cycle or traffic_burst"],
            capture_output=True, text=True, env=env, timeout=240, cwd=HERE.parent.parent)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "1 passed, 2 skipped" in out, out
    assert "traffic board on /dev/pts/" in out
    assert "cannot: power (switch the board off and on)" in out
    assert "cannot: environment (set the air and drive vehicles past the detectors)" in out
