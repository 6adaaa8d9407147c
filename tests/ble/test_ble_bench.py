"""benchmarks/ble_bench.py: it runs on the virtual radio and reports rates and overheads."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.micropython


def test_quick_ble_bench_reports_rates_and_overhead_per_mtu() -> None:
    """`ble_bench.py --quick` exits 0; 6 notifications per frame at MTU 23, 1 at MTU 247."""
    bench = REPO / "benchmarks" / "ble_bench.py"
    run = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True, text=True,
                         timeout=120, check=False, cwd=REPO)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for mtu in (23, 247):
        assert re.search(rf"^ratio node/ceiling MTU {mtu}: \d+\.\d\d$", out, re.M), out
        assert re.search(rf"^overhead per frame MTU {mtu}: \d+ bytes", out, re.M), out
    assert re.findall(r"notifications per frame: (\d+)", out) == ["6", "1"]
    assert "MTU 247: 19 bytes = COBS+delimiter 2 + ATT/L2CAP 7 + LL 1M PHY 10" in out
