"""The plugin's fixtures: the rig's parts for one test, read like the bench.

``broker`` (+ ``mqtt_proxy``), ``board``, ``environment``, ``power``, ``console``, ``link``,
``injector``, ``gateway``, ``observer``, ``strategy``, ``durations``, ``artefacts``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ..artefacts import Artefacts
from ..broker import Mosquitto, TcpProxy
from ..gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from ..keys import node_key
from ..observer import MqttObserver
from ..rig.drivers import Board, ConsoleDriver, EnvironmentDriver, LinkDriver, PowerDriver
from ..rig.injector import FrameInjector
from ..rig.resources import NODE_KINDS, RemoteBench, SerialBoard
from ..rig.strategy import BoardStrategy
from .hooks import ARTEFACTS_KEY, board_marker
from .options import OPTIONS_KEY, SOAK_DURATIONS, Durations, HilOptions

__all__ = [
    "FAST_AIR_SETTINGS",
    "FAST_SETTINGS",
    "artefacts",
    "board",
    "broker",
    "console",
    "durations",
    "environment",
    "gateway",
    "hil_board",
    "hil_broker",
    "hil_options",
    "hil_proxy",
    "injector",
    "link",
    "mqtt_proxy",
    "observer",
    "power",
    "strategy",
]

# Settings that make a node report quickly (a test's board marker overrides them); the
# air-quality app also takes a short PM warm-up.
FAST_SETTINGS: dict[str, Any] = {
    "report_interval_s": 2,
    "sample_interval_s": 1,
    "status_interval_s": 5,
}
FAST_AIR_SETTINGS: dict[str, Any] = {**FAST_SETTINGS, "pm_warmup_s": 1}


@pytest.fixture(scope="session")
def hil_options(pytestconfig: pytest.Config) -> HilOptions:
    """The rig chosen for this session."""
    return pytestconfig.stash[OPTIONS_KEY]


@pytest.fixture
def artefacts(request: pytest.FixtureRequest) -> Artefacts:
    """This test's artefact sources; written to a folder if the test fails."""
    collected = Artefacts()
    request.node.stash[ARTEFACTS_KEY] = collected
    return collected


@pytest.fixture
def durations(request: pytest.FixtureRequest, hil_options: HilOptions) -> Durations:
    """Scenario durations: soak values for ``soak`` variants, overrides from --hil-duration."""
    base = SOAK_DURATIONS if request.node.get_closest_marker("soak") else Durations()
    return replace(base, **hil_options.duration_overrides)


@pytest.fixture
def hil_broker(hil_options: HilOptions, artefacts: Artefacts) -> Iterator[Mosquitto | None]:
    """The local broker (None on a remote bench, whose gateway has its own)."""
    if isinstance(hil_options.board, RemoteBench):
        yield None
        return
    with Mosquitto() as mosquitto:
        artefacts.add_text("mosquitto.log", mosquitto.log)
        yield mosquitto


@pytest.fixture
def hil_proxy(hil_broker: Mosquitto | None) -> Iterator[TcpProxy | None]:
    """The TCP proxy the local gateway reaches its broker through."""
    if hil_broker is None:
        yield None
        return
    with TcpProxy(hil_broker.host, hil_broker.port) as proxy:
        yield proxy


@pytest.fixture
def broker(hil_broker: Mosquitto | None) -> Mosquitto:
    """A real mosquitto on a free port: ``stop()``, ``kill()``, ``start()``, ``restart()``."""
    assert hil_broker is not None, "needs_broker_control is checked at collection"
    return hil_broker


@pytest.fixture
def mqtt_proxy(hil_proxy: TcpProxy | None) -> TcpProxy:
    """The proxy between gateway and broker: ``blackhole(True/False)``, ``reset_all()``."""
    assert hil_proxy is not None, "needs_broker_control is checked at collection"
    return hil_proxy


@pytest_asyncio.fixture
async def hil_board(request: pytest.FixtureRequest, hil_options: HilOptions,
                    observer: MqttObserver, artefacts: Artefacts,
                    tmp_path: Path) -> AsyncIterator[Board]:
    """The board for this test, from the rig and the test's ``board`` marker (the observer
    is subscribed first: what the board sends from now on can be found on MQTT)."""
    wanted = board_marker(request.node)
    kind = wanted.get("kind", "air-quality")
    if kind not in NODE_KINDS:
        raise pytest.UsageError(f"board marker: kind must be one of {NODE_KINDS}")
    node_id = int(wanted.get("node_id", 42))
    fast = FAST_AIR_SETTINGS if kind == "air-quality" else FAST_SETTINGS
    settings = {**fast, **wanted.get("settings", {})}
    resource = hil_options.board
    if isinstance(resource, RemoteBench):
        from ..remote import remote_board

        async with remote_board(resource, kind=kind, settings=settings,
                                artefacts=artefacts) as remote:
            yield remote
    elif isinstance(resource, SerialBoard):
        from ..rig.serial_board import serial_board

        with serial_board(resource, settings=settings, artefacts=artefacts,
                          seed=hil_options.seed) as board:
            yield board
    else:
        from ..rig.emulated import emulated_board

        with emulated_board(replace(resource, kind=kind), node_id=node_id,
                            key=node_key(hil_options.seed, node_id), settings=settings,
                            seed=hil_options.seed, workdir=tmp_path / "board",
                            artefacts=artefacts) as board:
            yield board


