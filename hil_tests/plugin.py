"""The StreetSense HIL pytest plugin: fixtures that read like the bench.

Registered as the ``pytest11`` entry point ``streetsense_hil``. Options (group "hil"), each
with an environment fallback:

=====================  ==============================  ===================================
option                 environment                     meaning
=====================  ==============================  ===================================
``--hil-board``        ``STREETSENSE_HIL_BOARD``       ``emulated`` (default) or
                                                       ``serial:/dev/ttyUSB0[,kind=..,...]``
``--hil-gateway``      ``STREETSENSE_HIL_GATEWAY``     ``hil://host:port`` of a remote bench
``--hil-token``        ``STREETSENSE_HIL_TOKEN``       its token (or ``--hil-token-file``)
``--hil-artefacts``    ``STREETSENSE_HIL_ARTEFACTS``   where failed tests leave their folder
``--hil-seed``         ``STREETSENSE_HIL_SEED``        seed of every fault and traffic RNG
``--hil-soak``                                         also run the ``soak`` variants
``--hil-duration``                                     ``NAME=SECONDS`` overrides a duration
=====================  ==============================  ===================================

Fixtures: ``broker`` (+ ``mqtt_proxy``), ``board``, ``environment``, ``power``, ``console``,
``link``, ``injector``, ``gateway``, ``observer``, ``strategy``, ``durations``, ``artefacts``.
A test that uses a capability fixture must carry its ``needs_*`` marker (checked); a test
needing what the rig lacks is skipped with the reason, before anything starts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from .artefacts import Artefacts, folder_name, remove_folder
from .broker import Mosquitto, TcpProxy
from .gateway_proc import GatewayProcess, NodeEntry, SerialEntry
from .observer import MqttObserver
from .rig.drivers import Board, ConsoleDriver, EnvironmentDriver, LinkDriver, PowerDriver
from .rig.injector import FrameInjector
from .rig.resources import (
    CAPABILITIES,
    NODE_KINDS,
    BoardSpecError,
    EmulatedBoard,
    RemoteBench,
    SerialBoard,
    parse_board,
)
from .rig.strategy import BoardStrategy

__all__ = ["Durations", "HilOptions", "node_key", "short_and_soak"]

OPTIONS_KEY = pytest.StashKey["HilOptions"]()
ARTEFACTS_KEY = pytest.StashKey[Artefacts]()
MARKER_PROBLEM_KEY = pytest.StashKey[str]()
OUTCOMES_KEY = pytest.StashKey[set[str]]()  # "passed"/"failed"/"skipped" of the call, and
# "failed" of a setup or teardown: a test that passed leaves no artefact folder

# A fixture that exposes a capability -> that capability (its marker is needs_<capability>).
FIXTURE_CAPABILITY = {
    "environment": "environment",
    "power": "power",
    "console": "console",
    "link": "link",
    "broker": "broker_control",
    "mqtt_proxy": "broker_control",
    "injector": "injection",
}
HIL_FIXTURES = frozenset({*FIXTURE_CAPABILITY, "board", "gateway", "observer", "strategy"})

# Settings that make a node report quickly (a test's board marker overrides them); the
# air-quality app also takes a short PM warm-up.
FAST_SETTINGS: dict[str, Any] = {
    "report_interval_s": 2,
    "sample_interval_s": 1,
    "status_interval_s": 5,
}
FAST_AIR_SETTINGS: dict[str, Any] = {**FAST_SETTINGS, "pm_warmup_s": 1}


@dataclass(frozen=True)
class Durations:
    """How long the fault scenarios last, in seconds: short in ``make test``, full in soak."""

    broker_outage_s: float = 3.0
    unplug_s: float = 3.0
    noise_s: float = 5.0
    traffic_s: float = 8.0
    stream_s: float = 4.0
    street_s: float = 8.0  # arrivals of a street scenario (hil_tests/street_scenarios.py)


SOAK_DURATIONS = Durations(broker_outage_s=60.0, unplug_s=30.0, noise_s=60.0,
                           traffic_s=600.0, stream_s=120.0, street_s=600.0)


def short_and_soak() -> pytest.MarkDecorator:
    """Parametrise a scenario with its short run and its ``soak`` run (deselected by default);
    the ``durations`` fixture gives each its durations. Use as ``@short_and_soak()``."""
    return pytest.mark.parametrize(
        "variant", ["short", pytest.param("soak", marks=pytest.mark.soak)])


@dataclass(frozen=True)
class HilOptions:
    """The session's rig, read once from options and environment."""

    board: EmulatedBoard | SerialBoard | RemoteBench
    artefacts_dir: Path
    seed: int = 1
    soak: bool = False
    duration_overrides: dict[str, float] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)  # a remote bench's description

    @property
    def bench_boards(self) -> list[dict[str, Any]]:
        """The remote bench's boards this session may use (the one named in the URL)."""
        boards: list[dict[str, Any]] = self.bench.get("boards", [])
        if isinstance(self.board, RemoteBench) and self.board.board:
            boards = [b for b in boards if b["name"] == self.board.board]
        return boards

    @property
    def capabilities(self) -> frozenset[str]:
        """What this rig can do (see ``rig.resources.CAPABILITIES``); on a remote bench,
        what all its boards (in use) can do."""
        if isinstance(self.board, RemoteBench):
            caps = [set(b["capabilities"]) for b in self.bench_boards] or [set()]
            return frozenset(set.intersection(*caps))
        return self.board.capabilities

    def describe(self) -> str:
        """The rig in one line (report header, skip reasons, artefacts)."""
        if isinstance(self.board, RemoteBench) and self.bench:
            boards = ", ".join(f"{b['node']} ({b['kind']})" for b in self.bench["boards"])
            return f"{self.board.describe()} (gateway {self.bench['gateway']}: {boards})"
        return self.board.describe()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "StreetSense hardware-in-the-loop rig")
    group.addoption("--hil-board", metavar="SPEC",
                    help="board under test: 'emulated' (default) or "
                         "'serial:/dev/ttyUSB0[,kind=traffic,node_id=7,key=HEX,console=PORT,"
                         "power_pin=17]' (env STREETSENSE_HIL_BOARD)")
    group.addoption("--hil-gateway", metavar="URL",
                    help="run against a remote bench gateway, hil://host:port[/BOARD] "
                         "(BOARD: one of its serial port names; env STREETSENSE_HIL_GATEWAY)")
    group.addoption("--hil-token", metavar="TOKEN",
                    help="the remote bench's token (env STREETSENSE_HIL_TOKEN)")
    group.addoption("--hil-token-file", metavar="FILE", help="read the token from FILE")
    group.addoption("--hil-artefacts", metavar="DIR",
                    help="folder for failed tests' artefacts (env STREETSENSE_HIL_ARTEFACTS; "
                         "default build/hil-artefacts under the rootdir)")
    group.addoption("--hil-seed", type=int, metavar="N",
                    help="seed for fault injection and traffic (env STREETSENSE_HIL_SEED; 1)")
    group.addoption("--hil-soak", action="store_true",
                    help="also run the long 'soak' variants (also selected by -m soak)")
    group.addoption("--hil-duration", action="append", default=[], metavar="NAME=SECONDS",
                    help="override a scenario duration, e.g. broker_outage_s=30")


