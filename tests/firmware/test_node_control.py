"""Node core on the emulated board: TIME, CONFIG, COMMAND, the downlink acceptance rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streetsense.hil.keys import KEY, NODE_ID
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.protocol import messages as m
from tests.firmware.node_harness import hello, make_node

pytestmark = pytest.mark.micropython

UTC_MS = 1_764_115_200_000  # 2025-11-26T00:00:00Z


def data_frame(value: int) -> object:
    return lambda f: f.type == m.DATA and f.body[4][0][2] == value


def test_time_makes_timestamps_utc(tmp_path: Path) -> None:
    """Before TIME the node stamps uptime (clock 1); after it, UTC seconds (clock 0)."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"report_interval_s": 1, "test_value": 5}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        before = gw.wait(lambda f: f.type == m.DATA)
        gw.send(m.TIME, {1: UTC_MS})
        gw.send(m.CONFIG, {1: 1, 2: {"test_value": 6}})  # marks the frames sent after TIME
        gw.result(1)
        after = gw.wait(lambda f: f.type == m.DATA and f.body[4][0][2] == 6)
    assert before.body[2] == m.CLOCK_UPTIME and before.body[1] < 10
    assert after.body[2] == m.CLOCK_UTC
    assert UTC_MS // 1000 <= after.body[1] <= UTC_MS // 1000 + 5


def test_config_ok_applies_and_persists_bad_args_applies_none(tmp_path: Path) -> None:
    """CONFIG with valid settings: RESULT OK, applied and saved; with one bad setting:
    BAD_ARGS naming it, and none of them applied."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"report_interval_s": 1}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        gw.send(m.CONFIG, {1: 10, 2: {"status_interval_s": 600, "test_value": 7}})
        ok = gw.result(10)
        gw.wait(lambda f: f.type == m.DATA and f.body[4][0][2] == 7)
        gw.send(m.CONFIG, {1: 11, 2: {"status_interval_s": 0, "test_value": 8}})
        bad = gw.result(11)
        gw.send(m.CONFIG, {1: 12, 2: {"no_such_setting": 1}})
        unknown = gw.result(12)
        saved = json.loads((node.flash_dir / "config.json").read_text())
    assert ok.body[2] == m.RESULT_OK and ok.body[4] == {"status_interval_s": 600, "test_value": 7}
    assert bad.body[2] == m.RESULT_BAD_ARGS and "status_interval_s" in bad.body[3]
    assert unknown.body[2] == m.RESULT_BAD_ARGS and "no_such_setting" in unknown.body[3]
    assert saved["status_interval_s"] == 600 and saved["test_value"] == 7


def test_command_reboot_answers_then_restarts(tmp_path: Path) -> None:
    """COMMAND reboot: RESULT OK, then a reset (reset cause SOFT_RESET in the next HELLO);
    an unknown command gets UNKNOWN_COMMAND; identify blinks; the app's command reaches it."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        gw.send(m.COMMAND, {1: 1, 2: "fly"})
        unknown = gw.result(1)
        gw.send(m.COMMAND, {1: 2, 2: "echo", 3: {"x": 1}})
        echo = gw.result(2)
        gw.send(m.COMMAND, {1: 4, 2: "identify", 3: {"seconds": 1}})
        identify = gw.result(4)
        node.wait_for(r"^I identify 1 s$")
        gw.send(m.COMMAND, {1: 3, 2: "reboot"})
        reboot = gw.result(3)
        second = gw.wait(hello(2))
        assert node.boot_count == 2
    assert unknown.body[2] == m.RESULT_UNKNOWN_COMMAND
    assert echo.body[2] == m.RESULT_OK and echo.body[4] == {"x": 1}
    assert identify.body[2] == m.RESULT_OK
    assert reboot.body[2] == m.RESULT_OK and reboot.boot == 1
    assert second.body[5] == 5  # machine.SOFT_RESET


