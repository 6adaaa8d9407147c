"""Remote-bench mode: the scenario suite, unchanged, against a gateway serving emulated boards.

A gateway process runs with ``[hil] enabled`` and two emulated boards on its serial ports
(``streetsense.hil.rig.emulated_bench``); a pytest session in a subprocess points
``STREETSENSE_HIL_GATEWAY`` at it and runs scenarios through the bench's drivers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streetsense.hil.broker import Mosquitto, free_port
from streetsense.hil.gateway_proc import GatewayProcess
from streetsense.hil.remote import BenchError, RemoteSession, fetch

HERE = Path(__file__).parent
TOKEN = "bench-token-for-tests"
# The scenarios run remotely in `make test` (the rest of the suite takes the same path).
REMOTE_SUBSET = "power_cycle or config_change or unplugged_sensor"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway serving an air-quality and a traffic board; yields its hil:// URL (its
    operator key file is in ``STREETSENSE_OPERATOR_KEY_FILE`` for the remote suites)."""
    tmp_path = tmp_path_factory.mktemp("bench")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    with Mosquitto() as broker:
        process = GatewayProcess(
            workdir=tmp_path / "gateway", mqtt_url=broker.url,
            settings={"hil": {"enabled": True, "listen": f"127.0.0.1:{port}",
                              "token_file": str(token_file)}},
            command=[sys.executable, "-m", "streetsense.hil.rig.emulated_bench",
                     "--board", "air-quality:42", "--board", "traffic:43"])
        with process, pytest.MonkeyPatch.context() as patch:
            patch.setenv("STREETSENSE_OPERATOR_KEY_FILE", str(process.workdir / "operator.key"))
            yield f"hil://127.0.0.1:{port}"


def test_bench_refuses_a_wrong_token(bench: str) -> None:
    """A client without the token gets no session; with it, the bench's description, and
    the artefact sources a failed remote test collects (console, gateway log)."""
    with pytest.raises(BenchError, match="bad token"):
        fetch(bench, "not-the-token")
    info = fetch(bench, TOKEN)
    assert [(b["node"], b["kind"]) for b in info["boards"]] == \
        [("HN-0042", "air-quality"), ("HN-0043", "traffic")]
    assert set(info["boards"][0]["capabilities"]) == \
        {"link", "power", "console", "environment", "reconfigure"}
    booted = fetch(bench, TOKEN, "console.wait_for", board="board-42", pattern=r"boot \d+",
                   timeout=10)
    assert booted in fetch(bench, TOKEN, "console.lines", board="board-42")
    assert "HIL bench serving 2 boards" in fetch(bench, TOKEN, "gateway.log")


async def test_bench_taps_the_link_and_injects_faults(bench: str) -> None:
    """link.tap streams the board's frames; an unplugged link stops them reaching the
    gateway, and the counters say so."""
    session = RemoteSession(bench, TOKEN)
    await session.connect()
    try:
        from streetsense.hil.remote import RemoteLink

        link = RemoteLink(session, "board-43")
        await session.call("link.tap", board="board-43")
        await link.frames.wait(lambda f: f.direction == "up", timeout=15)
        await link.unplug()
        mark = len(link.frames.frames)
        await link.frames.wait(lambda f: f.direction == "up", timeout=15, since=mark)
        counters = await link.counters()
        assert counters["unplugged_bytes"] > 0
        await link.replug()
        with pytest.raises(BenchError, match="no board"):
            await session.call("power.cycle", board="board-99")
    finally:
        await session.close()


def _suite(gateway_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest on the scenario files in a subprocess, pointed at ``gateway_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREETSENSE_HIL")}
    env.update(STREETSENSE_HIL_GATEWAY=gateway_url, STREETSENSE_HIL_TOKEN=TOKEN,
               STREETSENSE_HIL_ARTEFACTS=str(tmp_path / "artefacts"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         str(HERE / "test_outages.py"), str(HERE / "test_commands.py"),
         str(HERE / "test_sensors.py"), str(HERE / "test_rejections.py"), *args],
        capture_output=True, text=True, env=env, timeout=240, cwd=HERE.parent.parent)


def test_board_named_in_the_url_is_the_only_one_used(bench: str, tmp_path: Path) -> None:
    """hil://.../board-43 (traffic): air-quality scenarios skip; an unknown board is refused."""
    result = _suite(f"{bench}/board-43", tmp_path, "-k", "unplugged_sensor")
    assert "1 skipped" in result.stdout, result.stdout
    assert "needs a air-quality board" in result.stdout and "has ['traffic']" in result.stdout
    refused = _suite(f"{bench}/board-99", tmp_path, "-k", "unplugged_sensor")
    assert refused.returncode == 4
    assert "the bench has no board 'board-99'" in refused.stderr


def test_scenarios_run_against_the_remote_bench(bench: str, tmp_path: Path) -> None:
    """The same scenario files pass remotely; what a bench cannot do is skipped, with why."""
    result = _suite(bench, tmp_path, "-k", f"{REMOTE_SUBSET} or sigkill or rejected")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "3 passed" in out, out
    assert "cannot: gateway_control (kill and restart the gateway process)" in out
    assert "cannot: injection (write crafted frames into the gateway's serial input)" in out
