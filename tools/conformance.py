"""The ``conformance`` command: the golden vectors through another implementation of protocol v1.

The implementation runs as a child process that speaks the exchange of SPEC.md §7.2: one JSON
request per line on its stdin, one JSON answer per line on its stdout. Every vector of
``protocol/vectors/v1.json`` is sent (decode requests for wire bytes, encode requests for the
frames an encoder must give or refuse), each verdict is printed, then a summary; the exit
status is 1 when any vector failed.
"""

from __future__ import annotations

import json
import math
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from streetsense.protocol import MalformedBody
from streetsense.protocol.mpack import sort_keys

__all__ = ["Outcome", "Peer", "check_case", "conformance", "load_vectors", "run", "same"]

Ask = Callable[[dict[str, Any]], dict[str, Any]]


class PeerError(RuntimeError):
    """The implementation under test stopped answering (exited, timed out, or wrote no JSON)."""


class Peer:
    """The implementation's process: ``ask`` writes a request line and reads its answer."""

    def __init__(self, command: list[str], timeout_s: float) -> None:
        self.command = command
        self.timeout_s = timeout_s
        try:
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          bufsize=0)
        except OSError as exc:
            raise click.ClickException(f"cannot start {command[0]!r}: {exc.strerror}") from None
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="conformance-peer").start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # end of output

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
            self._proc.stdin.flush()
            line = self._lines.get(timeout=self.timeout_s)
        except (BrokenPipeError, OSError):
            line = b""
        except queue.Empty:
            raise PeerError(f"no answer within {self.timeout_s:g} s") from None
        if not line:  # its stdout closed: it has exited, or is about to
            try:
                status = self._proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise PeerError("the implementation closed its output") from None
            raise PeerError(f"the implementation exited (status {status})")
        try:
            answer = json.loads(line)
        except ValueError:
            raise PeerError(f"the answer is not JSON: {line[:200]!r}") from None
        if not isinstance(answer, dict):
            raise PeerError(f"the answer is not a JSON object: {line[:200]!r}")
        return answer

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Outcome:
    """The verdict on one vector: ``problems`` is empty when it passed."""

    name: str
    problems: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def passed(self) -> bool:
        return not self.problems and not self.skipped


