"""Resources: what a HIL board *is* (labgrid's split). Data only, no I/O.

A test session gets one board description from ``--hil-board`` / ``STREETSENSE_HIL_BOARD``
(`parse_board`) or, with ``--hil-gateway``, from a remote bench. The drivers in
`streetsense.hil.rig.drivers` turn a description into power, console, link and
environment control; what a description cannot offer is missing from its ``capabilities``,
and tests that need it are skipped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CAPABILITIES",
    "NODE_KINDS",
    "BoardSpecError",
    "EmulatedBoard",
    "RemoteBench",
    "SerialBoard",
    "parse_board",
]

NODE_KINDS = ("air-quality", "traffic")

# capability -> what it lets a test do (the reason printed when a rig lacks it)
CAPABILITIES: dict[str, str] = {
    "environment": "set the air and drive vehicles past the detectors",
    "power": "switch the board off and on",
    "console": "read the node's console",
    "link": "inject faults on the node's link (drop, bit errors, delay, unplug)",
    "broker_control": "stop, kill or black-hole the MQTT broker",
    "gateway_control": "kill and restart the gateway process",
    "injection": "write crafted frames into the gateway's serial input",
    "reconfigure": "choose the node's kind and settings per test",
}


class BoardSpecError(ValueError):
    """A ``--hil-board`` value that names no known board."""


@dataclass(frozen=True)
class EmulatedBoard:
    """The real firmware on the MicroPython unix port, sensors emulated in CPython."""

    kind: str = "air-quality"
    capabilities: frozenset[str] = frozenset(CAPABILITIES)

    def describe(self) -> str:
        """One line for the test report header."""
        return f"emulated {self.kind} board"


@dataclass(frozen=True)
class SerialBoard:
    """A real board on the bench: its link UART on ``port`` (through a USB adapter).

    ``kind``, ``node_id`` and ``key_hex`` say how it was provisioned. ``console_port`` is
    its USB console (UART0), if wired. ``power_pin`` is the GPIO (BCM) of a relay in its
    supply, if any.
    """

    port: str
    kind: str = "air-quality"
    node_id: int = 0
    key_hex: str = field(default="", repr=False)
    baud: int = 115200
    console_port: str | None = None
    power_pin: int | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """A bench board has no emulated environment; link faults are injected by a relay
        the rig puts between the port and the gateway."""
        caps = {"link", "broker_control", "gateway_control", "injection"}
        if self.console_port:
            caps.add("console")
        if self.power_pin is not None:
            caps.add("power")
        return frozenset(caps)

    def describe(self) -> str:
        """One line for the test report header."""
        return f"{self.kind} board on {self.port}"


@dataclass(frozen=True)
class RemoteBench:
    """A gateway elsewhere serving its boards (``[hil] enabled``) at ``url``."""

    url: str
    token: str
    board: str | None = None  # which of its boards; the first one when None

    def describe(self) -> str:
        """One line for the test report header."""
        return f"remote bench {self.url}" + (f" board {self.board}" if self.board else "")


def parse_board(spec: str) -> EmulatedBoard | SerialBoard:
    """A board from its option text.

    ``emulated`` (an air-quality board; tests choose the kind with the ``board`` marker),
    ``serial:/dev/ttyUSB0[,kind=traffic][,node_id=7][,key=HEX][,console=/dev/ttyUSB1]
    [,power_pin=17][,baud=115200]``.
    """
    scheme, _, rest = spec.partition(":")
    if scheme == "emulated":
        return EmulatedBoard()
    if scheme == "serial" and rest:
        port, *params = rest.split(",")
        options: dict[str, str] = {}
        for param in params:
            name, sep, value = param.partition("=")
            if not sep:
                raise BoardSpecError(f"board option {param!r} is not name=value")
            options[name.strip()] = value.strip()
        unknown = set(options) - {"kind", "node_id", "key", "console", "power_pin", "baud"}
        if unknown:
            raise BoardSpecError(f"unknown board option(s) {sorted(unknown)} in {spec!r}")
        kind = options.get("kind", "air-quality")
        if kind not in NODE_KINDS:
            raise BoardSpecError(f"kind must be one of {NODE_KINDS}, not {kind!r}")
        try:
            return SerialBoard(
                port=port, kind=kind, node_id=int(options.get("node_id", "0")),
                key_hex=options.get("key", ""), baud=int(options.get("baud", "115200")),
                console_port=options.get("console") or None,
                power_pin=int(options["power_pin"]) if "power_pin" in options else None)
        except ValueError as exc:
            raise BoardSpecError(f"bad number in {spec!r}: {exc}") from None
    raise BoardSpecError(f"--hil-board must be 'emulated' or 'serial:/dev/PORT[,...]', "
                         f"not {spec!r}")
