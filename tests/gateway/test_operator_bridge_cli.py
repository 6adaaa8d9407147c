"""`streetsense bridge` from an operator's shell: signs, sends, prints the gateway's answer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from streetsense.hil.broker import Mosquitto
from tests.support.gateway_rig import gateway_with_node, node_info


async def test_bridge_cli_renames_a_node_and_says_what_failed(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """`streetsense bridge node/rename from=.. to=..` prints the OK answer and exits 0; a
    removal without --confirm exits 1 with the gateway's CONFIRM_REQUIRED sentence, and the
    option that confirms it (the sentence alone says to send a JSON "confirm")."""
    async with gateway_with_node(tmp_path, mosquitto.url, observe=False,
                                 nodes=[node_info(42), node_info(43)]) as rig:
        await rig.publisher.connected.wait()
        base = [sys.executable, "-m", "streetsense.tools.cli", "bridge", "--gateway", "gw-test",
                "--broker", mosquitto.url, "--site", "test",
                "--key-file", str(tmp_path / "operator.key")]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60,
                                  check=False)

        renamed = await asyncio.to_thread(run, "node/rename", "from=HN-0042", "to=HN-0099")
        unconfirmed = await asyncio.to_thread(run, "node/remove", "node=HN-0043")
    assert renamed.returncode == 0, renamed.stderr
    assert json.loads(renamed.stdout)["message"] == "HN-0042 is now HN-0099"
    assert unconfirmed.returncode == 1
    assert "CONFIRM_REQUIRED: removing HN-0043" in unconfirmed.stderr
    assert "(here: add --confirm)" in unconfirmed.stderr
    assert "Traceback" not in unconfirmed.stderr
