"""A firmware update over BLE at the smallest ATT MTU (23: 20 bytes a packet), through the
gateway's production path (gateway/ota.py, the BLE transport) to the real firmware."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streetsense.gateway.service import Gateway
from streetsense.gateway.transports.ble import BleTransport
from streetsense.hil.ble.bleak_backend import gateway_settings
from streetsense.hil.ble.rig import BleRig
from streetsense.hil.broker import Mosquitto
from streetsense.hil.node import EmulatedNode
from streetsense.hil.observer import MqttObserver
from tests.ble.test_ble_end_to_end import KEY, UNIQUE_ID, gateway_config
from tests.firmware.ota_harness import make_bundle

pytestmark = pytest.mark.micropython

OTA = "streetsense/test/HN-0042/ota"


class RadioBoard:
    """A board with the radio and no sensors."""

    def __init__(self, rig: BleRig) -> None:
        self.rig = rig

    def board_entries(self) -> dict[str, Any]:
        return dict(self.rig.board_entries(UNIQUE_ID))


async def test_update_over_ble_at_mtu_23(tmp_path: Path, rig: BleRig) -> None:
    """The whole bundle over BLE in 20-byte pieces: received, verified, switched, and the
    node confirmed the new version over the same link."""
    bundle = make_bundle(tmp_path, "0.2.0")
    node = EmulatedNode("air-quality", environment=RadioBoard(rig), node_id=42, key=KEY,
                        seed=3, extra_config={"link": "ble"})
    with Mosquitto() as broker:
        config = gateway_config(tmp_path, broker.url, rig.central_transport())
        ble = config.ble
        config = type(config)(**{**config.__dict__, "ble": type(ble)(**{
            **ble.__dict__, **gateway_settings(rig.central_transport(), mtu=23)})})
        try:
            async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer, \
                    Gateway(config, derivers=[]).running() as gateway:  # fmt: skip
                node.start()
                await observer.expect("streetsense/test/HN-0042/state",
                                      lambda m: "birth" in m.json(), timeout=30)
                assert gateway.ota is not None and gateway.session is not None
                assert gateway.ota.store.put(bundle.sha256.hex(), bundle.image) is None
                state = gateway.session.nodes[42]
                code, _ = await gateway.ota.start(state, {"sha256": bundle.sha256.hex()})
                assert code == "OK"
                done = await observer.expect(OTA, lambda m: m.json()["state"] == "confirmed",
                                             timeout=240)
                link = next(t for t in gateway.transports if isinstance(t, BleTransport))
                mtu = link.stats()["ble:HN-0042"]["mtu"]
                birth = await observer.expect(
                    "streetsense/test/HN-0042/state",
                    lambda m: m.json().get("birth", {}).get("firmware") == "0.2.0", timeout=30)
        finally:
            node.close()
    assert mtu == 23
    assert done.json()["version"] == "0.2.0"
    assert birth.json()["link"].startswith("ble")
