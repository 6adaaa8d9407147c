"""The ``gateway`` command: ``streetsense gateway run --config FILE``, ``check-config``,
``operator-key FILE`` (the site's key that commands are signed with), and ``backup DEST`` /
``restore SOURCE`` of the journal and the registry (`streetsense.gateway.backup`).

``run`` stops on SIGTERM/SIGINT (unconditionally: a deadline, and a second signal exits at
once) and reloads on SIGHUP (`streetsense.gateway.reload`; systemd's ``systemctl reload``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import click

from streetsense.gateway.config import ConfigError, GatewayConfig, load_config, review_config
from streetsense.gateway.journal import JournalError
from streetsense.gateway.registry import RegistryError
from streetsense.gateway.runlock import GatewayRunning

if TYPE_CHECKING:
    from streetsense.gateway.notify import Notifier
    from streetsense.gateway.service import Gateway

__all__ = ["gateway"]

log = logging.getLogger("streetsense.gateway")

# A stop that takes longer than this ends with an immediate exit, as does a second signal:
# systemd's stop (and an operator's Ctrl-C) must never hang. Committed rows are on disk
# (WAL, synchronous=FULL), so they stay for the next start either way.
STOP_DEADLINE_S = 4.5

_CONFIG = click.option("--config", "config_path", required=True,
                       envvar="STREETSENSE_GATEWAY_CONFIG",
                       type=click.Path(dir_okay=False, path_type=Path),
                       help="Gateway TOML config (see gateway/example.toml).")


class _JournaldFormatter(logging.Formatter):
    """``<priority>logger: message`` lines: journald reads the syslog priority prefix."""

    PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
        logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        priority = self.PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if os.environ.get("JOURNAL_STREAM"):
        # Under systemd: journald stamps the time; the priority prefix sets the level.
        handler.setFormatter(_JournaldFormatter("%(name)s: %(message)s"))
    else:
        formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: "
                                      "%(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


@click.group()
def gateway() -> None:
    """Run the gateway, check its config, or make the operators' key."""


@gateway.command()
@_CONFIG
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="The log level (default: [log] level of the config, else INFO).")
def run(config_path: Path, log_level: str | None) -> None:
    """Run the gateway until SIGTERM or Ctrl-C (SIGHUP reloads): serial nodes in, MQTT out."""
    config = _loaded(config_path)
    _setup_logging(log_level or config.log.level or "INFO")
    try:
        status = asyncio.run(_serve(config))
    except RegistryError as exc:
        raise click.ClickException(f"{exc}\nFix the node registry, then run again.") from None
    except (GatewayRunning, JournalError) as exc:
        raise click.ClickException(str(exc)) from None
    except ssl.SSLError as exc:  # a TLS file changed after the config was checked
        raise click.ClickException(
            f"the TLS files of [mqtt] cannot be used ({exc.reason}): fix them, check with "
            f"streetsense gateway check-config --config {config_path}, and run again") from None
    if status != 0:
        raise SystemExit(1)


