"""CPython side of the kind-app tests: run tests/firmware/mp_app.py under MicroPython on the
emulated board of an Environment, and decode what the app sends with streetsense.protocol."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streetsense.hil import micropython
from streetsense.hil.environment import Environment
from streetsense.hil.node import BOARD_SHIM, FIRMWARE
from streetsense.protocol import Deframer, parse_frame
from streetsense.protocol import messages as m

HERE = Path(__file__).resolve().parent


def readings(frame_body: dict[int, Any]) -> dict[str, list[float]]:
    """DATA readings by name (`name` or `name_<instance>`): [mean, min, max, count] as reals
    (a 3-item reading gives [value])."""
    out: dict[str, list[float]] = {}
    for reading in frame_body[4]:
        ch, exponent, *values = reading
        name = m.QUANTITIES.get(ch & 0xFF, (f"q{ch & 0xFF}",))[0]
        if ch >> 8:
            name += f"_{ch >> 8}"
        scale = 10.0**exponent
        out[name] = [v * scale for v in values[:3]] + values[3:]
    return out


class AppRun:
    """One app process; `lines` collects its output objects, `data`/`events` the frame bodies."""

    def __init__(self, tmp_path: Path, env: Environment, app: str, **config: Any) -> None:
        stage = micropython.stage_protocol(tmp_path / "lib")
        board = tmp_path / "board.json"
        board.write_text(json.dumps(env.board_entries()))
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps(config))  # over the firmware's defaults
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] = micropython.popen(
            HERE / "mp_app.py", BOARD_SHIM, FIRMWARE, stage, app, cfg, board=board,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=tmp_path)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(json.loads(line))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _bodies(self, key: str) -> list[dict[int, Any]]:
        """Frame bodies, each wire frame deframed and parsed (CRC and schema checked)."""
        out = []
        for x in list(self.lines):
            if key in x:
                [raw] = Deframer().feed(bytes.fromhex(x[key]))
                assert isinstance(raw, bytes), raw
                out.append(parse_frame(raw).body)
        return out

    @property
    def data(self) -> list[dict[int, Any]]:
        return self._bodies("data")

    @property
    def events(self) -> list[dict[int, Any]]:
        return self._bodies("event")

    def faults(self) -> dict[str, str]:
        seen = [x["faults"] for x in list(self.lines) if "faults" in x]
        return seen[-1] if seen else {}

    def wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate() or self.proc.poll() is not None, timeout)
        if not ok or not predicate():
            raise AssertionError(f"condition not met in {timeout} s; output: {self.lines[-8:]}"
                                 f"\nstderr: {self._stderr()}")  # fmt: skip

    def wait_data(self, count: int, timeout: float) -> list[dict[int, Any]]:
        self.wait(lambda: len(self.data) >= count, timeout)
        return self.data

    def send(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send one control line; returns the answer line (result or config_errors), if any."""
        assert self.proc.stdin is not None
        answer = "result" if "command" in obj else "config_errors" if "config" in obj else None
        before = len(self.lines)
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        if answer is None:
            return {}
        self.wait(lambda: any(answer in x for x in self.lines[before:]), 10)
        return next(x for x in self.lines[before:] if answer in x)

    def _stderr(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr is not None:
            return self.proc.stderr.read()
        return "(running)"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> AppRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
