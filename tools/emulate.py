"""The ``emulate`` command: one emulated node (real firmware, emulated board and street)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from streetsense.gateway.registry import NodeInfo, Registry, RegistryError, append_node
from streetsense.hil.environment import Environment
from streetsense.hil.node import EmulatedNode, NodeError
from streetsense.hil.scene import StreetScene
from streetsense.hil.street import LAYOUTS, layout_for
from streetsense.hil.street_scenarios import SCENARIOS

KINDS = ("air-quality", "traffic")


def register(registry: Path, node_id: int, name: str, kind: str, key: bytes) -> str:
    """Put the node into the gateway's registry file; what was done, as a line to print.

    The key goes into the file only (mode 0600 when the file is new), never to the screen.
    """
    try:
        known = Registry.load(registry).lookup(node_id) if registry.exists() else None
    except RegistryError as exc:
        raise click.ClickException(f"{registry} has problems: {exc}") from None
    if known is not None:
        if known.key != key:
            raise click.ClickException(
                f"{registry} already has node {node_id} ({known.name}) with another key: "
                "remove that entry, or use another --node-id")
        return f"# node {node_id} ({known.name}) is registered in {registry}"
    new_file = not registry.exists()
    try:
        append_node(registry, NodeInfo(node_id, name, kind, key, location="emulated"))
    except RegistryError as exc:
        raise click.ClickException(f"could not register node {node_id} in {registry}: {exc}"
                                   ) from None
    except OSError as exc:
        raise click.ClickException(f"could not write {registry} ({exc.strerror}): choose a "
                                   "--registry file in a folder you may write") from None
    if new_file:
        registry.chmod(0o600)
    return f"# node {node_id} ({name}) registered in {registry}"


def _stored_config(flash_dir: Path) -> dict[str, Any]:
    path = flash_dir / "config.json"
    if not path.exists():
        return {}
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def _identity(flash_dir: Path, node_id: int | None, kind: str) -> tuple[int | None, bytes | None]:
    """(node_id, key) to provision the flash with, or (None, None) to keep what it holds."""
    stored = _stored_config(flash_dir)
    stored_id = stored.get("node_id", 0)
    if stored_id and stored.get("key"):
        if node_id is not None and node_id != stored_id:
            raise click.UsageError(
                f"{flash_dir} holds node {stored_id}: use another --flash-dir for node {node_id}"
                " (or omit --node-id)"
            )
        if stored.get("kind", kind) != kind:
            raise click.UsageError(f"{flash_dir} holds a {stored['kind']} node, not {kind}")
        return None, None
    if node_id is None:
        return None, None
    return node_id, os.urandom(32)  # a fresh key: never a fixed one


@click.command()
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Node kind.")
@click.option(
    "--node-id", type=click.IntRange(1, 2**32 - 1), default=None,
    help="Provision the node with this id and a fresh random key (if the flash is not "
         "provisioned yet). Without it a new flash starts in factory state.",
)  # fmt: skip
@click.option(
    "--flash-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="The node's flash (kept: config, boot counter, queued frames). Default: a "
         "temporary one, removed at exit.",
)  # fmt: skip
@click.option("--name", default=None, help="Node name for the registry entry [node-<id>].")
@click.option(
    "--registry", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The gateway's registry file: a provisioned node is registered there with its key "
         "(the key is never printed).",
)  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the street scene.")
@click.option(
    "--speedup", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
    help="Scene seconds per real second: at 60 a street day passes in 24 minutes.",
)  # fmt: skip
@click.option(
    "--scenario", type=click.Choice(list(SCENARIOS)), default=None,
    help="Traffic nodes: run this street scenario (vehicles over the detectors, see "
         "docs/sensors.md) instead of the day's traffic.",
)  # fmt: skip
@click.option(
    "--layout", type=click.Choice(list(LAYOUTS)), default=None,
    help="Traffic nodes: the detector layout, set on the node too [pair; a provisioned "
         "flash keeps its own unless given].",
)  # fmt: skip
def emulate(
    kind: str, node_id: int | None, flash_dir: Path | None, name: str | None,
    registry: Path | None, seed: int, speedup: float, scenario: str | None, layout: str | None,
) -> None:  # fmt: skip
    """Run one emulated node on a pseudo-terminal, in an emulated Hanoi street (a seeded day of
    air and traffic, or with --scenario a street scenario); Ctrl-C stops it.

    Point a gateway (``[[serial]] path``) or ``streetsense monitor`` at the printed port.
    """
    if kind != "traffic" and (scenario or layout):
        raise click.UsageError("--scenario and --layout are for --kind traffic")
    temporary = flash_dir is None
    flash = Path(tempfile.mkdtemp(prefix="ssnode-flash-")) if flash_dir is None else flash_dir
    flash.mkdir(parents=True, exist_ok=True)
    try:
        _run(kind, node_id, flash, name, registry,
             StreetScene(seed, speedup=speedup, scenario=scenario), layout)
    except NodeError as exc:  # no interpreter, or the firmware did not do what was awaited
        raise click.ClickException(str(exc)) from None
    finally:
        if temporary:
            shutil.rmtree(flash)


def _run(
    kind: str, node_id: int | None, flash: Path, name: str | None, registry: Path | None,
    scene: StreetScene, layout_name: str | None,
) -> None:  # fmt: skip
    new_id, key = _identity(flash, node_id, kind)
    stored = _stored_config(flash)
    layout = LAYOUTS[layout_name] if layout_name else layout_for(stored)
    settings = layout.settings() if kind == "traffic" else {}
    environment = Environment(kind, layout=layout)
    scene.start(environment)
    try:
        node = EmulatedNode(
            kind, flash_dir=flash, environment=environment, node_id=new_id, key=key,
            seed=scene.seed, echo=lambda line: click.echo(f"node| {line}"),
            extra_config=settings,
        )  # fmt: skip
    except BaseException:
        scene.stop()
        environment.close()
        raise
    try:
        config = node.config
        if config.get("node_id"):
            node_name = name or f"node-{config['node_id']:04d}"
            if registry is None:
                click.echo(f"# node {config['node_id']} is provisioned; give --registry FILE "
                           "to register it with its key for a gateway")
            else:
                click.echo(register(registry, config["node_id"], node_name, kind,
                                    bytes.fromhex(config["key"])))
        else:
            click.echo("# factory state: provision it (streetsense provision) on the port below")
        click.echo(f"# flash: {flash}")
        click.echo(f"port: {node.port}")
        node.start()
        while node.wait(0.5) is None:
            pass
        raise click.ClickException(f"the firmware exited with status {node.exit_status}")
    except KeyboardInterrupt:
        click.echo("# stopped")
    finally:
        node.close()
        scene.stop()
        environment.close()