async def _serve(config: GatewayConfig) -> int:
    from streetsense.gateway.notify import Notifier
    from streetsense.gateway.service import Gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    notifier = Notifier()
    gw = Gateway(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop, gw)
    loop.add_signal_handler(signal.SIGHUP, _on_hangup, stop, gw, notifier)
    async with gw.running():
        notifier.ready(f"gateway {config.gateway.id} serving {len(config.serial)} serial ports")
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(gw.wait()),
                   asyncio.create_task(notifier.watchdog_loop(lambda: not gw.failed.is_set()))]
        await asyncio.wait(waiters[:2], return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        notifier.stopping()
    notifier.close()
    if gw.failed.is_set():
        log.error("gateway stopped after a task crashed (see above)")
        return 1
    return 0


def _on_signal(signum: int, stop: asyncio.Event, gw: Gateway) -> None:
    name = signal.Signals(signum).name
    if stop.is_set():
        log.error("%s again while %s: exiting now; committed rows stay in the journal",
                  name, gw.stop_step or "stopping")
        _exit_now(128 + signum)
    log.warning("%s received: stopping (at most %.1f s; committed rows stay in the journal)",
                name, STOP_DEADLINE_S)
    stop.set()
    deadline = threading.Timer(STOP_DEADLINE_S, _stop_overdue, (gw,))
    deadline.daemon = True
    deadline.start()


def _on_hangup(stop: asyncio.Event, gw: Gateway, notifier: Notifier) -> None:
    from streetsense.gateway.reload import reload_config

    if stop.is_set():
        log.warning("SIGHUP ignored: the gateway is stopping")
        return
    assert gw.config.source is not None  # load_config sets it
    notifier.reloading()
    reload_config(gw, gw.config.source)
    notifier.ready()


def _stop_overdue(gw: Gateway) -> None:
    log.error("stop took more than %.1f s (still %s): exiting now; committed rows stay in the "
              "journal", STOP_DEADLINE_S, gw.stop_step or "stopping")
    _exit_now(1)


def _exit_now(status: int) -> None:
    """Exit at once, from any thread, whatever the event loop and its threads are doing."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(status)


@gateway.command("operator-key")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def operator_key(key_file: Path) -> None:
    """Make the site's operator key in KEY_FILE (commands are signed with it)."""
    from streetsense.gateway.command_auth import make_operator_key

    try:
        make_operator_key(key_file)
    except FileExistsError:
        raise click.ClickException(f"{key_file} exists: a new key would lock out every "
                                   f"operator who has the old one; remove it first if that "
                                   f"is what you want") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {key_file}: {exc.strerror}") from None
    click.echo(f"operator key written to {key_file} (mode 0640). Set [commands] "
               f"operator_key_file to it, and give a copy to each operator over a safe "
               f"channel (their 'streetsense command --key-file' signs with it).")


def _loaded(config_path: Path) -> GatewayConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}\nFix these first (streetsense gateway check-config "
                                   f"--config {config_path}).") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {config_path}: {exc.strerror}") from None


@gateway.command()
@_CONFIG
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
def backup(config_path: Path, dest: Path) -> None:
    """Back up the journal and the registry into the new folder DEST (while it runs, too)."""
    from streetsense.gateway.backup import BackupError, make_backup

    try:
        manifest = make_backup(_loaded(config_path), dest)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up to {dest}: journal (schema version {manifest.schema_version}, "
               f"{manifest.undelivered} undelivered messages) and registry ({manifest.nodes} "
               f"nodes). It holds the nodes' keys: keep it as safe as the registry.")


@gateway.command()
@_CONFIG
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
def restore(config_path: Path, source: Path) -> None:
    """Put the backup in SOURCE in place of the journal and registry (gateway stopped)."""
    from streetsense.gateway.backup import BackupError, restore_backup

    try:
        manifest, kept = restore_backup(_loaded(config_path), source)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored the backup of gateway {manifest.gateway} made {manifest.made_at} "
               f"({manifest.undelivered} undelivered messages, {manifest.nodes} nodes); "
               f"kept the replaced files as {', '.join(map(str, kept)) or 'nothing (none)'}. "
               f"Start the gateway: it publishes the undelivered messages.")


@gateway.command("check-config")
@_CONFIG
def check_config_command(config_path: Path) -> None:
    """Check a config file: every problem with its key and line; exit 1 if there are any.
    Warnings (a serial port that does not exist now) are printed too but pass."""
    problems, warnings = review_config(config_path)
    for warning in warnings:
        click.echo(f"{config_path}: warning: {warning}", err=True)
    if not problems:
        click.echo(f"{config_path}: OK")
        return
    for problem in problems:
        click.echo(f"{config_path}: {problem}", err=True)
    raise click.ClickException(f"{len(problems)} problem(s) in {config_path}")


if __name__ == "__main__":
    gateway()
