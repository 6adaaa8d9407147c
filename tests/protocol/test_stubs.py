"""The host-side type stubs of protocol/ (*.pyi) say what the device code has, no more, no less."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_stubs_match_the_runtime(tmp_path: Path) -> None:
    """mypy's stubtest finds every stubbed name at run time, with the same parameters, and
    every public run-time name in a stub."""
    package = tmp_path / "streetsense"
    (package / "protocol").mkdir(parents=True)
    shutil.copy(REPO / "streetsense" / "__init__.py", package)
    for source in [*(REPO / "protocol").glob("*.py"), *(REPO / "protocol").glob("*.pyi")]:
        shutil.copy(source, package / "protocol")
    assert len(list((package / "protocol").glob("*.pyi"))) == len(
        list((package / "protocol").glob("*.py")))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "streetsense.protocol"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
