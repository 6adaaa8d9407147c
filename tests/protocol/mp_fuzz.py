"""One side of the differential fuzz: the same inputs, made here, on MicroPython or CPython.

Usage: INTERPRETER mp_fuzz.py run CORPUS SEED START COUNT ADAPTER_DIR [PROTOCOL_DIR]
       INTERPRETER mp_fuzz.py show CORPUS SEED INDEX 1 ADAPTER_DIR [PROTOCOL_DIR]

CORPUS is a JSON file {"seeds": [{"wire": hex, "key": hex | null}], "keys": [hex]}: the golden
vectors and captured frames. Input i is made from it by a PRNG seeded with (SEED, i) alone,
so both interpreters make the same bytes, and any input can be made again by its index. Each
input is decoded (deframer, end of stream, parse_frame with the chosen key) and every frame
decoded is encoded again, through protocol/vectors/adapter.py (in ADAPTER_DIR). `run` prints
one line per input: the CRC-32 of the input, the CRC-32 of the verdict in a canonical text
form (every item's class and field, or every decoded field and the re-encoding), and the
first item's kind. `show` prints the input and the canonical verdict in full.

Runs under both interpreters: json, binascii, struct and sys only.
"""

import binascii
import json
import struct
import sys

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3,
                0xC4, 0xC7, 0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD3, 0xD4, 0xD9, 0xDA,
                0xDC, 0xDE, 0xDF, 0xE0, 0xFF)
_INTS = (0, 1, 7, 8, 15, 16, 31, 127, 128, 255, 256, 65535, 65536, 0xFFFFFFFF, 0x100000000,
         0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF, -1, -32, -33, -128, -129,
         -0x80000000, -0x8000000000000000)
_TEXTS = ("", "a", "air-quality", "Tràng Tiền", "🚗", "x" * 40)
_NAMES = ("lane", "dir", "speed_dkmh", "length_cm", "class", "rssi", "report_interval_s",
          "node_id", "kind", "calibration")


class Rng:
    """xorshift32: the same numbers on both interpreters."""

    def __init__(self, seed, index):
        self.state = (seed * 0x9E3779B1 + index * 0x85EBCA6B + 0x6A09E667) & 0xFFFFFFFF or 1
        for _ in range(4):
            self.next()

    def next(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def below(self, n):
        return self.next() % n

    def pick(self, items):
        return items[self.below(len(items))]


class Map:
    """A generated msgpack map: pairs of any keys (lists and floats included), in order."""

    def __init__(self, pairs):
        self.pairs = pairs


def gen_value(rng, depth):
    """A random msgpack value, containers less likely the deeper it is."""
    roll = rng.below(16 + 4 * depth)
    if roll == 0:
        return None
    if roll == 1:
        return rng.below(2) == 1
    if roll < 5:
        return rng.pick(_INTS)
    if roll == 5:
        return rng.below(1000) / 8  # a float
    if roll < 8:
        return rng.pick(_TEXTS)
    if roll == 8:
        return bytes([rng.below(256) for _ in range(rng.below(6))])
    if roll == 9 and depth < 10:
        return [gen_value(rng, depth + 1) for _ in range(rng.below(4))]
    if roll == 10 and depth < 10:
        return Map([(gen_key(rng), gen_value(rng, depth + 1)) for _ in range(rng.below(4))])
    return rng.below(200) - 40


def gen_key(rng):
    roll = rng.below(12)
    if roll < 6:
        return rng.below(12)
    if roll < 9:
        return rng.pick(_NAMES)
    return gen_value(rng, 9)  # bool, float, nil, bytes, ... now and then


def _head(out, rng, size, fix_base, fix_max, codes):
    """A length head: the shortest form, or (1 in 8) a longer one that also fits."""
    forms = []
    if size <= fix_max:
        forms.append((fix_base | size, 0))
    for code, width in codes:
        if size < 1 << (8 * width):
            forms.append((code, width))
    code, width = forms[0] if rng.below(8) else rng.pick(forms)
    out.append(code)
    for shift in range(8 * (width - 1), -1, -8):
        out.append((size >> shift) & 0xFF)


def emit(out, value, rng):
    """msgpack of a generated value, in the shortest form or now and then a longer one."""
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        if 0 <= value <= 0x7F and rng.below(8):
            out.append(value)
        elif -32 <= value < 0 and rng.below(8):
            out.append(value & 0xFF)
        elif value >= 0:
            for code, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                   (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 0xFFFFFFFFFFFFFFFF)):
                if value <= top and (rng.below(4) or top == 0xFFFFFFFFFFFFFFFF):
                    out.append(code)
                    out.extend(struct.pack(fmt, value))
                    return
        else:
            for code, fmt, low in ((0xD0, ">b", -0x80), (0xD1, ">h", -0x8000),
                                   (0xD2, ">i", -0x80000000), (0xD3, ">q", -0x8000000000000000)):
                if value >= low and (rng.below(4) or low == -0x8000000000000000):
                    out.append(code)
                    out.extend(struct.pack(fmt, value))
                    return
    elif isinstance(value, float):
        if rng.below(2):
            out.append(0xCA)
            out.extend(struct.pack(">f", value))
        else:
            out.append(0xCB)
            out.extend(struct.pack(">d", value))
    elif isinstance(value, str):
        raw = value.encode()
        _head(out, rng, len(raw), 0xA0, 31, ((0xD9, 1), (0xDA, 2), (0xDB, 4)))
        out.extend(raw)
    elif isinstance(value, bytes):
        _head(out, rng, len(value), 0, -1, ((0xC4, 1), (0xC5, 2), (0xC6, 4)))
        out.extend(value)
    elif isinstance(value, list):
        _head(out, rng, len(value), 0x90, 15, ((0xDC, 2), (0xDD, 4)))
        for item in value:
            emit(out, item, rng)
    else:
        _head(out, rng, len(value.pairs), 0x80, 15, ((0xDE, 2), (0xDF, 4)))
        for key, item in value.pairs:
            emit(out, key, rng)
            emit(out, item, rng)


