"""The benchmark's air-quality DATA frame, shared by protocol_bench.py (CPython) and
mp_alloc.py (MicroPython): keep it MicroPython-compatible (streetsense.protocol only).

Both scripts import it from their own directory (first on sys.path for either
interpreter); mp_alloc.py puts the staged ``streetsense`` package on sys.path first.
"""

from streetsense.protocol import FLAG_ACK_REQ, Frame
from streetsense.protocol import messages as m

KEY = bytes(range(1, 33))
NODE_ID = 0x00A1B2C3
BOOT = 7

# One minute of an air-quality node: [channel, exponent, mean, min, max, count] per
# quantity, fixed-point (real value = value * 10**exponent).
AIR_QUALITY = [
    [m.channel(1), -1, 84, 61, 112, 60],  # PM1.0, 0.1 ug/m3
    [m.channel(2), -1, 127, 95, 181, 60],  # PM2.5
    [m.channel(3), -1, 163, 120, 240, 60],  # PM10
    [m.channel(4), 0, 612, 587, 655, 60],  # CO2, ppm
    [m.channel(5), -2, 1874, 1861, 1890, 60],  # temperature, 0.01 degC
    [m.channel(6), -1, 553, 547, 561, 60],  # humidity, 0.1 %RH
    [m.channel(7), -1, 10132, 10131, 10134, 60],  # pressure, 0.1 hPa
]
TS = 1764115200
INTERVAL_S = 60


def air_quality_frame(seq, readings=AIR_QUALITY, ts=TS):
    """A typical air-quality DATA frame: 7 interval statistics, one minute, UTC clock."""
    body = {1: ts, 2: m.CLOCK_UTC, 3: INTERVAL_S, 4: readings}
    return Frame(m.DATA, NODE_ID, BOOT, seq, body, FLAG_ACK_REQ)