def test_downlinks_failing_the_rules_are_dropped(tmp_path: Path) -> None:
    """A downlink with a wrong key, node id or boot, or a seq not above the last one, is
    dropped without a RESULT; the valid ones around them are answered."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        echo = {2: "echo"}
        gw.send(m.COMMAND, {1: 1, **echo}, key=bytes(32))  # another key
        gw.send(m.COMMAND, {1: 2, **echo}, key=None)  # unsigned
        gw.send(m.COMMAND, {1: 3, **echo}, node_id=NODE_ID + 1, boot=1)
        gw.send(m.COMMAND, {1: 4, **echo}, boot=2)
        gw.send(m.COMMAND, {1: 5, **echo}, seq=5)  # valid
        gw.send(m.COMMAND, {1: 6, **echo}, seq=5)  # replayed seq
        gw.send(m.COMMAND, {1: 7, **echo}, seq=4)  # older seq
        gw.send(m.TIME, {1: UTC_MS}, seq=3)  # older seq: the clock stays on uptime
        gw.send(m.COMMAND, {1: 8, **echo}, seq=6)  # valid
        gw.result(8)
    results = [f.body[1] for f in gw.accepted if f.type == m.RESULT]
    assert results == [5, 8]
    assert all(f.body.get(2, 1) == m.CLOCK_UPTIME for f in gw.accepted if f.type == m.LOG)


def test_factory_provisioning_round_trip(tmp_path: Path) -> None:
    """Factory node: unsigned HELLO as node 0; an unsigned CONFIG with id, key and kind is
    answered OK signed with the new key; after the reset it is that node. A signed
    factory_reset brings it back to the factory state."""
    new_key = bytes(range(100, 132))
    node_id = 77
    with make_node(tmp_path) as node, MiniGateway(node.port, {0: None, node_id: new_key}) as gw:
        factory = gw.wait(hello(1, node_id=0))
        gw.send(m.COMMAND, {1: 9, 2: "reboot"}, node_id=0, key=None)  # not in factory state
        gw.send(m.CONFIG, {1: 1, 2: {"node_id": node_id, "kind": "test"}}, node_id=0, key=None)
        missing_key = gw.result(1, node_id=0)
        gw.send(m.CONFIG, {1: 2, 2: {"node_id": node_id, "key": new_key.hex(), "kind": "test",
                                     "report_interval_s": 30}}, node_id=0, key=None)  # fmt: skip
        done = gw.result(2, node_id=node_id)
        provisioned = gw.wait(hello(2, node_id=node_id))
        assert node.config["node_id"] == node_id and node.config["report_interval_s"] == 30
        gw.send(m.COMMAND, {1: 3, 2: "factory_reset"}, node_id=node_id, key=new_key)
        gw.result(3, node_id=node_id)
        again = gw.wait(hello(3, node_id=0))
        assert node.config["node_id"] == 0 and node.config["key"] == ""
    assert factory.tag is None and factory.body[7] == ["factory"]
    assert missing_key.body[2] == m.RESULT_BAD_ARGS and "key" in missing_key.body[3]
    assert missing_key.tag is None
    assert done.verified and done.body[2] == m.RESULT_OK and done.boot == 1
    assert provisioned.verified and "factory" not in provisioned.body[7]
    assert again.tag is None and again.body[7] == ["factory"]
    assert not any(f.type == m.RESULT and f.body[1] == 9 for f in gw.accepted)


def test_settings_and_arguments_beyond_the_limits_get_bad_args(tmp_path: Path) -> None:
    """A report interval of 2**40 s, a 999,520 ppm CO2 offset, a 10**6 s reboot delay: each
    refused with BAD_ARGS naming the limit (protocol.limits), nothing saved, no reboot."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        gw.send(m.CONFIG, {1: 1, 2: {"report_interval_s": 2**40}})
        interval = gw.result(1)
        gw.send(m.CONFIG, {1: 2, 2: {"calibration": {"co2": 999_520}}})
        offset = gw.result(2)
        gw.send(m.COMMAND, {1: 3, 2: "reboot", 3: {"delay_s": 10**6}})
        reboot = gw.result(3)
        gw.send(m.COMMAND, {1: 4, 2: "identify", 3: {"seconds": 1}})
        gw.result(4)  # still running the same boot
        saved = node.config
    assert interval.body[2] == m.RESULT_BAD_ARGS and "1 to 86400" in interval.body[3]
    assert offset.body[2] == m.RESULT_BAD_ARGS and "co2: offset -1000 to 1000" in offset.body[3]
    assert reboot.body[2] == m.RESULT_BAD_ARGS and "delay_s" in reboot.body[3]
    assert saved.get("report_interval_s") != 2**40 and not saved.get("calibration")
    assert node.boot_count == 1
