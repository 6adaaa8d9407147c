"""Firmware updates on the node: OTA_BEGIN / OTA_CHUNK in, OTA_STATUS out (SPEC.md §5.13).

The image (manifest, then the files it lists) is written as it comes into the staging folder
`ota_stage/` (`manifest.json` and the files under their paths), each chunk appended and
closed at once, so the bytes on flash are the only record of progress: after a link loss,
a gateway restart or a power cut the node resumes from what its files hold. `ota.json` says
which image they belong to. Nothing is held whole in RAM: files are written and read back
in blocks of at most one chunk. Once complete, every file and the whole image are checked
against their SHA-256 (block by block, yielding to the other tasks in between); only then
does the staging folder become the inactive app slot and the boot pointer (ssboot.py)
switch to it, with one atomic write, for a trial boot.
"""

import asyncio
import gc
import hashlib
import json
import os
from binascii import hexlify

from micropython import const

from streetsense.protocol import messages as m

STAGE = "ota_stage"
JOB = "ota.json"
MANIFEST = "manifest.json"
UP_AFTER_S = const(60)  # a boot that ran this long did not fail (ssboot's safe mode count)
_BLOCK = const(512)
_MANIFEST_MAX = const(8192)  # bytes of manifest JSON the node parses
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-"


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _remove_tree(path):
    """Delete a file or folder with everything in it (missing is fine)."""
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:
        for entry in os.ilistdir(path):
            _remove_tree(path + "/" + entry[0])
        os.rmdir(path)
    else:
        os.remove(path)


def _make_dirs(path):
    """Create the folders of file `path` (relative, `/`-separated)."""
    parts = path.split("/")[:-1]
    folder = ""
    for part in parts:
        folder = folder + "/" + part if folder else part
        if not _exists(folder):
            os.mkdir(folder)


def _free_bytes():
    """Free bytes on the filesystem the node runs from, or None if it cannot say."""
    try:
        stat = os.statvfs(".")
    except (OSError, AttributeError):
        return None
    return stat[1] * stat[4]  # f_frsize * f_bavail


