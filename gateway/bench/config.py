"""The ``[hil]`` section: serving this gateway's bench, and the relay lines of its boards.

Read by `streetsense.gateway.config` with the rest of the file (every problem is reported
with its key and line); `HilSection` is ``GatewayConfig.hil``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..tomlcheck import ABSENT, Table, is_int, listen_problem

__all__ = ["BENCH_LINES", "HilSection", "RelayLine", "read_hil_section", "token_problem"]

BENCH_LINES = ("power", "reset", "boot")


@dataclass(frozen=True)
class RelayLine:
    """A GPIO driving a bench relay: ``pin`` as gpiozero names it (17, "GPIO17", "BOARD11")."""

    pin: int | str
    active_high: bool = True


@dataclass(frozen=True)
class HilSection:
    """Serving this gateway's bench to remote HIL test sessions (off unless enabled).

    ``relays`` maps a serial port name to its board's lines ("power", "reset", "boot").
    """

    enabled: bool = False
    listen: str = "127.0.0.1:9190"
    token_file: Path | None = None
    relays: dict[str, dict[str, RelayLine]] = field(default_factory=dict)


def read_hil_section(table: Table, port_names: set[str]) -> HilSection:
    """The ``[hil]`` table; ``port_names`` are the ``[[serial]]`` names relays may refer to."""
    enabled = table.flag("enabled", HilSection.enabled)
    listen = table.text("listen", HilSection.listen) or ""
    if (problem := listen_problem(listen)) is not None:
        table.problem("listen", problem)
    token_file = table.path("token_file", must_exist=enabled)
    if enabled and token_file is None:
        table.problem(
            "token_file",
            "is required when enabled: remote bench access is authenticated with this shared token",
        )
    elif enabled and token_file is not None and token_file.is_file():
        problem = token_problem(token_file.read_text(errors="replace").strip())
        if problem:
            table.problem("token_file", problem)
    relays_table = table.table("relays")
    relays = {}
    for port in relays_table.data:
        if port not in port_names:
            relays_table.problem(port, "no [[serial]] port has this name")
        relays[port] = _relay_lines(relays_table.table(port))
    relays_table.done()
    table.done()
    return HilSection(enabled=enabled, listen=listen, token_file=token_file, relays=relays)


TOKEN_MIN = 16  # characters; `openssl rand -hex 16` makes 32


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot guard a bench (never quoting it), or None."""
    if len(token) >= TOKEN_MIN:
        return None
    what = "is empty" if not token else f"has only {len(token)} characters"
    return (f"the token {what}: a bench guard needs {TOKEN_MIN} at least (make one with "
            f"'openssl rand -hex 16')")


def _relay_lines(table: Table) -> dict[str, RelayLine]:
    lines = {}
    for name in BENCH_LINES:
        if name in table.data:
            line = table.table(name)
            pin = line.value(
                "pin",
                lambda v: is_int(v) or isinstance(v, str),
                'a GPIO number or name (17, "GPIO17")',
                required=True,
            )
            lines[name] = RelayLine(
                pin=0 if pin is ABSENT else pin, active_high=line.flag("active_high", True)
            )
            line.done()
    table.done()
    return lines
