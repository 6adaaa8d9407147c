"""The MicroPython unix port for host-side runs: the one way the rig, the tests and the
benchmarks find the interpreter, stage the protocol package and start MicroPython.

``command()`` is the argument list (``-X heapsize`` when a heap is given), ``environment()``
the process environment (``MICROPYPATH`` from ``path``, the emulated board's description in
``STREETSENSE_BOARD``); ``run()`` waits for the program, ``popen()`` and ``start()`` (asyncio)
start it. Without an interpreter they raise `MicroPythonMissing`, which says what to install.
CPython only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streetsense.node_sources import library_files

__all__ = ["MicroPythonMissing", "command", "environment", "find_micropython", "interpreter",
           "popen", "run", "stage_protocol", "start"]

MISSING = ("no MicroPython interpreter: install it with pip install 'streetsense[emulator]' "
           "(make venv does), or set MICROPYTHON")

Arg = str | Path


class MicroPythonMissing(RuntimeError):
    """No MicroPython interpreter was found; the message says how to get one."""


def find_micropython() -> str | None:
    """``$MICROPYTHON``, else ``micropython`` next to this Python, else on PATH; None if none."""
    override = os.environ.get("MICROPYTHON")
    if override:
        return override
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


def interpreter() -> str:
    """The interpreter's path (see `find_micropython`); `MicroPythonMissing` if there is none."""
    found = find_micropython()
    if found is None:
        raise MicroPythonMissing(MISSING)
    return found


def stage_protocol(dest: Path) -> Path:
    """Lay out ``dest/streetsense/__init__.py`` and ``dest/streetsense/protocol/*.py``.

    ``dest`` is then a directory for MicroPython's sys.path; it is returned.
    """
    (dest / "streetsense" / "protocol").mkdir(parents=True)
    for source, target in library_files():
        shutil.copy(source, dest / target)
    return dest


def command(*args: Arg, heap: str | None = None, exe: str | None = None) -> list[str]:
    """MicroPython's argument list: a script and its arguments, or ``"-c", code``."""
    options = ["-X", f"heapsize={heap}"] if heap else []
    return [exe or interpreter(), *options, *map(str, args)]


def environment(*, path: Sequence[Arg] = (), board: Arg | None = None,
                env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``env`` over it, ``MICROPYPATH`` = ``path`` then the
    frozen modules (when given), ``STREETSENSE_BOARD`` = ``board`` (when given)."""
    merged = dict(os.environ, **(env or {}))
    if path:
        merged["MICROPYPATH"] = ":".join([*map(str, path), ".frozen"])
    if board is not None:
        merged["STREETSENSE_BOARD"] = str(board)
    return merged


def run(*args: Arg, heap: str | None = None, path: Sequence[Arg] = (),
        board: Arg | None = None, env: Mapping[str, str] | None = None,
        timeout: float = 60.0, check: bool = False, cwd: Arg | None = None,
        exe: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run MicroPython to its end; its output as text in ``stdout``/``stderr``."""
    return subprocess.run(command(*args, heap=heap, exe=exe),
                          env=environment(path=path, board=board, env=env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=check)


def popen(*args: Arg, heap: str | None = None, path: Sequence[Arg] = (),
          board: Arg | None = None, env: Mapping[str, str] | None = None,
          exe: str | None = None, **options: Any) -> subprocess.Popen[Any]:
    """Start MicroPython as a `subprocess.Popen` (``options`` as Popen's: pipes, cwd...)."""
    return subprocess.Popen(command(*args, heap=heap, exe=exe),
                            env=environment(path=path, board=board, env=env), **options)


async def start(*args: Arg, heap: str | None = None, path: Sequence[Arg] = (),
                board: Arg | None = None, env: Mapping[str, str] | None = None,
                **options: Any) -> asyncio.subprocess.Process:
    """Start MicroPython on the running loop (``options`` as create_subprocess_exec's)."""
    return await asyncio.create_subprocess_exec(
        *command(*args, heap=heap), env=environment(path=path, board=board, env=env), **options)
