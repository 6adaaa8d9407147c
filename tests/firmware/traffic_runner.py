"""Run a traffic spec through mp_traffic.py under MicroPython (the `run` fixture of
tests/firmware/conftest.py runs it under both interpreters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streetsense.hil import micropython
from streetsense.hil.node import FIRMWARE
from tests.firmware import mp_traffic

HERE = Path(__file__).resolve().parent


def run_micropython(spec: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    if micropython.find_micropython() is None:
        pytest.skip("no MicroPython interpreter (set MICROPYTHON)")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = micropython.run(HERE / "mp_traffic.py", path, FIRMWARE, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return mp_traffic.parse_output(proc.stdout)  # type: ignore[no-any-return]
