"""MicroPython side of test_environment: Pin IRQs on the emulated board, edges as JSON lines.

argv: board shim dir, "hard" | "soft", edges to wait for, timeout (s). Arms IRQs on both edges
of the lane 0 and lane 1 detector pins, drives the LED pin, then prints one JSON list per edge:
[ticks_us, pin, value read in the handler, ran on the main thread].
"""

import _thread
import asyncio
import json
import sys
import time

sys.path.insert(0, sys.argv[1])
import machine

MAIN = _thread.get_ident()
hard = sys.argv[2] == "hard"
timeout_ms = int(float(sys.argv[4]) * 1000)
got = []


def on_edge(pin):
    got.append((time.ticks_us(), pin.id, pin.value(), _thread.get_ident() == MAIN))


pins = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in (25, 26, 27, 14)]
print(json.dumps([p.value() for p in pins]))  # the levels before any edge
for p in pins:
    p.irq(on_edge, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING, hard=hard)
led = machine.Pin(2, machine.Pin.OUT, value=0)
led.on()


async def main():
    flag = asyncio.ThreadSafeFlag()  # as the traffic app waits: soft IRQs run promptly

    async def waiter():
        await flag.wait()

    task = asyncio.create_task(waiter())
    start = time.ticks_ms()
    while len(got) < int(sys.argv[3]) and time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
        await asyncio.sleep_ms(10)
    task.cancel()


asyncio.run(main())
for edge in got:
    print(json.dumps(edge))
