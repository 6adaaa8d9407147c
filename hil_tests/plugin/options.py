"""The plugin's options (group "hil", each with an environment fallback), read once into
`HilOptions` and kept in the config's stash; the scenario `Durations`.

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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ..rig.resources import BoardSpecError, EmulatedBoard, RemoteBench, SerialBoard, parse_board

__all__ = ["OPTIONS_KEY", "SOAK_DURATIONS", "Durations", "HilOptions", "add_options",
           "read_options", "short_and_soak"]

OPTIONS_KEY = pytest.StashKey["HilOptions"]()


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


def add_options(parser: pytest.Parser) -> None:
    """The "hil" option group."""
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


def read_options(config: pytest.Config) -> HilOptions:
    """The session's `HilOptions`; a bad option or an unreachable bench is a UsageError."""
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
        from ..remote import BenchError, fetch

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