def as_generated(value, sort_keys):
    """A decoded body as a generated value: maps become Map, in canonical key order (dict
    order differs between the interpreters)."""
    if isinstance(value, list):
        return [as_generated(item, sort_keys) for item in value]
    if isinstance(value, dict):
        return Map([(key, as_generated(value[key], sort_keys)) for key in sort_keys(value)])
    return value


def perturb(value, rng, depth):
    """The value with one part, chosen at random, replaced by a generated value."""
    if isinstance(value, Map) and value.pairs and rng.below(4):
        pairs = list(value.pairs)
        i = rng.below(len(pairs) + 1)
        if i == len(pairs):
            pairs.append((gen_key(rng), gen_value(rng, depth + 1)))
        elif rng.below(6) == 0:
            pairs[i] = (gen_key(rng), pairs[i][1])
        else:
            pairs[i] = (pairs[i][0], perturb(pairs[i][1], rng, depth + 1))
        return Map(pairs)
    if isinstance(value, list) and value and rng.below(4):
        items = list(value)
        i = rng.below(len(items))
        items[i] = perturb(items[i], rng, depth + 1)
        return items
    return gen_value(rng, depth)


class Fuzz:
    def __init__(self, protocol, adapter, corpus, seed):
        self.p = protocol
        self.adapter = adapter
        self.seed = seed
        self.seeds = []  # (decoded frame bytes or None, wire, key)
        for item in corpus["seeds"]:
            wire = binascii.unhexlify(item["wire"])
            key = binascii.unhexlify(item["key"]) if item["key"] else None
            frames = [x for x in protocol.Deframer().feed(wire) if isinstance(x, bytes)]
            self.seeds.append((frames[0] if frames else None, wire, key))
        self.keys = [binascii.unhexlify(k) for k in corpus["keys"]]

    def make(self, index):
        """Input ``index``: (wire bytes, key argument for parse_frame as the exchange has it)."""
        rng = Rng(self.seed, index)
        raw, wire, key = rng.pick(self.seeds)
        strategy = rng.below(10)
        if raw is None or strategy == 0:
            wire = self.mutate_bytes(bytearray(wire), rng)
        else:
            raw = bytearray(raw)
            if strategy < 3:
                self.mutate_frame(raw, rng)
            else:
                raw = self.remake_body(raw, key, rng, strategy)
            wire = self.p.cobs.encode(bytes(raw)) + b"\x00"
            if rng.below(16) == 0:
                wire = self.mutate_bytes(bytearray(wire), rng)
        roll = rng.below(8)
        if roll < 5:
            parse_key = key
        elif roll < 7:
            parse_key = None
        elif rng.below(2):
            parse_key = "unknown"
        else:
            parse_key = rng.pick(self.keys)
        return bytes(wire), parse_key

    def mutate_bytes(self, data, rng):
        for _ in range(1 + rng.below(3)):
            op = rng.below(6)
            at = rng.below(len(data) + 1)
            if op == 0 and data:
                data[min(at, len(data) - 1)] ^= 1 << rng.below(8)
            elif op == 1 and data:
                data[min(at, len(data) - 1)] = rng.pick(_INTERESTING)
            elif op == 2:
                data[at:at] = bytes([rng.below(256)])
            elif op == 3 and data:
                data = data[:at] + data[at + 1 + rng.below(4):]  # MicroPython: no del of a slice
            elif op == 4:
                data = data[:at]
            else:
                other = rng.pick(self.seeds)[1]
                cut = rng.below(len(other) + 1)
                data = data[:at] + other[cut:]
        return data

    def mutate_frame(self, raw, rng):
        """Header, body or tag bytes changed in the decoded frame, the CRC mostly fixed."""
        for _ in range(1 + rng.below(3)):
            at = rng.below(max(1, len(raw) - 4))
            if rng.below(2):
                raw[at] = rng.pick(_INTERESTING)
            else:
                raw[at] ^= 1 << rng.below(8)
        if rng.below(5):
            self.fix_crc(raw)

    def remake_body(self, raw, key, rng, strategy):
        """A new body for the frame (a seed's body perturbed, or generated), re-signed."""
        signed = raw[2] & self.p.FLAG_SIGNED
        end = len(raw) - 4 - (8 if signed else 0)
        try:
            body = as_generated(self.p.mpack.unpackb(bytes(raw[15:end])), self.p.mpack.sort_keys)
        except self.p.ProtocolError:  # not a body the device decoder takes
            body = gen_value(rng, 0)
        if strategy < 9:
            body = perturb(body, rng, 0)
        else:
            body = gen_value(rng, 0) if rng.below(4) else Map([(1, gen_value(rng, 1))])
        out = bytearray(raw[:15])
        if rng.below(6) == 0:
            out[1] = rng.pick((0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x11, 0x12, 0x13, 0x7E))
        emit(out, body, rng)
        if rng.below(10) == 0:
            out.append(rng.pick(_INTERESTING))  # trailing bytes, or a byte cut short
        if signed:
            out.extend(self.p.frame.sign(key or rng.pick(self.keys), bytes(out)))
        out.extend(b"\x00\x00\x00\x00")
        self.fix_crc(out)
        return out

    @staticmethod
    def fix_crc(raw):
        raw[-4:] = struct.pack(">I", binascii.crc32(bytes(raw[:-4])) & 0xFFFFFFFF)

    def verdict(self, wire, key):
        """Every item's outcome and every frame's re-encoding, as canonical text."""
        key_arg = self.adapter.key_arg(key_text(key))
        answer = self.adapter.decode(self.p, wire, key_arg)
        again = []
        for item in answer["items"]:
            if "error" in item:
                del item["error"]["message"]
            else:
                encoded = self.adapter.encode(self.p, item["frame"], key)
                if "error" in encoded:
                    del encoded["error"]["message"]
                again.append(encoded)
        items = answer["items"]
        kind = "none"
        if items:
            first = items[0]
            kind = "frame" if "frame" in first else (
                f"{first['error']['class']}:{first['error']['field']}")
        return canon({"items": items, "again": again}), kind


