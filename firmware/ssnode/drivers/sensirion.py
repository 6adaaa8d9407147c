"""Sensirion CRC-8 used by the SCD4x, SCD30 and SHT families.

Source: Sensirion SCD4x datasheet (v1.4), §3.11 "Checksum Calculation": polynomial 0x31
(x^8 + x^5 + x^4 + 1), initialisation 0xFF, no reflection, no final XOR, computed over each
16-bit big-endian data word. Check value given there: CRC(0xBEEF) = 0x92.
"""

from micropython import const

_POLY = const(0x31)
_INIT = const(0xFF)


def crc8(data, start=0, end=None):
    """CRC-8 of data[start:end] (normally the two bytes of one word)."""
    if end is None:
        end = len(data)
    crc = _INIT
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ _POLY) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc
