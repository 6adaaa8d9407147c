"""The local cache of MicroPython images for ``flash``, each checked against its SHA-256.

``~/.cache/streetsense/images/`` (or ``$XDG_CACHE_HOME/streetsense/images/``) holds the
image files and ``manifest.json``: ``{"current": "<file>", "images": {"<file>": {"sha256":
"<hex>", "source": "<where it came from>"}}}``. An image given to ``flash --image`` is
checked (against ``--sha256`` when given), copied in and becomes the current one, so a
technician without network at the pole flashes the same, verified image every time.
A cached file whose SHA-256 no longer matches the manifest is refused, never flashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

__all__ = ["ESP_IMAGE_MAGIC", "CachedImage", "ImageCache", "ImageError", "check_esp_image",
           "default_cache_dir", "sha256_of", "verify_image"]

ESP_IMAGE_MAGIC = 0xE9  # first byte of an ESP32 bootloader/app image (esptool's ESPLoader)


class ImageError(click.ClickException):
    """A firmware image is missing, is not an ESP32 image, or fails its SHA-256 check."""


@dataclass(frozen=True)
class CachedImage:
    path: Path
    sha256: str


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streetsense" / "images"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def check_esp_image(path: Path) -> None:
    """Refuse a file that cannot be an ESP32 image (wrong file picked, HTML error page)."""
    if not path.is_file():
        raise ImageError(f"firmware image {path} does not exist.")
    with path.open("rb") as stream:
        first = stream.read(1)
    if first != bytes([ESP_IMAGE_MAGIC]):
        raise ImageError(f"{path} is not an ESP32 firmware image (it does not start with "
                         f"0x{ESP_IMAGE_MAGIC:02X}): download the ESP32_GENERIC .bin "
                         f"from micropython.org/download/ESP32_GENERIC/.")


def verify_image(source: Path, *, expected_sha256: str | None = None) -> CachedImage:
    """``source`` as an image after the ESP32 check and, if given, the SHA-256 check."""
    check_esp_image(source)
    actual = sha256_of(source)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ImageError(f"{source} has SHA-256 {actual}, not the {expected_sha256} you "
                         f"gave: the download is damaged or is another file. Download it "
                         f"again.")
    return CachedImage(source, actual)


class ImageCache:
    """The image files and their manifest in one directory."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()
        self.manifest_path = self.root / "manifest.json"

    def _manifest(self) -> tuple[str | None, dict[str, dict[str, str]]]:
        """(the current image's file name, file name -> {"sha256", "source"})."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None, {}
        except (OSError, ValueError) as exc:
            raise ImageError(f"the image manifest {self.manifest_path} is unreadable ({exc}):"
                             f" add the image again with --image FILE.") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), dict):
            raise ImageError(f"the image manifest {self.manifest_path} is not a StreetSense "
                             f"manifest: add the image again with --image FILE.")
        return manifest.get("current"), manifest["images"]

    def current(self) -> CachedImage:
        """The current cached image, after checking its SHA-256 against the manifest."""
        name, images = self._manifest()
        if name is None or name not in images:
            raise ImageError(f"no MicroPython image in the cache {self.root}: give one with "
                             f"--image FILE (it is then cached for next time).")
        path = self.root / name
        expected = images[name]["sha256"]
        if not path.is_file():
            raise ImageError(f"the cached image {path} is missing: add it again with "
                             f"--image FILE.")
        actual = sha256_of(path)
        if actual != expected:
            raise ImageError(f"the cached image {path} has SHA-256 {actual}, but the manifest "
                             f"records {expected}: the file is damaged or was replaced. Do not "
                             f"flash it; add a good copy with --image FILE.")
        return CachedImage(path, actual)

    def add(self, source: Path, *, expected_sha256: str | None = None) -> CachedImage:
        """Check ``source``, copy it into the cache and make it the current image."""
        actual = verify_image(source, expected_sha256=expected_sha256).sha256
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / source.name
        if source.resolve() != target.resolve():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
            os.close(fd)
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        _, images = self._manifest()
        images[target.name] = {"sha256": actual, "source": str(source.resolve())}
        manifest = {"current": target.name, "images": images}
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".manifest-")
        with os.fdopen(fd, "w") as stream:
            json.dump(manifest, stream, indent=2, sort_keys=True)
        os.replace(tmp, self.manifest_path)
        return CachedImage(target, actual)
