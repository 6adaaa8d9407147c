"""The suite has teeth: a gateway that ACKs before it commits fails the SIGKILL scenario."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streetsense.hil.gateway_proc import GatewayProcess
from streetsense.hil.observer import MqttObserver
from streetsense.hil.plugin import Durations
from streetsense.hil.rig.drivers import Board, LinkDriver
from streetsense.hil.rig.strategy import BoardStrategy
from tests.hil.test_outages import test_gateway_sigkill_mid_stream_loses_nothing as sigkill_scenario

BROKEN = [sys.executable, str(Path(__file__).with_name("broken_gateway.py")), "run"]


@pytest.mark.board(kind="traffic")
@pytest.mark.gateway_process(command=BROKEN)
@pytest.mark.needs_gateway_control
@pytest.mark.needs_link
async def test_ack_before_commit_fails_the_sigkill_scenario(
        durations: Durations, board: Board, link: LinkDriver, gateway: GatewayProcess,
        observer: MqttObserver, strategy: BoardStrategy) -> None:
    """Frames acked but not yet journaled when the gateway dies are reported as lost."""
    with pytest.raises(AssertionError, match="sent but never published"):
        await sigkill_scenario("short", durations, board, link, gateway, observer, strategy)
