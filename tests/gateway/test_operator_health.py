"""The operator's health signals are honest: a configured port that never opened is named."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.tools.gateway import gateway as gateway_cli
from tests.gateway.test_metrics_http import samples
from tests.support.gateway_rig import make_config, node_info


async def test_health_a_port_that_never_opened_is_degraded_and_named(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A configured serial port whose device does not exist makes the health degraded with
    the port named, and port_up has a 0 sample for it (not no sample at all)."""
    missing = tmp_path / "ttyUSB-missing"
    config = make_config(tmp_path, mosquitto.url, [missing], [node_info(42)])
    async with Gateway(config).running() as gateway:
        assert gateway.publisher is not None
        await gateway.publisher.connected.wait()
        health = gateway.metrics.health()
        port_up = samples(gateway.metrics)[
            ("streetsense_gateway_port_up", (("port", "ttyUSB-missing"),))]
    assert health == {"status": "degraded", "reasons": ["port ttyUSB-missing down"]}
    assert port_up == 0.0


def test_health_check_config_warns_of_a_port_that_does_not_exist(tmp_path: Path) -> None:
    """check-config passes a config whose serial port does not exist (it may be plugged in
    later) but warns, naming the key, its line and the path; an existing port gets no warning."""
    (tmp_path / "nodes.toml").write_text("")
    present = tmp_path / "ttyS-present"
    present.write_text("")
    config = tmp_path / "gateway.toml"
    config.write_text(
        'registry_path = "nodes.toml"\n[gateway]\nid = "gw-01"\nsite = "hanoi"\n'
        f'data_dir = "{tmp_path}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n'
        f'[[serial]]\npath = "{present}"\n[[serial]]\npath = "/dev/ttyUSB-absent-42"\n')
    result = CliRunner().invoke(gateway_cli, ["check-config", "--config", str(config)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.output
    assert "line 11: serial[1].path" in warnings[0] and "/dev/ttyUSB-absent-42" in warnings[0]
