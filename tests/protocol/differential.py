"""Differential fuzz of the two codecs: the node's (MicroPython) and the gateway's (CPython).

Both interpreters run tests/protocol/mp_fuzz.py on the same corpus and seed, side by side, so
they make the same inputs (random and mutated frames from the golden vectors and from frames
captured on emulated nodes) and must give the same verdict on every one: the same error class
and field, or the same decoded fields and the same re-encoding. A disagreement is shown with
the input and both verdicts.

    .venv/bin/python tests/protocol/differential.py --inputs 1000000   (make fuzz)

prints the count, the verdicts by kind, and every disagreement (exit status 1 if any).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VECTORS = REPO / "protocol" / "vectors" / "v1.json"
ADAPTER_DIR = REPO / "protocol" / "vectors"
CAPTURES = HERE / "captures" / "emulated_nodes.json"
WORKER = HERE / "mp_fuzz.py"
SHOWN = 5  # disagreements shown in full


@dataclass
class Result:
    """What a run found: ``count`` inputs, their verdicts by kind, the disagreeing indexes."""

    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    disagreements: list[int] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.kinds.most_common())
        return (f"differential fuzz: {self.count:,} inputs, {len(self.disagreements)} "
                f"disagreements, {self.seconds:.0f} s\nverdicts (CPython): {kinds}")


def corpus(path: Path) -> Path:
    """Write the fuzz corpus (vector wires, captured frames and their keys) to ``path``."""
    seeds = [{"wire": case["wire"], "key": case["key"] if case["key"] != "unknown" else None}
             for case in json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
             if "wire" in case]
    capture = json.loads(CAPTURES.read_text(encoding="utf-8"))
    seeds += [{"wire": frame["wire"], "key": capture["keys"].get(str(frame["node_id"]))}
              for frame in capture["frames"]]
    keys = sorted({seed["key"] for seed in seeds if seed["key"]})
    path.write_text(json.dumps({"seeds": seeds, "keys": keys}), encoding="utf-8")
    return path


def _worker(interpreter: str, mode: str, corpus_path: Path, seed: int, start: int, count: int,
            mp_path: Path | None) -> list[str]:
    args = [interpreter, str(WORKER), mode, str(corpus_path), str(seed), str(start), str(count),
            str(ADAPTER_DIR)]
    return args + ([str(mp_path)] if mp_path is not None else [])


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    yield from proc.stdout


def run(count: int, *, micropython: str, mp_path: Path, seed: int = 0, start: int = 0,
        cpython: str = sys.executable) -> Result:
    """Fuzz ``count`` inputs from index ``start`` on both interpreters and compare them."""
    result = Result()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ssfuzz-") as tmp, ExitStack() as stack:
        corpus_path = corpus(Path(tmp) / "corpus.json")
        logs = [stack.enter_context(open(Path(tmp) / name, "w+"))
                for name in ("cpython.log", "micropython.log")]
        procs = [subprocess.Popen(_worker(exe, "run", corpus_path, seed, start, count, path),
                                  stdout=subprocess.PIPE, stderr=log, text=True)
                 for (exe, path), log in zip(((cpython, None), (micropython, mp_path)), logs,
                                             strict=True)]
        lines = zip(_lines(procs[0]), _lines(procs[1]), strict=False)  # counted below
        for index, (ours, theirs) in enumerate(lines, start=start):
            result.count += 1
            result.kinds[ours.split()[2]] += 1
            if ours != theirs:
                result.disagreements.append(index)
        failures = []
        for proc, log in zip(procs, logs, strict=True):
            if result.count != count:  # one side stopped early: the other may block on output
                proc.kill()
            status = proc.wait()
            log.seek(0)
            errors = log.read()
            if errors or (status != 0 and result.count == count):  # stderr is a fault too
                failures.append(f"{proc.args[0]} (status {status}):\n{errors[-3000:]}")
        if failures or result.count != count:
            raise RuntimeError(f"a worker failed after {result.count} of {count} inputs: "
                               + "\n".join(failures))
        for index in result.disagreements[:SHOWN]:
            shown = [subprocess.run(_worker(exe, "show", corpus_path, seed, index, 1, path),
                                    capture_output=True, text=True, check=True).stdout.strip()
                     for exe, path in ((cpython, None), (micropython, mp_path))]
            result.details.append(f"input {index}:\n  CPython:     {shown[0]}\n"
                                  f"  MicroPython: {shown[1]}")
    result.seconds = time.monotonic() - began
    return result


def main(argv: list[str] | None = None) -> int:
    from streetsense.hil.micropython import find_micropython, stage_protocol

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first input")
    args = parser.parse_args(argv)
    micropython = find_micropython()
    if micropython is None:
        print("no MicroPython interpreter: run `make venv`, or set MICROPYTHON", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ssfuzz-mp-") as staged:
        result = run(args.inputs, micropython=micropython, mp_path=stage_protocol(Path(staged)),
                     seed=args.seed, start=args.start)
    print(result.summary())
    for detail in result.details:
        print(detail)
    return 1 if result.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
