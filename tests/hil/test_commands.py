"""Scenario: command round trips through MQTT, the gateway and the link to the node and back."""

from __future__ import annotations

from typing import Any

import pytest

from streetsense.hil.observer import MqttObserver
from streetsense.hil.rig.drivers import Board, ConsoleDriver
from streetsense.hil.rig.strategy import BoardStrategy
from tests.hil.helpers import command as _command


@pytest.mark.board(kind="traffic")
async def test_config_change_bad_setting_and_identify(
        board: Board, gateway: Any, observer: MqttObserver, strategy: BoardStrategy) -> None:
    """config: OK and the next data carries the new interval; an invalid setting: BAD_ARGS
    and nothing changes; identify: OK for that request id."""
    await strategy.transition("provisioned")
    result = await _command(observer, gateway, board, "config",
                            {"id": "cfg-1", "settings": {"report_interval_s": 3}})
    assert (result["code"], result["command"]) == ("OK", "config")
    data_topic = gateway.topic(board.name, "data")
    data = await observer.expect(data_topic, lambda m: m.json()["interval_s"] == 3,
                                 timeout=20, since=observer.mark())
    assert data.json()["boot"] == result["boot"]

    refused = await _command(observer, gateway, board, "config",
                             {"id": "cfg-bad", "settings": {"report_interval_s": -5}})
    assert refused["code"] == "BAD_ARGS"
    after = await observer.expect(data_topic, timeout=20, since=observer.mark())
    assert after.json()["interval_s"] == 3

    identify = await _command(observer, gateway, board, "identify",
                              {"id": "id-1", "args": {"seconds": 2}})
    assert (identify["code"], identify["id"]) == ("OK", "id-1")


@pytest.mark.board(kind="traffic")
@pytest.mark.needs_console
async def test_reboot_command_gives_a_new_boot(board: Board, console: ConsoleDriver,
                                              gateway: Any, observer: MqttObserver,
                                              strategy: BoardStrategy) -> None:
    """reboot: RESULT OK, then a birth with the boot counter one up, and the node's console
    shows that boot starting."""
    await strategy.transition("provisioned")
    first = await strategy.wait_birth()
    boot = first.json()["birth"]["boot"]
    mark = observer.mark()
    result = await _command(observer, gateway, board, "reboot", {"id": "rb-1"})
    assert result["code"] == "OK"
    birth = await strategy.wait_birth(since=mark)
    assert birth.json()["birth"]["boot"] == boot + 1
    assert birth.json()["birth"]["reset_cause"] != 1  # a soft reset, not power-on
    line = await console.wait_for(rf"\bboot {boot + 1}\b", timeout=10)
    assert f"node {board.node_id}" in line
