"""The bundle format of firmware updates (issue 22), read by the gateway and the tools.

A bundle file is the update's **image** as it goes over the link (SPEC.md §5.13): the
manifest, one line of JSON ``{"version", "files": [[path, size, sha256], ...]}`` ending in
a newline, then the files it lists, in its order. ``streetsense bundle`` (tools/bundle.py)
builds one; ``BundleStore`` keeps those a gateway received, each named by its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_BUNDLE", "Bundle", "BundleError", "BundleStore", "parse_bundle"]

MAX_BUNDLE = 1 << 22  # 4 MiB: the ESP32's whole flash; anything larger is not an update


class BundleError(ValueError):
    """Bytes that are not a whole, intact bundle: the message says what is wrong."""


@dataclass(frozen=True)
class Bundle:
    """An image, checked."""

    image: bytes
    manifest_size: int
    version: str
    files: list[tuple[str, int, str]]

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.image).digest()


def parse_bundle(image: bytes, path: str = "the bundle") -> Bundle:
    """A bundle's bytes, checked: the manifest line, the sizes and every file's SHA-256."""
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


class BundleStore:
    """Verified bundles in a folder, each named ``<sha256>.bundle``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, Bundle] = {}

    def put(self, sha_hex: str, payload: bytes) -> str | None:
        """Keep ``payload`` if it is the bundle ``sha_hex`` names; why not, otherwise."""
        sha_hex = sha_hex.lower()
        if hashlib.sha256(payload).hexdigest() != sha_hex:
            return "its bytes do not hash to the SHA-256 in its topic"
        try:
            bundle = parse_bundle(payload, f"bundle {sha_hex[:12]}")
        except BundleError as exc:
            return str(exc)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{sha_hex}.tmp"
        tmp.write_bytes(payload)
        tmp.replace(self.folder / f"{sha_hex}.bundle")
        self._cache[sha_hex] = bundle
        return None

    def get(self, sha_hex: str) -> Bundle | None:
        """The bundle, if this gateway has it intact."""
        sha_hex = sha_hex.lower()
        if sha_hex not in self._cache:
            path = self.folder / f"{sha_hex}.bundle"
            try:
                payload = path.read_bytes()
            except OSError:
                return None
            if hashlib.sha256(payload).hexdigest() != sha_hex:
                return None
            self._cache[sha_hex] = parse_bundle(payload, str(path))
        return self._cache[sha_hex]
