"""``streetsense ota``: a staged rollout to a site's nodes through a real gateway (issue 22)."""

from __future__ import annotations

import asyncio
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from streetsense.hil.broker import Mosquitto
from streetsense.hil.gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from streetsense.hil.keys import numbered_key as node_key
from streetsense.hil.node import EmulatedNode
from streetsense.hil.observer import MqttObserver
from tests.firmware.ota_harness import firmware_copy

pytestmark = pytest.mark.micropython

SITE = "hanoi"
NAMES = ("HN-0001", "HN-0002", "HN-0003")


async def _ota(gateway: GatewayProcess, url: str, bundle: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streetsense.tools.cli", "ota", "--broker", url, "--site", SITE,
        "--key-file", str(gateway.workdir / "operator.key"), "--bundle", str(bundle),
        "--canary", "1", "--watch-s", "20", "--node-timeout-s", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, out.decode()


def _bundle(tmp_path: Path, version: str, *, crash: bool = False) -> Path:
    from streetsense.tools.bundle import build_bundle

    path = tmp_path / f"{version}.bundle"
    path.write_bytes(build_bundle(firmware_copy(tmp_path, version, crash=crash)))
    return path


async def test_rollout_halts_on_a_canary_that_rolls_back_then_updates_the_street(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A bundle that crashes on boot: the canary rolls back, the rollout halts saying so and
    the other nodes get nothing. A good bundle: the canary confirms and keeps reporting, then
    the rest; every node's birth shows the new version."""
    broken, good = _bundle(tmp_path, "0.3.0", crash=True), _bundle(tmp_path, "0.2.0")
    with ExitStack() as stack:
        nodes = [stack.enter_context(EmulatedNode(
            "air-quality", flash_dir=tmp_path / f"flash{i}", node_id=i, key=node_key(i),
            extra_config={"status_interval_s": 2})) for i in (1, 2, 3)]
        gateway = GatewayProcess(
            workdir=tmp_path / "gw", mqtt_url=mosquitto.url, site=SITE,
            serial=[SerialEntry(path=n.port, name=f"tty{i}") for i, n in enumerate(nodes)],
            nodes=[NodeEntry(id=i, name=name, kind="air-quality", key=node_key(i))
                   for i, name in zip((1, 2, 3), NAMES, strict=True)])
        stack.callback(gateway.close)
        async with MqttObserver(mosquitto.url, topics=[f"streetsense/{SITE}/#"]) as observer:
            await asyncio.to_thread(gateway.start)
            for name in NAMES:
                await observer.expect(f"streetsense/{SITE}/{name}/state",
                                      lambda m: "birth" in m.json(), timeout=30)
            status, halted = await _ota(gateway, mosquitto.url, broken)
            untouched = [m for name in NAMES[1:]
                         for m in observer.messages(f"streetsense/{SITE}/{name}/ota")]
            code, done = await _ota(gateway, mosquitto.url, good)
            births = {name: await observer.expect(
                f"streetsense/{SITE}/{name}/state",
                lambda m: m.json().get("birth", {}).get("firmware") == "0.2.0", timeout=30)
                for name in NAMES}
    assert status == 1 and "rollout halted: canary HN-0001 rolled_back" in halted, halted
    assert "not acknowledged" in halted
    assert not untouched
    assert code == 0, done
    assert "rollout of 0.2.0 done: 3 nodes run it" in done
    assert "canaries [" in done and "rest [" in done
    assert len(births) == 3