@pytest.fixture
def board(hil_board: Board, artefacts: Artefacts) -> Board:
    """The board under test: ``name``, ``node_id``, ``key``, ``kind`` and its drivers
    (its key never shows in the artefacts)."""
    artefacts.add_secret(hil_board.key)
    return hil_board


def _driver(board: Board, name: str) -> Any:
    driver = getattr(board, name)
    assert driver is not None, f"needs_{name} is checked at collection"
    return driver


@pytest.fixture
def environment(hil_board: Board) -> EnvironmentDriver:
    """The world the sensors see: ``set_air``, ``vehicle``, ``traffic``, ``fault``."""
    driver: EnvironmentDriver = _driver(hil_board, "environment")
    return driver


@pytest.fixture
def power(hil_board: Board) -> PowerDriver:
    """The board's supply: ``on``, ``off``, ``cycle``."""
    driver: PowerDriver = _driver(hil_board, "power")
    return driver


@pytest.fixture
def console(hil_board: Board) -> ConsoleDriver:
    """The node's console: ``text``, ``wait_for``."""
    driver: ConsoleDriver = _driver(hil_board, "console")
    return driver


@pytest.fixture
def link(hil_board: Board) -> LinkDriver:
    """The cable: ``set_faults``, ``unplug``, ``replug``, ``counters``, ``frames``."""
    driver: LinkDriver = _driver(hil_board, "link")
    return driver


@pytest.fixture
def injector(artefacts: Artefacts) -> Iterator[FrameInjector]:
    """One more gateway serial port, written by the test (crafted frames, replays)."""
    with FrameInjector() as port:
        yield port


@pytest_asyncio.fixture
async def observer(hil_options: HilOptions, hil_broker: Mosquitto | None,
                   artefacts: Artefacts) -> AsyncIterator[MqttObserver]:
    """Every MQTT message under the gateway's prefix, from before the board and the gateway
    start (so nothing they cause can be missed)."""
    if hil_broker is not None:
        url, topics = hil_broker.url, ["streetsense/#"]
    else:
        bench = hil_options.bench
        url, topics = str(bench["mqtt_url"]), [f"{bench['prefix']}/{bench['site']}/#"]
    async with MqttObserver(url, topics=topics) as watching:
        artefacts.add_writer("mqtt-transcript.jsonl", watching.dump)
        yield watching


@pytest.fixture
def gateway(request: pytest.FixtureRequest, hil_options: HilOptions,
            hil_proxy: TcpProxy | None, hil_board: Board, observer: MqttObserver,
            artefacts: Artefacts, tmp_path: Path) -> Iterator[Any]:
    """The gateway under test: a local process (``kill``, ``start``, ``restart``, ``log``)
    or, on a remote bench, the bench's gateway (``topic``, ``log``)."""
    if hil_proxy is None:
        from ..remote import remote_gateway

        bench = remote_gateway(hil_board)
        artefacts.add_text("gateway.log", bench.log)
        yield bench
        return
    serial = [SerialEntry(path=hil_board.port or "", name="board")]
    nodes = [NodeEntry(id=hil_board.node_id, name=hil_board.name, kind=hil_board.kind,
                       key=hil_board.key)]
    if "injector" in request.fixturenames:
        port: FrameInjector = request.getfixturevalue("injector")
        serial.append(SerialEntry(path=port.port, name="injector"))
    marker = request.node.get_closest_marker("gateway_process")
    extra = dict(marker.kwargs) if marker else {}
    process = GatewayProcess(workdir=tmp_path / "gateway", mqtt_url=hil_proxy.url,
                             serial=serial, nodes=nodes,
                             settings=extra.get("settings"), command=extra.get("command"))
    artefacts.add_text("gateway.log", process.log)
    with process:
        yield process


@pytest.fixture
def strategy(hil_board: Board, gateway: Any, observer: MqttObserver) -> BoardStrategy:
    """Moves the board off → booted → provisioned (online at the gateway)."""
    return BoardStrategy(hil_board, gateway, observer)