def _setting(config: pytest.Config, option: str, env: str) -> str | None:
    value = config.getoption(option, None)
    return str(value) if value not in (None, "") else os.environ.get(env) or None


def _read_options(config: pytest.Config) -> HilOptions:
    gateway = _setting(config, "--hil-gateway", "STREETSENSE_HIL_GATEWAY")
    board_spec = _setting(config, "--hil-board", "STREETSENSE_HIL_BOARD") or "emulated"
    board: EmulatedBoard | SerialBoard | RemoteBench
    bench: dict[str, Any] = {}
    if gateway:
        token_file = config.getoption("--hil-token-file", None)
        token = (Path(token_file).read_text().strip() if token_file
                 else _setting(config, "--hil-token", "STREETSENSE_HIL_TOKEN"))
        if not token:
            raise pytest.UsageError("--hil-gateway needs a token: --hil-token, "
                                    "--hil-token-file or STREETSENSE_HIL_TOKEN")
        parts = urlsplit(gateway)
        board = RemoteBench(url=f"{parts.scheme}://{parts.netloc}", token=token,
                            board=parts.path.strip("/") or None)
        from .remote import BenchError, fetch

        try:
            bench = fetch(board.url, board.token)
        except (OSError, BenchError) as exc:
            raise pytest.UsageError(f"--hil-gateway {gateway}: {exc}") from None
        names = [b["name"] for b in bench["boards"]]
        if board.board and board.board not in names:
            raise pytest.UsageError(f"--hil-gateway {gateway}: the bench has no board "
                                    f"{board.board!r}; its boards: {names}")
    else:
        try:
            board = parse_board(board_spec)
        except BoardSpecError as exc:
            raise pytest.UsageError(str(exc)) from None
    artefacts = _setting(config, "--hil-artefacts", "STREETSENSE_HIL_ARTEFACTS")
    overrides: dict[str, float] = {}
    known = Durations.__dataclass_fields__
    for item in config.getoption("--hil-duration", None) or ():
        name, sep, seconds = item.partition("=")
        if not sep or name not in known:
            raise pytest.UsageError(f"--hil-duration {item!r}: use NAME=SECONDS with NAME one "
                                    f"of {sorted(known)}")
        overrides[name] = float(seconds)
    seed = _setting(config, "--hil-seed", "STREETSENSE_HIL_SEED")
    return HilOptions(
        board=board, bench=bench if isinstance(board, RemoteBench) else {},
        artefacts_dir=Path(artefacts) if artefacts else config.rootpath / "build" / "hil-artefacts",
        seed=int(seed) if seed else 1,
        soak=bool(config.getoption("--hil-soak", False)),
        duration_overrides=overrides)


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "hil: a hardware-in-the-loop test (added to every test that uses a HIL fixture)",
        "soak: a long-running variant; deselected unless --hil-soak or -m soak",
        "board(kind='air-quality', settings={}, node_id=42): the node this test wants",
        "gateway_process(settings={}, command=[...]): config merged into the local gateway's, "
        "or another program run in its place (e.g. a deliberately broken gateway)",
        *(f"needs_{name}: needs a rig that can {what}" for name, what in CAPABILITIES.items()),
    ):
        config.addinivalue_line("markers", line)
    config.stash[OPTIONS_KEY] = _read_options(config)


