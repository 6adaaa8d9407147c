"""benchmarks/gateway_bench.py --quick runs and prints its four measurements (no rate asserted:
the machine is shared and noisy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gateway_bench.py"


def test_pipeline_bench_quick_prints_ratio_latency_footprint_and_flood() -> None:
    """The quick benchmark exits 0 with the rate ratio, p50/p99 latency, RSS/CPU and the
    stranger-flood ratio lines."""
    run = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^a\. .* ratio \d+\.\d\d ", run.stdout, re.M), run.stdout
    assert re.search(r"^b\. .* p50 \d+\.\d ms, p99 \d+\.\d ms", run.stdout, re.M), run.stdout
    assert re.search(r"^c\. .* RSS \d+\.\d MB .* CPU \d+\.\d\d %", run.stdout, re.M), run.stdout
    assert re.search(r"^d\. .* ratio \d+\.\d\d ", run.stdout, re.M), run.stdout
    assert re.search(r"^e\. .* \(\d+ lost, .* CPU \d+\.\d % of a core", run.stdout, re.M), \
        run.stdout
    assert re.search(r"^f\. .* saturated \d+\.\d{3}, 200 frames/s \d+\.\d{3}, ", run.stdout,
                     re.M), run.stdout