def key_text(key):
    """The exchange's form of a key argument: hex, None, or "unknown" as it is."""
    return key if key is None or isinstance(key, str) else binascii.hexlify(key).decode()


def canon(value):
    """One text for a JSON-like value on both interpreters: maps and map pairs sorted."""
    if value is None:
        return "n"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, str):  # printable ASCII as is, the rest escaped: alike on both
        return '"' + "".join([ch if 32 <= ord(ch) < 127 and ch not in '\\"' else
                              f"\\u{{{ord(ch):x}}}" for ch in value]) + '"'
    if isinstance(value, list):
        return "[" + ",".join([canon(item) for item in value]) + "]"
    entries = []
    for name in value:
        if name == "map":
            pairs = sorted([canon(pair) for pair in value[name]])
            entries.append("map:{" + ",".join(pairs) + "}")
        else:
            entries.append(name + ":" + canon(value[name]))
    return "{" + ",".join(sorted(entries)) + "}"


def main(argv):
    mode, corpus_path, seed, start, count, adapter_dir = argv[1:7]
    if len(argv) > 7:
        sys.path.insert(0, argv[7])
    sys.path.insert(0, adapter_dir)
    import adapter

    import streetsense.protocol as protocol
    from streetsense.protocol import body, cobs, frame, mpack

    protocol.body, protocol.cobs, protocol.frame, protocol.mpack = body, cobs, frame, mpack
    with open(corpus_path) as f:
        fuzz = Fuzz(protocol, adapter, json.load(f), int(seed))
    start, count = int(start), int(count)
    write = sys.stdout.write
    for index in range(start, start + count):
        try:
            wire, key = fuzz.make(index)
        except Exception as exc:  # the generator uses the device decoder: its crash is a verdict
            wire, key = b"", None
            text = kind = "generator-crash:" + type(exc).__name__
        else:
            try:
                text, kind = fuzz.verdict(wire, key)
            except Exception as exc:  # a codec that crashes: a verdict the other side must share
                text = f"crash:{type(exc).__name__}: {exc}"
                kind = "crash:" + type(exc).__name__
        if mode == "show":
            write(json.dumps({"index": index, "wire": binascii.hexlify(wire).decode(),
                              "key": key_text(key), "verdict": text}) + "\n")
        else:
            wire_crc = binascii.crc32(wire) & 0xFFFFFFFF
            write(f"{wire_crc:08x} {binascii.crc32(text.encode()) & 0xFFFFFFFF:08x} {kind}\n")


if __name__ == "__main__":
    main(sys.argv)