def load_vectors(path: Path | None = None) -> dict[str, Any]:
    """The vector file: ``path``, else the packaged ``v1.json``."""
    if path is None:
        text = (files("streetsense.protocol") / "vectors" / "v1.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def normal(value: Any) -> Any:
    """A tagged JSON value with map pairs in canonical order (an implementation may use any)."""
    if isinstance(value, list):
        return [normal(item) for item in value]
    if isinstance(value, dict) and "map" in value and len(value) == 1:
        pairs = {pair[0]: normal(pair[1]) for pair in value["map"]
                 if isinstance(pair, list) and len(pair) == 2 and _hashable(pair[0])}
        if len(pairs) != len(value["map"]):
            return value  # not a plain map of scalars: compared as given, so it differs
        try:
            order = sort_keys(pairs)
        except MalformedBody:  # a key that is neither int nor str (a bool)
            return value
        return {"map": [[key, pairs[key]] for key in order]}
    return value


def _hashable(key: Any) -> bool:
    return isinstance(key, (int, str))


def same(a: Any, b: Any) -> bool:
    """Equality that tells true from 1 and bytes from str all the way down, NaN == NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


_HEADER = ("version", "type", "flags", "node_id", "boot", "seq", "tag", "verified")


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return repr(error)
    return f"{error.get('class')} (field {error.get('field')!r})"


def _check_item(case: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    if "crash" in answer:
        return [f"decode crashed: {answer['crash']}"]
    items = answer.get("items")
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        return [f"decode gave {items!r}, expected exactly one item"]
    item = items[0]
    if "error" in case:
        want = case["error"]
        got = item.get("error")
        if not isinstance(got, dict) or (got.get("class"), got.get("field")) != (
                want["class"], want["field"]):
            shown = _error_text(got) if "error" in item else "a frame"
            return [f"decode gave {shown}, expected {_error_text(want)}"]
        return []
    frame = item.get("frame")
    if not isinstance(frame, dict):
        return [f"decode gave {_error_text(item.get('error'))}, expected a frame"]
    want = case["frame"]
    problems = [f"{name} is {frame.get(name)!r}, expected {want[name]!r}"
                for name in _HEADER if not same(frame.get(name), want[name])]
    if not same(normal(frame.get("body")), normal(want["body"])):
        problems.append(f"body is {json.dumps(frame.get('body'))}, "
                        f"expected {json.dumps(want['body'])}")
    return problems


def _check_encode(answer: dict[str, Any], wire: str | None,
                  error: dict[str, Any] | None) -> list[str]:
    if "crash" in answer:
        return [f"encode crashed: {answer['crash']}"]
    if error is not None:
        got = answer.get("error")
        if not isinstance(got, dict) or (got.get("class"), got.get("field")) != (
                error["class"], error["field"]):
            shown = _error_text(got) if "error" in answer else f"wire {answer.get('wire')}"
            return [f"encode gave {shown}, expected {_error_text(error)}"]
        return []
    if answer.get("wire") != wire:
        shown = (f"wire {answer.get('wire')}" if "wire" in answer
                 else _error_text(answer.get("error")))
        return [f"encode gave {shown}, expected wire {wire}"]
    return []


def check_case(case: dict[str, Any], ask: Ask, *, decode_only: bool = False) -> Outcome:
    """Run one vector through ``ask`` (decode, and encode where the vector says what it gives)."""
    outcome = Outcome(case["name"])
    if "encode" in case:
        if decode_only:
            outcome.skipped = True
            return outcome
        answer = ask({"op": "encode", "frame": case["encode"], "key": case["key"]})
        outcome.problems = _check_encode(answer, None, case["error"])
        return outcome
    answer = ask({"op": "decode", "wire": case["wire"], "key": case["key"]})
    outcome.problems = _check_item(case, answer)
    if "frame" in case and not decode_only:
        fields = {name: case["frame"][name]
                  for name in ("version", "type", "flags", "node_id", "boot", "seq", "body")}
        answer = ask({"op": "encode", "frame": fields, "key": case["key"]})
        if case.get("reencode", True):
            outcome.problems += _check_encode(answer, case["wire"], None)
        else:
            outcome.problems += _check_encode(answer, case.get("encoded"),
                                              case.get("encode_error"))
    return outcome


def run(cases: list[dict[str, Any]], peer: Peer, *,
        decode_only: bool = False) -> Iterator[Outcome]:
    """Each case's outcome, in order; once the peer stops answering, the rest fail unasked."""
    lost: str | None = None
    for case in cases:
        if lost is not None:
            yield Outcome(case["name"], [f"not run: {lost}"])
            continue
        try:
            yield check_case(case, peer.ask, decode_only=decode_only)
        except PeerError as exc:
            lost = str(exc)
            yield Outcome(case["name"], [lost])


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
@click.option("--vectors", "vectors_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None,
              help="Vector file to run (default: the packaged protocol v1 vectors).")
@click.option("-k", "pattern", default=None, metavar="TEXT",
              help="Only the vectors whose name contains TEXT.")
@click.option("--decode-only", is_flag=True,
              help="For a decoder without an encoder: skip the encode requests.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds to wait for each answer.")
def conformance(command: tuple[str, ...], vectors_path: Path | None, pattern: str | None,
                decode_only: bool, timeout_s: float) -> None:
    """Run the golden vectors through another protocol v1 implementation.

    CMD is started once and speaks JSON lines on stdin/stdout (SPEC.md §7.2). One line per
    vector (PASS, FAIL with what differs, or SKIP), then a summary; exit status 1 if any failed.
    Example: streetsense conformance -- ./my-decoder --json-lines
    """
    doc = load_vectors(vectors_path)
    cases = [c for c in doc["cases"] if pattern is None or pattern in c["name"]]
    if not cases:
        raise click.UsageError(f"no vector name contains {pattern!r}")
    peer = Peer(list(command), timeout_s)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        for outcome in run(cases, peer, decode_only=decode_only):
            if outcome.skipped:
                counts["skipped"] += 1
                click.echo(f"SKIP {outcome.name}: an encoder case (--decode-only)")
            elif outcome.passed:
                counts["passed"] += 1
                click.echo(f"PASS {outcome.name}")
            else:
                counts["failed"] += 1
                click.echo(f"FAIL {outcome.name}: " + "; ".join(outcome.problems))
    finally:
        peer.close()
    summary = (f"{len(cases)} vectors: {counts['passed']} passed, {counts['failed']} failed"
               + (f", {counts['skipped']} skipped" if counts["skipped"] else ""))
    click.echo(summary + (" - conforms to protocol v1" if not counts["failed"]
                          and not counts["skipped"] and pattern is None else ""))
    sys.exit(1 if counts["failed"] else 0)
