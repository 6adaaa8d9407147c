"""A factory-state node running the real firmware is provisioned, then monitored, by the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from streetsense.gateway.registry import Registry
from streetsense.hil.environment import FAST_SENSORS, Environment
from streetsense.hil.node import EmulatedNode
from streetsense.tools.provision import provision
from tests.tools.tools_helpers import Tool, wait_line

pytestmark = pytest.mark.micropython


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmulatedNode]:
    """A freshly flashed air-quality board (its config.json names no kind); short warm-up,
    report interval and retry cap, so the test does not wait on the PM laser or on a long
    retransmission backoff."""
    flash = tmp_path / "flash"
    flash.mkdir()
    fast = {"pm_warmup_s": 1, "sample_interval_s": 1, "report_interval_s": 2, "retry_max_s": 2}
    (flash / "config.json").write_text(json.dumps(fast))
    with Environment("air-quality", sensor_speedup=FAST_SENSORS) as environment:
        environment.set_air(pm2_5=31.0)
        with EmulatedNode("air-quality", environment=environment, flash_dir=flash) as emulated:
            yield emulated


def test_factory_node_provisioned_then_monitored(tool: Tool, node: EmulatedNode,
                                                 tmp_path: Path) -> None:
    """provision gives the firmware its id and key; monitor then verifies its frames by key."""
    registry = tmp_path / "nodes.toml"
    result = CliRunner().invoke(provision, [
        "--port", node.port, "--node-id", "42", "--kind", "air-quality", "--name", "HN-0042",
        "--registry", str(registry), "--hello-timeout", "20", "--data-timeout", "60"])
    assert result.exit_code == 0, result.output + "\n".join(node.console.lines)
    assert "factory-state node: (no kind yet) firmware" in result.output
    assert "PM2.5 31.0 µg/m³" in result.output.splitlines()[-1]
    entry = Registry.load(registry).lookup(42)
    assert entry is not None and node.config["key"] == entry.key.hex()
    assert node.config["node_id"] == 42 and node.boot_count == 2

    # --ack: the node then sends on (its first DATA, left unacked by provision, then more).
    proc = tool("monitor", node.port, "--registry", str(registry), "--ack", "--count", "2")
    assert "monitoring" in wait_line(proc)
    out, _ = proc.communicate(timeout=30)
    # (Opening the port mid-frame may cut one frame: a FAILED malformed row, nothing more.)
    rows = [r for r in out.splitlines()[1:-1] if "FAILED" not in r]
    assert len(rows) == 2 and all(r.split()[1] == "HN-0042" for r in rows)
    assert all(" verified " in r for r in rows)
    assert any(r.split()[2] == "data" for r in rows)
    assert out.splitlines()[-1].startswith("2 frames (2 verified)")
    assert "bad_tag" not in out


def test_board_built_as_traffic_is_not_provisioned_as_air_quality(tmp_path: Path) -> None:
    """The real firmware's factory HELLO names the kind it was last provisioned as; provision
    refuses another --kind before sending anything."""
    with EmulatedNode("traffic") as board:
        result = CliRunner().invoke(provision, [
            "--port", board.port, "--node-id", "43", "--kind", "air-quality",
            "--registry", str(tmp_path / "nodes.toml"), "--hello-timeout", "20"])
        assert result.exit_code == 1, result.output
        assert "is a traffic node (its HELLO says so), not air-quality" in result.output
        assert board.config.get("node_id", 0) == 0 and not board.config.get("key")
