"""MicroPython side of test_node_spool.py: the flash spool and the uplink queue on a real VFS.

Usage: micropython mp_spool.py FIRMWARE_DIR WORK_DIR. Prints one line per scenario
(``name ok`` or ``name FAIL detail``).
"""

import os
import sys

sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])

from ssnode.spool import Spool  # noqa: E402
from ssnode.uplink_queue import UplinkQueue  # noqa: E402


def frames(boot, first, count, size=1000):
    return [(boot, seq, bytes([seq & 0xFF]) * size) for seq in range(first, first + count)]


def drain(spool, count):
    out = []
    for _ in range(count):
        head = spool.head()
        if head is None:
            break
        out.append(head[:2])
        spool.delivered()
    return out


def scenario(name, fn):
    try:
        detail = fn()
    except Exception as exc:  # reported to the CPython side
        detail = repr(exc)
    print(name, "ok" if detail is None else "FAIL " + str(detail))


def resumes_after_reopen():
    s = Spool("a")
    s.append(frames(1, 0, 5))  # 5 KB: the segment is full after this batch
    s.append(frames(1, 5, 3))  # so these open a second one
    if len(os.listdir("a")) != 2:
        return os.listdir("a")
    got = drain(s, 2)
    again = Spool("a")  # a reboot: delivered records must not come back
    got += drain(again, 10)
    if got != [(1, i) for i in range(8)]:
        return got
    if again.head() is not None or os.listdir("a"):
        return "not empty"
    return None


def torn_record_ends_segment():
    s = Spool("b")
    s.append(frames(2, 0, 2, 100))
    with open("b/00000001", "ab") as f:
        f.write(b"\x01\x00\x00\x00\x02\x00\x00\x00\x02\x00\x64abc")  # length 100, 3 bytes
    got = drain(Spool("b"), 10)
    return None if got == [(2, 0), (2, 1)] else got


def full_spool_drops_oldest():
    s = Spool("c", max_bytes=6000)
    for first in range(0, 12, 3):
        s.append(frames(3, first, 3))
    got = drain(s, 20)
    if s.lost == 0 or got[-1] != (3, 11) or got != sorted(got):
        return (s.lost, got)
    return None


def queue_orders_hello_spool_ram():
    q = UplinkQueue(Spool("d"), ram_frames=4)
    for boot, seq, wire in frames(5, 1, 6, 10):  # 4 in RAM, spilled at the 5th
        q.push(boot, seq, wire)
    q.push(5, 0, b"hello", first=True)
    order = []
    while q.head() is not None:
        boot, seq, _ = q.head()
        order.append(seq)
        q.ack(boot, seq)
    return None if order == [0, 1, 2, 3, 4, 5, 6] else order


def flush_keeps_frames_drops_hello():
    q = UplinkQueue(Spool("e"), ram_frames=4)
    q.push(6, 0, b"hello", first=True)
    q.push(6, 1, b"data")
    q.flush()
    again = UplinkQueue(Spool("e"))
    head = again.head()
    if head is None or head[:2] != (6, 1):
        return head
    return None if not again.ack(6, 0) and again.ack(6, 1) and again.head() is None else "ack"


for name, fn in (
    ("resumes_after_reopen", resumes_after_reopen),
    ("torn_record_ends_segment", torn_record_ends_segment),
    ("full_spool_drops_oldest", full_spool_drops_oldest),
    ("queue_orders_hello_spool_ram", queue_orders_hello_spool_ram),
    ("flush_keeps_frames_drops_hello", flush_keeps_frames_drops_hello),
):
    scenario(name, fn)
