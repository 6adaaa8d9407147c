"""SIGHUP reloads what can change live and says what needs a restart; TLS files that TLS
cannot use are a config problem, never an SSLError traceback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

from click.testing import CliRunner

from streetsense.hil.broker import Mosquitto
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry
from streetsense.hil.keys import numbered_key
from streetsense.hil.observer import MqttObserver
from streetsense.tools.gateway import gateway as gateway_cli


async def test_reload_sighup_reloads_live_settings_and_names_what_needs_a_restart(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """SIGHUP no longer kills the gateway: it reloads the registry and the live settings,
    logs what it reloaded and which changed sections need a restart; a broken config on
    SIGHUP is refused with its problem and the gateway keeps running; SIGTERM still stops it
    cleanly."""
    gateway = GatewayProcess(workdir=tmp_path / "gw", mqtt_url=mosquitto.url, site="test",
                             nodes=[NodeEntry(42, "HN-0042", "air-quality", numbered_key(42))])
    async with MqttObserver(mosquitto.url, topics=[f"{gateway.gateway_topic}/state"]) as seen:
        await asyncio.to_thread(gateway.start)
        try:
            gateway.nodes.append(NodeEntry(43, "HN-0043", "traffic", numbered_key(43)))
            gateway.config["availability"] = {"offline_after_s": 30}
            gateway.config["log"] = {"level": "DEBUG"}
            gateway.config["mqtt"]["keepalive_s"] = 5
            gateway.write_files()
            await asyncio.to_thread(gateway.reload)
            assert gateway.running
            line = next(x for x in gateway.log().splitlines() if "SIGHUP:" in x)
            assert "reloaded: registry (2 nodes), availability, log level DEBUG" in line
            assert "needs a restart to take effect: mqtt" in line
            gateway.config_path.write_text(gateway.config_path.read_text() + "\nbogus = 1\n")
            await asyncio.to_thread(gateway.reload)
            assert gateway.running
            assert "not reloaded, the running config stays: line" in gateway.log()
            assert "bogus: unknown key" in gateway.log()
            # Connected before the stop: the stop is this test's subject only as "still clean".
            await seen.expect(f"{gateway.gateway_topic}/state",
                              lambda m: m.json()["state"] == "online")
            gateway.signal(signal.SIGTERM)
            try:
                status = await asyncio.to_thread(gateway.wait, 10)
            except subprocess.TimeoutExpired:
                raise AssertionError(gateway.log()[-3000:]) from None
        finally:
            gateway.close()
    assert status == 0, gateway.log()[-3000:]
    assert "Traceback" not in gateway.log()


def _tls_config(tmp_path: Path) -> Path:
    (tmp_path / "nodes.toml").write_text("")
    (tmp_path / "ca.pem").write_text("this is not a certificate\n")
    path = tmp_path / "gateway.toml"
    path.write_text('registry_path = "nodes.toml"\n[gateway]\nid = "gw-01"\nsite = "hanoi"\n'
                    f'data_dir = "{tmp_path}"\n[mqtt]\nurl = "mqtts://127.0.0.1:1"\n'
                    'ca_file = "ca.pem"\n')
    return path


def test_reload_a_ca_file_that_is_no_certificate_fails_check_config_and_run(
        tmp_path: Path) -> None:
    """A CA file that exists but holds no certificate is a check-config problem (key, line,
    one plain sentence); run refuses to start with the same sentence, no SSLError traceback."""
    config = _tls_config(tmp_path)
    runner = CliRunner()
    checked = runner.invoke(gateway_cli, ["check-config", "--config", str(config)])
    started = runner.invoke(gateway_cli, ["run", "--config", str(config)])
    assert checked.exit_code == 1, checked.output
    assert "line 8: mqtt.ca_file: " in checked.output
    assert "holds no PEM certificate" in checked.output
    assert started.exit_code == 1 and isinstance(started.exception, SystemExit)
    assert "holds no PEM certificate" in started.output and "check-config" in started.output
