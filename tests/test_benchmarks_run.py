"""benchmarks/protocol_bench.py: it runs, reports its ratios, and the device allocation holds.

Behaviour checks only: no rate is asserted (the machine is shared and noisy). The
MicroPython allocation is a byte count, deterministic for a given interpreter build.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks" / "protocol_bench.py"
ALLOC_TARGET = 2048


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def test_quick_bench_exits_0_and_prints_ratios(quick_run: subprocess.CompletedProcess[str]) -> None:
    """`protocol_bench.py --quick` exits 0 and prints the receive/bare and wire/JSON ratios."""
    assert quick_run.returncode == 0, quick_run.stdout + quick_run.stderr
    out = quick_run.stdout
    assert re.search(r"^ratio receive/bare: \d+\.\d+ ", out, re.M), out
    assert re.search(r"^ratio wire/JSON: \d+\.\d+% ", out, re.M), out
    assert "summary" in out


def test_micropython_encode_sign_allocates_at_most_2048_bytes(
    quick_run: subprocess.CompletedProcess[str],
) -> None:
    """Under MicroPython one signed Frame.encode of the air-quality frame allocates <= 2048 B."""
    assert quick_run.returncode == 0, quick_run.stdout + quick_run.stderr
    assert "MicroPython encode+sign alloc: skipped" not in quick_run.stdout, "no MicroPython"
    match = re.search(r"^MicroPython encode\+sign alloc: (\d+) bytes", quick_run.stdout, re.M)
    assert match, quick_run.stdout
    assert int(match.group(1)) <= ALLOC_TARGET
