"""Firmware updates on the emulated board (issue 22): the node's side of SPEC.md §5.13 and
the boot selector (firmware/ssboot.py), driven by a MiniGateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streetsense.hil.keys import KEY, NODE_ID
from streetsense.hil.mini_gateway import MiniGateway
from streetsense.protocol import messages as m
from tests.firmware.node_harness import hello, make_node, wait_until
from tests.firmware.ota_harness import Sender, make_bundle

pytestmark = pytest.mark.micropython


def pointer(node) -> dict:
    return json.loads((node.flash_dir / "slot.json").read_text())


def test_whole_update_switches_slot_and_confirms(tmp_path: Path) -> None:
    """A whole bundle: every chunk confirmed, verified, installed into app_a, a reset on
    trial, the new version in HELLO, confirmed once its HELLO is acknowledged. The node
    reports as usual while a transfer is under way."""
    bundle = make_bundle(tmp_path, "0.2.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"report_interval_s": 1}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        first = gw.wait(hello(1))
        sender = Sender(gw, bundle, request=7)
        start = sender.begin()
        assert start.body[2] == m.OTA_RECEIVING and start.body[3] == 0
        half = sender.send_from(0, stop_at=len(bundle.image) // 2)
        last = max(f.seq for f in gw.accepted if f.boot == 1)
        gw.wait(lambda f: f.type == m.DATA and f.seq > last)  # reporting goes on meanwhile
        done = sender.send_from(half.body[3])
        assert done.body[2] == m.OTA_INSTALLED and done.body[3] == len(bundle.image), done.body
        second = gw.wait(lambda f: f.type == m.HELLO and f.body[2] == "0.2.0", timeout=20)
        confirmed = sender.next_status()
        wait_until(lambda: not pointer(node)["trial"])
        slot = pointer(node)
    assert "ota" in first.body[7] and first.body[2] == "0.1.0"
    assert second.body[2] == "0.2.0"
    assert confirmed.body[2] == m.OTA_CONFIRMED and confirmed.body[4] == "0.2.0"
    assert slot["active"] == "app_a" and slot["previous"] == ""
    assert (node.flash_dir / "app_a" / "ssnode" / "node.mpy").is_file()
    assert not (node.flash_dir / "ota_stage").exists()


def test_power_cut_mid_transfer_resumes_from_flash(tmp_path: Path) -> None:
    """Power cut after a third of the image: the next OTA_BEGIN (a new request, the same
    image) answers the offset the flash holds, and the transfer goes on from there."""
    bundle = make_bundle(tmp_path, "0.2.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        sender = Sender(gw, bundle, request=8)
        sender.begin()
        cut = sender.send_from(0, stop_at=len(bundle.image) // 3)
        node.power_cycle()
        gw.wait(hello(2))
        again = Sender(gw, bundle, request=9)
        resumed = again.begin()
        assert resumed.body[2] == m.OTA_RECEIVING and resumed.body[1] == 9
        assert resumed.body[3] == cut.body[3] > 0
        done = again.send_from(resumed.body[3])
        gw.wait(hello(3), timeout=20)
    assert done.body[2] == m.OTA_INSTALLED


def test_corrupted_chunk_fails_verification_and_nothing_switches(tmp_path: Path) -> None:
    """A chunk whose bytes differ from the bundle (signed, so not line noise: a bad bundle or
    a bug) is written, then the SHA-256 check names the file; staging is dropped and the
    node keeps running its firmware."""
    bundle = make_bundle(tmp_path, "0.2.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        sender = Sender(gw, bundle, request=3)
        sender.begin()
        failed = sender.send_from(0, corrupt_at=bundle.manifest_size + 5000)
        assert failed.body[2] == m.OTA_FAILED, failed.body
        gw.send(m.COMMAND, {1: 1, 2: "echo"})
        gw.result(1)  # still running the old firmware, on the same boot
    assert "does not match" in failed.body[5]
    assert not (node.flash_dir / "ota_stage").exists()
    assert not (node.flash_dir / "slot.json").exists() or pointer(node)["active"] == ""
    assert node.boot_count == 1


def test_firmware_that_crashes_on_boot_rolls_back(tmp_path: Path) -> None:
    """A bundle whose app crashes at import: three trial boots, then ssboot runs the previous
    slot again, which tells the gateway why (OTA_STATUS rolled_back and a LOG)."""
    bundle = make_bundle(tmp_path, "0.3.0", crash=True)
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        sender = Sender(gw, bundle, request=4)
        sender.begin()
        assert sender.send_from(0).body[2] == m.OTA_INSTALLED
        back = gw.wait(lambda f: f.type == m.HELLO and f.boot > 1, timeout=30)
        rolled = gw.wait(lambda f: f.type == m.OTA_STATUS and f.body[2] == m.OTA_ROLLED_BACK)
        log = gw.wait(lambda f: f.type == m.LOG and "rolled back" in f.body[2])
        crashes = [line for line in node.console if "app in slot 'app_a' failed" in line]
    # The crashing app never got to count its boots: the boot after boot 1 that said HELLO.
    assert back.body[2] == "0.1.0" and back.boot == 2
    assert len(crashes) == 3  # ssboot.TRIAL_BOOTS
    assert rolled.body[4] == "0.3.0" and "not acknowledged" in rolled.body[5]
    assert "0.3.0" in log.body[2]
    assert pointer(node)["active"] == "" and not pointer(node)["trial"]


def test_firmware_never_acknowledged_on_trial_resets_and_rolls_back(tmp_path: Path) -> None:
    """A firmware that boots and runs but never has its HELLO acknowledged (a broken link in
    the new build, or a gateway it cannot reach) resets after `ota_trial_s` on each trial
    boot; after three, ssboot runs the previous slot, which reports why."""
    bundle = make_bundle(tmp_path, "0.4.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"ota_trial_s": 2}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        sender = Sender(gw, bundle, request=5)
        sender.begin()
        assert sender.send_from(0).body[2] == m.OTA_INSTALLED
        gw.acking = False  # from now on the node's HELLOs go unanswered
        trials = [gw.wait(lambda f, b=boot: f.type == m.HELLO and f.boot == b, timeout=30)
                  for boot in (2, 3, 4)]
        back = gw.wait(lambda f: f.type == m.HELLO and f.boot == 5, timeout=30)
        gw.acking = True
        rolled = gw.wait(lambda f: f.type == m.OTA_STATUS and f.body[2] == m.OTA_ROLLED_BACK,
                         timeout=30)
        resets = [line for line in node.console if "HELLO not acknowledged in 2 s" in line]
    assert [f.body[2] for f in trials] == ["0.4.0"] * 3 and back.body[2] == "0.1.0"
    assert len(resets) == 3, node.console[-20:]
    assert rolled.body[4] == "0.4.0" and "not acknowledged" in rolled.body[5]
    assert pointer(node)["active"] == "" and not pointer(node)["trial"]


def test_boot_loop_starts_safe_mode(tmp_path: Path) -> None:
    """An app that crashes at every boot (here the flashed one): after 5 failed boots in a
    row the node starts in safe mode, the link only, and says so in HELLO and STATUS."""
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        node.stop()
        (node.flash_dir / "ssnode" / "test_node.py").write_text(
            "import machine\nmachine.reset()\n")  # the kind app resets the board at import
        node.start()
        safe = gw.wait(lambda f: f.type == m.HELLO and "safe_mode" in f.body[7], timeout=40)
        gw.send(m.COMMAND, {1: 1, 2: "identify", 3: {"seconds": 1}})
        answer = gw.result(1)
    # Boot 1 (cut before it was up for 60 s: a failed boot too), boots 2-5 reset by the app,
    # boot 6 the sixth failed boot in a row: safe mode.
    assert safe.boot == 6
    assert safe.body[4] == []
    assert answer.body[2] == m.RESULT_OK


def test_power_cut_mid_switch_leaves_a_bootable_node(tmp_path: Path) -> None:
    """The flash as a cut during the switch leaves it. After the staging folder became app_a
    but before the pointer was written: the old firmware runs, drops the stale job, and the
    next transfer installs again. After the pointer's temp file was written but before it
    was renamed (FAT: the old one removed): ssboot reads the temp file and runs the trial."""
    bundle = make_bundle(tmp_path, "0.2.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        sender = Sender(gw, bundle, request=5)
        sender.begin()
        assert sender.send_from(0).body[2] == m.OTA_INSTALLED
        gw.wait(hello(2), timeout=20)
        node.stop()
        job = {"request": 5, "version": "0.2.0", "size": len(bundle.image),
               "sha256": bundle.sha256.hex(), "manifest_size": bundle.manifest_size}
        (node.flash_dir / "ota.json").write_text(json.dumps(job))
        (node.flash_dir / "slot.json").write_text(json.dumps(
            {"active": "", "previous": "", "trial": False, "tries": 0, "fails": 0}))
        node.start()
        old = gw.wait(hello(3))
        again = Sender(gw, bundle, request=6)
        fresh = again.begin()
        assert fresh.body[3] == 0  # the stale job was dropped: from the start
        assert again.send_from(0).body[2] == m.OTA_INSTALLED
        gw.wait(hello(4), timeout=20)
        node.stop()
        (node.flash_dir / "slot.json").rename(node.flash_dir / "slot.json.tmp")
        node.start()
        trial = gw.wait(hello(5))
    assert old.body[2] == "0.1.0"
    assert trial.body[2] == "0.2.0"


def test_a_transfer_costs_the_heap_little(tmp_path: Path) -> None:
    """Half way through a transfer (manifest parsed, files open and closed chunk by chunk),
    the node's free heap after gc (STATUS) is at most 16 KB below what it was before: no
    whole-file buffers. Measured on the 64-bit unix port: 10.6-10.8 KB, most of it ota.py's
    own bytecode, which an ESP32 keeps in its .mpy."""
    bundle = make_bundle(tmp_path, "0.2.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY,
                   extra_config={"status_interval_s": 1}) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        before = gw.wait(lambda f: f.type == m.STATUS and f.seq > 2).body[2]
        sender = Sender(gw, bundle, request=7)
        sender.begin()
        half = sender.send_from(0, stop_at=len(bundle.image) // 2)
        during = gw.wait(lambda f: f.type == m.STATUS and f.seq > half.seq + 1).body[2]
    assert half.body[3] < len(bundle.image)
    assert before - during <= 16 * 1024, (before, during)


def test_line_noise_drops_chunks_that_are_sent_again(tmp_path: Path) -> None:
    """Bit errors on the link (BER 1e-4: about one chunk frame in three): a damaged chunk
    fails its CRC and is dropped by the node, no status comes, the chunk is sent again; the
    image that arrives verifies and installs."""
    bundle = make_bundle(tmp_path, "0.2.0")
    with make_node(tmp_path, node_id=NODE_ID, key=KEY) as node, \
            MiniGateway(node.port, {NODE_ID: KEY}) as gw:  # fmt: skip
        gw.wait(hello(1))
        sender = Sender(gw, bundle, request=11, resend_after_s=1.0)
        sender.begin()
        node.link.set_faults(ber=1e-4)
        noisy = sender.send_from(0, stop_at=448 * 15)
        node.link.set_faults()
        done = sender.send_from(noisy.body[3])
        gw.wait(hello(2), timeout=20)
    assert node.link.counters["flipped_bits"] > 0 and sender.resent > 0
    assert done.body[2] == m.OTA_INSTALLED