def manifest_error(manifest, image_size, manifest_size):
    """What is wrong with a parsed manifest, or None."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return "manifest is not {version, files}"
    total = manifest_size
    for entry in manifest["files"]:
        if not isinstance(entry, list) or len(entry) != 3:
            return "a manifest entry is not [path, size, sha256]"
        path, size, digest = entry
        if not isinstance(path, str) or not path or path[0] == "/" or ".." in path:
            return "bad path in manifest"
        for char in path:
            if char not in _PATH_CHARS:
                return "bad path in manifest: " + path
        if not isinstance(size, int) or size < 0 or not isinstance(digest, str):
            return "bad size or sha256 of " + path
        total += size
    if total != image_size:
        return f"manifest files add up to {total} bytes, the image has {image_size}"
    return None


class Ota:
    """One node's update receiver; `node` sends the OTA_STATUS frames, `slot` (ssboot.Slot,
    None when the node was started without the boot selector) switches slots."""

    def __init__(self, node, slot):
        self.node = node
        self.slot = slot
        self.job = {}  # {"request", "version", "size", "sha256", "manifest_size"}; {}: none
        self.offset = 0
        self.files = []  # the manifest's [path, size, sha256] entries
        self._listed = False  # the manifest is complete and checked: `files` holds it
        self._busy = False  # verifying and installing: chunks are not taken meanwhile
        self._task = None
        self._deadline = None
        self._confirmed = False
        try:
            with open(JOB) as f:
                self.job = json.loads(f.read())
        except (OSError, ValueError):
            self.job = {}
        if self.job and not _exists(STAGE):  # a cut after the slot took the staging folder
            self._drop()
        elif self.job:
            self._measure()

    # -- boot outcome ------------------------------------------------------------------------
    def after_boot(self):
        """After the HELLO is queued: tell the gateway about a rollback, count the boot up."""
        if self.slot is None:
            return
        rolled = self.slot.pointer.get("rolled_back")
        if rolled:
            self.node.log(m.LOG_WARNING, "rolled back: " + rolled["why"])
            self.status(m.OTA_ROLLED_BACK, 0, rolled["version"] or "?", rolled["why"])
        self._task = asyncio.create_task(self._count_up())
        if self.slot.pointer.get("trial"):
            self._deadline = asyncio.create_task(self._trial_deadline())

    async def _count_up(self):
        await asyncio.sleep(UP_AFTER_S)
        self.slot.up()

    async def _trial_deadline(self):
        """A firmware on trial that runs but never has its HELLO acknowledged (its link is
        broken, or it cannot reach the gateway) resets after `ota_trial_s`: a trial boot that
        failed, so ssboot rolls back after TRIAL_BOOTS of them instead of keeping it."""
        seconds = self.node.config["ota_trial_s"]
        await asyncio.sleep(seconds)
        if not self._confirmed and self.node.failure is None:
            self.node.failure = (f"firmware {self.slot.pointer.get('version')} on trial: HELLO "
                                 f"not acknowledged in {seconds} s")

    def hello_acked(self):
        """The gateway acknowledged this boot's HELLO: a firmware on trial is confirmed."""
        if self._confirmed or self.slot is None:
            return
        self._confirmed = True
        trial, _ = self.slot.confirm()
        if trial is not None:
            self.node.log(m.LOG_INFO, f"firmware {trial} confirmed")
            self.status(m.OTA_CONFIRMED, 0, trial)

    # -- frames from the gateway -------------------------------------------------------------
    def status(self, state, offset=None, version=None, message=None):
        job = self.job
        body = {1: job.get("request", 0), 2: state,
                3: self.offset if offset is None else offset,
                4: version if version is not None else job.get("version", "")}  # fmt: skip
        if message:
            body[5] = message
        return self.node.send_ota_status(body)

    def begin(self, body):
        request, version, size, digest, manifest_size = body[1], body[2], body[3], body[4], body[5]
        job = self.job
        if self.slot is None:
            self.status(m.OTA_FAILED, 0, version, "started without ssboot: cannot switch")
            return
        if self._busy:
            job["request"] = request
            self.status(m.OTA_RECEIVING)
            return
        same = (job and job["sha256"] == hexlify(digest).decode()
                and job["size"] == size and job["manifest_size"] == manifest_size)  # fmt: skip
        if not same:
            self._drop()
            free = _free_bytes()
            if free is not None and free < size:
                self.status(m.OTA_FAILED, 0, version,
                            f"the image needs {size} bytes of flash, {free} are free")
                return
            os.mkdir(STAGE)
            job = {"request": request, "version": version, "size": size,
                   "sha256": hexlify(digest).decode(), "manifest_size": manifest_size}  # fmt: skip
        job["request"] = request
        self.job = job
        with open(JOB + ".tmp", "w") as f:
            f.write(json.dumps(job))
        os.rename(JOB + ".tmp", JOB)
        self._measure()
        if not self.job:
            return  # the manifest on flash was refused (fail() answered)
        self.status(m.OTA_RECEIVING)
        self._maybe_finish()

    def chunk(self, body):
        job = self.job
        if not job or body[1] != job["request"] or self._busy:
            if not job:
                self.status(m.OTA_IDLE, 0, "")
            else:
                self.status(m.OTA_RECEIVING)
            return
        if body[2] != self.offset or self.offset >= job["size"]:
            self.status(m.OTA_RECEIVING)  # where to go on from
            return
        if self.offset >= job["manifest_size"] and not self._listed \
                and not self._read_manifest():  # fmt: skip
            return  # (a manifest complete on flash, not parsed yet: out of memory before)
        data = memoryview(body[3])
        if len(data) > job["size"] - self.offset:
            self.fail("chunk beyond the image's size")
            return
        while len(data):
            path, room = self._target()
            part = data[:room]
            with open(path, "ab") as f:
                f.write(part)
            self.offset += len(part)
            data = data[len(part):]
            if not self._listed and self.offset == job["manifest_size"]:
                if not self._read_manifest():
                    return
        self.status(m.OTA_RECEIVING)
        self._maybe_finish()

    # -- staging -----------------------------------------------------------------------------
    def _target(self):
        """(file, bytes it still takes) at the current offset."""
        manifest_size = self.job["manifest_size"]
        if self.offset < manifest_size:
            return STAGE + "/" + MANIFEST, manifest_size - self.offset
        position = manifest_size
        for path, size, _ in self.files:
            if self.offset < position + size:
                full = STAGE + "/" + path
                if self.offset == position:
                    _make_dirs(full)
                return full, position + size - self.offset
            position += size
        raise ValueError("offset beyond the manifest")

    def _measure(self):
        """The offset from what the staging files hold (their sizes, in manifest order)."""
        job = self.job
        self._listed = False
        self.offset = min(_size(STAGE + "/" + MANIFEST), job["manifest_size"])
        if self.offset < job["manifest_size"] or not self._read_manifest():
            return
        for path, size, _ in self.files:
            have = _size(STAGE + "/" + path)
            self.offset += min(have, size)
            if have < size:
                return

    def _read_manifest(self):
        job = self.job
        if job["manifest_size"] > _MANIFEST_MAX:
            self.fail(f"manifest of {job['manifest_size']} bytes: at most {_MANIFEST_MAX}")
            return False
        gc.collect()  # the parsed list is many small blocks; never the whole text at once
        try:
            with open(STAGE + "/" + MANIFEST) as f:
                manifest = json.load(f)
        except ValueError:
            manifest = None
        wrong = manifest_error(manifest, job["size"], job["manifest_size"])
        if wrong:
            self.fail(wrong)
            return False
        self.files = manifest["files"]
        self._listed = True
        return True

    def _maybe_finish(self):
        if self.job and self.offset == self.job["size"] and not self._busy:
            self._busy = True
            self._task = asyncio.create_task(self._finish())

    async def _finish(self):
        try:
            wrong = await self._verify()
            if wrong:
                self.fail(wrong)
                return
            self._install()
        finally:
            self._busy = False

    async def _verify(self):
        """Why the staged image does not match its SHA-256 values, or None."""
        whole = hashlib.sha256()
        block = bytearray(_BLOCK)
        paths = [[MANIFEST, self.job["manifest_size"], ""]]
        paths.extend(self.files)
        for path, size, expected in paths:
            part = hashlib.sha256()
            if size == 0:  # no chunk ever created it
                _make_dirs(STAGE + "/" + path)
                open(STAGE + "/" + path, "wb").close()
            with open(STAGE + "/" + path, "rb") as f:
                left = size
                while left:
                    n = f.readinto(block)
                    if not n:
                        return f"{path} is shorter than its {size} bytes"
                    n = min(n, left)
                    view = memoryview(block)[:n]
                    part.update(view)
                    whole.update(view)
                    left -= n
                    await asyncio.sleep_ms(0)  # the sensors and the link go on meanwhile
            if expected and hexlify(part.digest()).decode() != expected:
                return f"SHA-256 of {path} does not match the manifest"
        if hexlify(whole.digest()).decode() != self.job["sha256"]:
            return "SHA-256 of the image does not match OTA_BEGIN"
        return None

    def _install(self):
        """Staging becomes the inactive slot, the pointer switches, the node resets."""
        slot = self.slot.inactive()
        version = self.job["version"]
        _remove_tree(slot)
        os.rename(STAGE, slot)
        self.slot.switch(slot, version)
        seq = self.status(m.OTA_INSTALLED)
        os.remove(JOB)
        self.job = {}
        self.node.log(m.LOG_INFO, f"firmware {version} installed in {slot}: resetting on trial")
        self._task = asyncio.create_task(self.node.restart(seq))

    def fail(self, why):
        self.node.log(m.LOG_WARNING, "update refused: " + why)
        self.status(m.OTA_FAILED, None, None, why)
        self._drop()

    def _drop(self):
        _remove_tree(STAGE)
        _remove_tree(JOB)
        self.job = {}
        self.files = []
        self._listed = False
        self.offset = 0
