"""The sources StreetSense puts on a node, found wherever the package is installed.

The node firmware (package data of ``streetsense.firmware``: boot.py, main.py, ssnode/) and
the protocol package as a node's /lib holds it (``streetsense/__init__.py`` and
``streetsense/protocol/*.py``) ship inside the distribution and are found through
`importlib.resources`, so ``flash``, ``emulate`` and ``demo`` work from an installed wheel as
from a checkout (an editable install maps the same names to the repository's folders).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["firmware_dir", "library_files", "package_dir"]


def package_dir(package: str) -> Path:
    """The folder of ``package``; StreetSense is installed as files (a wheel, or editable)."""
    folder = files(package)
    if not isinstance(folder, Path):  # e.g. imported from a zip archive
        raise RuntimeError(f"{package} is not installed as files on disk ({folder}): "
                           f"install StreetSense with pip")
    return folder


def firmware_dir() -> Path:
    """The node firmware: boot.py, main.py and the ssnode package."""
    return package_dir("streetsense.firmware")


def library_files() -> list[tuple[Path, str]]:
    """(source file, path under the node's /lib) of the protocol package and its parent."""
    sources = [(package_dir("streetsense") / "__init__.py", "streetsense/__init__.py")]
    sources += [(source, f"streetsense/protocol/{source.name}")
                for source in sorted(package_dir("streetsense.protocol").glob("*.py"))]
    return sources
