"""The ``streetsense`` command: one click group, one module per topic.

Topic modules are imported only when their command runs, so ``streetsense decode`` does not
pay for loading the gateway's MQTT and BLE stacks.
"""

from __future__ import annotations

import importlib

import click

# command name -> (module under streetsense.tools, attribute, one-line help for the listing)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "conformance": ("conformance", "conformance",
                    "Run the protocol's golden vectors through another implementation."),
    "decode": ("decode", "decode", "Decode wire bytes to JSON lines."),
    "demo": ("demo", "demo", "Emulated nodes -> gateway -> MQTT broker, live readings on screen."),
    "emulate": ("emulate", "emulate",
                "Run one emulated node (real firmware) on a PTY in an emulated street."),
    "flash": ("flash", "flash", "Flash MicroPython and the node firmware onto an ESP32."),
    "gateway": ("gateway", "gateway",
                "Run the gateway (serial/BLE nodes in, MQTT out) or check its config."),
    "monitor": ("monitor", "monitor", "Live decoded frames from a serial port, tags checked."),
    "provision": ("provision", "provision",
                  "Give a factory-state node its id, key and kind; register it."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"streetsense.tools.{module}"), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="streetsense")
def main() -> None:
    """StreetSense: edge stack for city street sensors."""


if __name__ == "__main__":
    main()
