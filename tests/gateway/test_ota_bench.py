"""benchmarks/ota_bench.py: it runs and prints the update times and their ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.micropython


def test_quick_ota_bench_prints_update_times() -> None:
    """`ota_bench.py --quick` exits 0 and prints one node's time at 115,200 baud and over
    BLE, a street's, and the ratios (no time is asserted: the machine is shared)."""
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ota_bench.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert re.search(r"^one node, serial at 115200 baud: \d+\.\d s", out, re.M), out
    assert re.search(r"^one node, BLE at MTU 23 .*: \d+\.\d s$", out, re.M), out
    assert re.search(r"^a street of 3 nodes at 115200 baud, one gateway: \d+\.\d s$", out,
                     re.M), out
    for ratio in ("115200/unpaced", "BLE/serial", "street/one node"):
        assert re.search(rf"^ratio {ratio}: \d+\.\d\d$", out, re.M), out
