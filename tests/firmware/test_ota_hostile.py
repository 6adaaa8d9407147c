"""Hostile updates: manifests the node refuses (under MicroPython), bundles the gateway and
the tools refuse, and what `streetsense bundle` writes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from streetsense.gateway.bundles import BundleError, BundleStore, parse_bundle
from streetsense.hil.micropython import find_micropython, stage_protocol
from streetsense.node_sources import firmware_dir
from streetsense.tools.bundle import build_bundle, bundle
from tests.firmware.ota_harness import firmware_copy

MANIFESTS = [  # (manifest, image size, manifest size, what the node says)
    ({"version": "1", "files": [["../boot.py", 5, "00"]]}, 15, 10, "bad path in manifest"),
    ({"version": "1", "files": [["/main.py", 5, "00"]]}, 15, 10, "bad path in manifest"),
    ({"version": "1", "files": [["ssnode/a b.py", 5, "00"]]}, 15, 10, "bad path in manifest"),
    ({"version": "1", "files": [["ssnode/a.mpy", -1, "00"]]}, 9, 10, "bad size or sha256"),
    ({"version": "1", "files": [["ssnode/a.mpy", 5, "00"]]}, 99, 10, "add up to 15 bytes"),
    ({"version": "1", "files": "ssnode/a.mpy"}, 15, 10, "not {version, files}"),
    ({"version": "1", "files": [["ssnode/a.mpy", 5]]}, 15, 10, "not [path, size, sha256]"),
    ({"version": "1", "files": [["ssnode/a.mpy", 5, "00"]]}, 15, 10, None),
]


@pytest.mark.micropython
def test_node_refuses_hostile_manifests(tmp_path: Path) -> None:
    """Paths outside the slot or with odd characters, negative sizes, sizes that do not add
    up, wrong shapes: each gets its reason (firmware/ssnode/ota.py manifest_error)."""
    lib = stage_protocol(tmp_path / "lib")
    cases = json.dumps([[m, size, msize] for m, size, msize, _ in MANIFESTS])
    script = ("import json\nfrom ssnode.ota import manifest_error\n"
              f"for m, size, msize in json.loads({cases!r}):\n"
              "    print(json.dumps(manifest_error(m, size, msize)))\n")
    shim = Path(__file__).resolve().parents[2] / "hil_tests" / "board"
    run = subprocess.run([find_micropython() or "micropython", "-c", script],
                         env={"MICROPYPATH": f"{firmware_dir()}:{lib}:{shim}:.frozen"},
                         capture_output=True, text=True, timeout=30, check=False,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    answers = [json.loads(line) for line in run.stdout.splitlines()]
    for (_, _, _, expected), answer in zip(MANIFESTS, answers, strict=True):
        if expected is None:
            assert answer is None
        else:
            assert expected in answer, (expected, answer)


def test_gateway_refuses_damaged_and_misnamed_bundles(tmp_path: Path) -> None:
    """A bundle whose bytes do not hash to its topic, one with a file changed, one cut
    short, one with bytes appended, and plain junk: refused with the reason, nothing kept."""
    image = build_bundle(firmware_copy(tmp_path, "0.2.0"), compile_mpy=False)
    store = BundleStore(tmp_path / "bundles")
    sha = hashlib.sha256(image).hexdigest()
    assert "do not hash" in (store.put("ab" * 32, image) or "")
    changed = bytearray(image)
    changed[-10] ^= 1
    for damaged, why in ((bytes(changed), "does not match its SHA-256"),
                         (image[:-1], "does not match its SHA-256"),
                         (image + b"x", "bytes after the last file"),
                         (b"<html>404</html>", "not a StreetSense bundle")):
        assert why in (store.put(hashlib.sha256(damaged).hexdigest(), damaged) or ""), why
        with pytest.raises(BundleError, match=why):
            parse_bundle(damaged)
    assert not (tmp_path / "bundles").exists() or not list((tmp_path / "bundles").iterdir())
    assert store.put(sha, image) is None
    kept = BundleStore(tmp_path / "bundles").get(sha)  # a restarted gateway reads it back
    assert kept is not None and kept.version == "0.2.0"


def test_bundle_command_writes_a_checked_bundle(tmp_path: Path) -> None:
    """`streetsense bundle --firmware DIR -o FILE`: .mpy files and the protocol package, not
    the boot files; the manifest's sizes and hashes hold; the version is the firmware's."""
    out = tmp_path / "fw.bundle"
    result = CliRunner().invoke(bundle, ["--firmware", str(firmware_copy(tmp_path, "0.4.1")),
                                         "-o", str(out)])
    assert result.exit_code == 0, result.output
    built = parse_bundle(out.read_bytes())
    names = [name for name, _, _ in built.files]
    assert built.version == "0.4.1" and "firmware 0.4.1" in result.output
    assert "ssnode/ota.mpy" in names and "streetsense/protocol/frame.mpy" in names
    assert not any(n.endswith(("boot.mpy", "main.mpy", "ssboot.mpy")) for n in names)
    assert built.sha256.hex() in result.output
    refused = CliRunner().invoke(bundle, ["--firmware", str(tmp_path), "-o", str(out)])
    assert refused.exit_code == 1 and "sets no FIRMWARE_VERSION" in refused.output
