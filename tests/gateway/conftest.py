"""Fixtures for the gateway tests: a real mosquitto on a free port, and a fault proxy before it."""

from collections.abc import Iterator

import pytest

from streetsense.hil.broker import Mosquitto, TcpProxy


@pytest.fixture
def mosquitto() -> Iterator[Mosquitto]:
    """A running mosquitto on a free 127.0.0.1 port; the test may stop, kill and restart it."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def mqtt_proxy(mosquitto: Mosquitto) -> Iterator[TcpProxy]:
    """A TCP proxy in front of ``mosquitto`` (connect clients to ``mqtt_proxy.url``)."""
    with TcpProxy(mosquitto.host, mosquitto.port) as proxy:
        yield proxy
