"""The ``streetsense`` command: one click group, one module per topic.

Topic modules are imported only when their command runs, so ``streetsense decode`` does not
pay for loading the gateway's MQTT and BLE stacks, and runs on the core install; a command
whose install extra is missing says which one to install (`extras`).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from .extras import missing_extra, needs_extra

# command name -> (module under streetsense.tools, attribute, the install extra it needs,
# one-line help for the listing)
COMMANDS: dict[str, tuple[str, str, str | None, str]] = {
    "bridge": ("bridge", "bridge", "gateway",
               "Sign and send one request to a gateway's bridge (rename, remove, log level)."),
    "bundle": ("bundle", "bundle", None,
               "Build a firmware update bundle (.mpy files, manifest, SHA-256) from firmware/."),
    "command": ("command", "command", "gateway",
                "Sign and send one command to a node, print its result."),
    "conformance": ("conformance", "conformance", None,
                    "Run the protocol's golden vectors through another implementation."),
    "decode": ("decode", "decode", None, "Decode wire bytes to JSON lines."),
    "demo": ("demo", "demo", "emulator",
             "Emulated nodes -> gateway -> MQTT broker, live readings on screen."),
    "emulate": ("emulate", "emulate", "emulator",
                "Run one emulated node (real firmware) on a PTY in an emulated street."),
    "flash": ("flash", "flash", "technician",
              "Flash MicroPython and the node firmware onto an ESP32."),
    "gateway": ("gateway", "gateway", "gateway",
                "Run the gateway (serial/BLE nodes in, MQTT out) or check its config."),
    "monitor": ("monitor", "monitor", "technician",
                "Live decoded frames from a serial port, tags checked."),
    "ota": ("ota", "ota", "gateway",
            "Roll a firmware bundle out to a site: canaries first, then the rest."),
    "provision": ("provision", "provision", "technician",
                  "Give a factory-state node its id, key and kind; register it."),
    "store": ("store", "store", "store",
              "Store the nodes' messages from the broker in PostgreSQL or SQLite, each once."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, extra, _ = COMMANDS[cmd_name]
        with needs_extra(cmd_name, extra):
            command = getattr(importlib.import_module(f"streetsense.tools.{module}"), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a module of its extra that it imports late and is missing ends in
        the sentence that names the extra."""
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            name = ctx.invoked_subcommand or ""
            problem = missing_extra(exc, name, COMMANDS[name][2]) if name in COMMANDS else None
            if problem is None:
                raise
            raise problem from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][3]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="streetsense")
def main() -> None:
    """StreetSense: edge stack for city street sensors."""


if __name__ == "__main__":
    main()
