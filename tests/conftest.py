"""Suite-wide settings and fixtures. Hypothesis draws the same examples on every run (`make
test` is deterministic); ``HYPOTHESIS_PROFILE=explore`` draws fresh ones to hunt for new cases.
``mosquitto`` (a real broker on a free port) and ``mosquitto_proxy`` (a fault proxy before it)
serve every folder; the HIL plugin's ``broker``/``mqtt_proxy`` are the rig's own (the plugin's
names are never redefined here)."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from streetsense.hil.broker import Mosquitto, TcpProxy

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def mosquitto(request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """A running mosquitto on a free 127.0.0.1 port; the test may stop, kill and restart it.
    A ``mosquitto(extra_config=[...])`` marker adds lines to its config."""
    marker = request.node.get_closest_marker("mosquitto")
    with Mosquitto(**(marker.kwargs if marker else {})) as broker:
        yield broker


@pytest.fixture
def mosquitto_proxy(mosquitto: Mosquitto) -> Iterator[TcpProxy]:
    """A TCP proxy in front of ``mosquitto`` (connect clients to ``mosquitto_proxy.url``)."""
    with TcpProxy(mosquitto.host, mosquitto.port) as proxy:
        yield proxy