def pytest_report_header(config: pytest.Config) -> str:
    options = config.stash[OPTIONS_KEY]
    return (f"hil: {options.describe()}, seed {options.seed}, "
            f"artefacts in {options.artefacts_dir}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    options = config.stash[OPTIONS_KEY]
    markexpr = str(config.getoption("markexpr", "") or "")
    keep_soak = options.soak or "soak" in markexpr
    selected, deselected = [], []
    for item in items:
        if item.get_closest_marker("soak") and not keep_soak:
            deselected.append(item)
            continue
        selected.append(item)
        _check_requirements(item, options)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def _plugin_fixtures(item: pytest.Item) -> set[str]:
    """The fixtures of this plugin a test uses (a conftest's own ``mqtt_proxy`` is not one)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {name for name, defs in info.name2fixturedefs.items()
            if defs and getattr(defs[-1].func, "__module__", None) == __name__}


def _check_requirements(item: pytest.Item, options: HilOptions) -> None:
    """Mark HIL tests, check their needs_* markers, skip what the rig cannot do."""
    fixtures = _plugin_fixtures(item)
    declared = {mark.name.removeprefix("needs_") for mark in item.iter_markers()
                if mark.name.startswith("needs_")}
    if not fixtures & HIL_FIXTURES and not declared:
        return
    item.add_marker(pytest.mark.hil)
    # Unknown needs_* markers are refused by --strict-markers (the project's addopts).
    used = {FIXTURE_CAPABILITY[name] for name in fixtures & set(FIXTURE_CAPABILITY)}
    undeclared = used - declared
    if undeclared:
        item.stash[MARKER_PROBLEM_KEY] = "; ".join(
            f"uses a fixture needing '{name}': mark it @pytest.mark.needs_{name}"
            for name in sorted(undeclared))
        return
    missing = sorted(declared - options.capabilities)
    if missing:
        reasons = ", ".join(f"{name} ({CAPABILITIES[name]})" for name in missing)
        item.add_marker(pytest.mark.skip(reason=f"{options.describe()} cannot: {reasons}"))
        return
    wanted = _board_marker(item).get("kind", "air-quality")
    kinds = ({board["kind"] for board in options.bench_boards}
             if isinstance(options.board, RemoteBench) else
             {options.board.kind} if isinstance(options.board, SerialBoard) else set(NODE_KINDS))
    if wanted not in kinds:
        item.add_marker(pytest.mark.skip(
            reason=f"needs a {wanted} board; {options.describe()} has {sorted(kinds)}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    problem = item.stash.get(MARKER_PROBLEM_KEY, None)
    if problem:
        pytest.fail(f"HIL markers of {item.nodeid}: {problem}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    options = item.config.stash.get(OPTIONS_KEY, None)
    if options is None:
        return report
    folder = options.artefacts_dir / folder_name(item.nodeid)
    artefacts = item.stash.get(ARTEFACTS_KEY, None)
    outcomes = item.stash.setdefault(OUTCOMES_KEY, set())
    outcomes.add(report.outcome if report.when == "call" or report.failed else "")
    if report.failed and artefacts is not None:
        summary = (f"{item.nodeid}\nphase: {report.when}\nrig: {options.describe()}\n"
                   f"seed: {options.seed}\n\n{report.longreprtext}\n")
        artefacts.write(folder, summary)
        report.sections.append(("HIL artefacts", f"{folder}: {', '.join(artefacts.names)}"))
    elif report.when == "teardown" and outcomes <= {"passed", ""} and "passed" in outcomes:
        remove_folder(folder)  # what an earlier failure left is stale now
    return report


def _board_marker(item: pytest.Item) -> dict[str, Any]:
    marker = item.get_closest_marker("board")
    return dict(marker.kwargs) if marker else {}


def node_key(seed: int, node_id: int) -> bytes:
    """The 32-byte key a test node gets: fixed by seed and id, so runs are reproducible."""
    return hashlib.sha256(f"streetsense-hil:{seed}:{node_id}".encode()).digest()


# ---- fixtures ---------------------------------------------------------------------------

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
    wanted = _board_marker(request.node)
    kind = wanted.get("kind", "air-quality")
    if kind not in NODE_KINDS:
        raise pytest.UsageError(f"board marker: kind must be one of {NODE_KINDS}")
    node_id = int(wanted.get("node_id", 42))
    fast = FAST_AIR_SETTINGS if kind == "air-quality" else FAST_SETTINGS
    settings = {**fast, **wanted.get("settings", {})}
    resource = hil_options.board
    if isinstance(resource, RemoteBench):
        from .remote import remote_board

        async with remote_board(resource, kind=kind, settings=settings,
                                artefacts=artefacts) as remote:
            yield remote
    elif isinstance(resource, SerialBoard):
        from .rig.serial_board import serial_board

        with serial_board(resource, settings=settings, artefacts=artefacts,
                          seed=hil_options.seed) as board:
            yield board
    else:
        from .rig.emulated import emulated_board

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
        from .remote import remote_gateway

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
