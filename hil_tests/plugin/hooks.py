"""The plugin's hooks: options and markers registered, HIL tests marked and their ``needs_*``
markers checked at collection (a test needing what the rig lacks is skipped with the reason,
before anything starts), soak variants deselected, artefacts written for failed tests."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from ..artefacts import Artefacts, folder_name, remove_folder
from ..rig.resources import CAPABILITIES, NODE_KINDS, RemoteBench, SerialBoard
from .options import OPTIONS_KEY, HilOptions, add_options, read_options

__all__ = [
    "ARTEFACTS_KEY",
    "FIXTURE_CAPABILITY",
    "HIL_FIXTURES",
    "board_marker",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
]

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


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


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
    config.stash[OPTIONS_KEY] = read_options(config)


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


def _check_requirements(item: pytest.Item, options: HilOptions) -> None:
    """Mark HIL tests, check their needs_* markers, skip what the rig cannot do.

    The plugin's fixture names are its own in this suite (no conftest redefines one), so the
    names a test requests, directly or through other fixtures, tell which it uses."""
    fixtures = set(getattr(item, "fixturenames", ()))
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
    wanted = board_marker(item).get("kind", "air-quality")
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


def board_marker(item: pytest.Item) -> dict[str, Any]:
    """The keyword arguments of the test's ``board`` marker (none: {})."""
    marker = item.get_closest_marker("board")
    return dict(marker.kwargs) if marker else {}
