"""The MicroPython unix port for host-side runs: find the interpreter, stage the protocol package.

Shared by the protocol tests (tests/protocol/conftest.py) and the protocol benchmark
(benchmarks/protocol_bench.py). CPython only.
"""

import os
import shutil
import sys
from pathlib import Path

from streetsense.node_sources import library_files


def find_micropython() -> str | None:
    """``$MICROPYTHON``, else ``micropython`` next to this Python, else on PATH; None if none."""
    override = os.environ.get("MICROPYTHON")
    if override:
        return override
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


def stage_protocol(dest: Path) -> Path:
    """Lay out ``dest/streetsense/__init__.py`` and ``dest/streetsense/protocol/*.py``.

    ``dest`` is then a directory for MicroPython's sys.path; it is returned.
    """
    (dest / "streetsense" / "protocol").mkdir(parents=True)
    for source, target in library_files():
        shutil.copy(source, dest / target)
    return dest
