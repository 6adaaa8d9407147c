"""Reading a TOML file so that every problem is found and placed: key path and line.

tomllib keeps no positions, so `LineIndex` scans the text for table headers and keys and
maps dotted paths (``serial[1].baud``) to lines. `Table` reads values through typed getters
that report a wrong value and carry on with the default, so one pass finds every problem;
`Table.done()` reports the keys nobody asked for. Used by the gateway config and registry.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ABSENT",
    "NAME",
    "NAME_WHAT",
    "LineIndex",
    "Problem",
    "ProblemsError",
    "Reader",
    "Table",
    "finish",
    "is_int",
    "listen_problem",
    "open_toml",
    "parse_toml",
    "type_name",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file: its dotted key ("" for the file), line, message."""

    key: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"


class ProblemsError(Exception):
    """A file has problems; ``.problems`` lists them all, ``.path`` is the file."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {path}: {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in {path}:\n{lines}")


# Ids and names that become MQTT topic levels: no wildcards or separators, nothing to quote.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NAME_WHAT = "a name of letters, digits, '_', '-' and '.'"

_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
    r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*="""
)
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'""")


def _key_parts(dotted: str) -> list[str]:
    """``a."b.c".d`` → ["a", "b.c", "d"]."""
    parts = []
    for part in _KEY_PART.findall(dotted):
        if part.startswith('"'):
            part = tomllib.loads(f"k = {part}")["k"]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return parts


class LineIndex:
    """Line numbers of table headers and keys, by dotted path (``serial[1].baud``)."""

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        arrays: dict[str, int] = {}  # array-of-tables path -> index of its last element
        table = ""
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:  # inside a """ or ''' string: no keys here
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            assign = _ASSIGN.match(line)
            header = None if assign else _HEADER.match(line)
            if header:
                *outer, last = _key_parts(header.group(2))
                parent = self._outer_path(outer, arrays)
                table = f"{parent}.{last}" if parent else last
                if header.group(1) == "[[":
                    arrays[table] = arrays.get(table, -1) + 1
                    table = f"{table}[{arrays[table]}]"
                self._lines.setdefault(table, number)
            elif assign:
                key = ".".join([table, *_key_parts(assign.group(1))]).lstrip(".")
                self._lines.setdefault(key, number)
                for quote in ('"""', "'''"):
                    if line.count(quote) % 2 == 1:
                        in_multiline = quote

    @staticmethod
    def _outer_path(outer: list[str], arrays: dict[str, int]) -> str:
        """The path of a header's enclosing tables, arrays of tables with their current index."""
        path = ""
        for name in outer:
            path = f"{path}.{name}" if path else name
            if path in arrays:
                path = f"{path}[{arrays[path]}]"
        return path

    def line(self, key: str) -> int | None:
        """The line of ``key``, else of the nearest enclosing table or key that has one."""
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[: key.rindex("[")] if key.endswith("]") else key.rpartition(".")[0]
        return None


ABSENT: Any = object()  # a key that is missing, or whose value was wrong (already reported)


class Reader:
    """Collects the problems of one file while its tables are read, and its warnings (things
    that are fine for now but worth a look, e.g. a serial port not plugged in)."""

    def __init__(self, lines: LineIndex, base_dir: Path) -> None:
        self.lines = lines
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, self.lines.line(key), message))

    def warning(self, key: str, message: str) -> None:
        self.warnings.append(Problem(key, self.lines.line(key), message))


class Table:
    """One TOML table read through typed getters. A wrong value is reported and replaced by
    the default, so reading goes on and every problem is found; `done()` reports the keys
    that no getter asked for."""

    def __init__(self, reader: Reader, data: Any, prefix: str) -> None:
        self.reader = reader
        self.prefix = prefix
        if not isinstance(data, dict):
            reader.problem(prefix, f"must be a table, not {type_name(data)}")
            data = {}
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def problem(self, name: str, message: str) -> None:
        self.reader.problem(self.key(name), message)

    def warning(self, name: str, message: str) -> None:
        self.reader.warning(self.key(name), message)

    def value(self, name: str, check: Callable[[Any], bool], what: str, *, required: bool) -> Any:
        """The raw value if it passes ``check``; else `ABSENT` (a problem if it was wrong)."""
        self.used.add(name)
        if name not in self.data:
            if required:
                self.problem(name, "is required")
            return ABSENT
        value = self.data[name]
        if not check(value):
            self.problem(name, f"must be {what}, not {type_name(value)}")
            return ABSENT
        return value

    def table(self, name: str) -> Table:
        self.used.add(name)
        return Table(self.reader, self.data.get(name, {}), self.key(name))

    def tables(self, name: str) -> list[Table]:
        """An array of tables (``[[name]]``); absent = empty."""
        self.used.add(name)
        items = self.data.get(name, [])
        if not isinstance(items, list):
            self.problem(name, f"must be an array of tables ([[{name}]])")
            return []
        return [Table(self.reader, item, f"{self.key(name)}[{i}]") for i, item in enumerate(items)]

    def text(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        choices: tuple[str, ...] = (),
        pattern: re.Pattern[str] | None = None,
        what: str = "",
    ) -> str | None:
        value = self.value(name, lambda v: isinstance(v, str), "a string", required=required)
        if value is ABSENT:
            return default
        if choices and value not in choices:
            self.problem(name, f'"{value}" is not one of {", ".join(map(quoted, choices))}')
            return default
        if pattern and not pattern.match(value):
            self.problem(name, f'"{value}" is not {what}')
            return default
        assert isinstance(value, str)
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.value(name, lambda v: isinstance(v, bool), "true or false", required=False)
        return default if value is ABSENT else bool(value)

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        value = self.value(name, is_int, "an integer", required=False)
        return int(self._in_range(name, value, default, low, high))

    def number(self, name: str, default: float, *, low: float, high: float | None = None) -> float:
        value = self.value(
            name, lambda v: is_int(v) or isinstance(v, float), "a number", required=False
        )
        return float(self._in_range(name, value, default, low, high))

    def _in_range(
        self, name: str, value: Any, default: float, low: float, high: float | None
    ) -> float:
        if value is ABSENT:
            return default
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.problem(name, f"{value} is out of range: must be {bound}")
            return default
        return float(value)

    def path(
        self, name: str, default: str | None = None, *, must_exist: bool = False
    ) -> Path | None:
        """A file path, a relative one resolved against the config file's folder."""
        value = self.text(name, default)
        if value is None:
            return None
        resolved = self.reader.base_dir / value
        if must_exist and not resolved.is_file():
            self.problem(name, f"file not found: {resolved}")
        return resolved

    def done(self) -> None:
        """Report every key of this table that no getter asked for."""
        for name in self.data:
            if name not in self.used:
                self.problem(name, "unknown key")


def listen_problem(value: str) -> str | None:
    """Why ``value`` is not "host:port" (IPv6 in brackets), or None when it is."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return f'"{value}" is not "host:port" (e.g. "127.0.0.1:9180")'
    return None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def quoted(text: str) -> str:
    return f'"{text}"'


def type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def open_toml(path: Path) -> tuple[Table | None, list[Problem]]:
    """The root table of the TOML file at ``path``; or None and the problem that stops it
    from being read at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem("", None, f"cannot read {path}: {error}")]
    return parse_toml(text, path.resolve().parent)


def parse_toml(text: str, base_dir: Path) -> tuple[Table | None, list[Problem]]:
    """The root table of TOML ``text`` (relative paths in it resolve against ``base_dir``);
    or None and the syntax error, with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"at line (\d+)", str(error))
        line = int(found.group(1)) if found else None
        return None, [Problem("", line, f"not valid TOML: {error}")]
    return Table(Reader(LineIndex(text), base_dir), data, ""), []


def finish(root: Table) -> list[Problem]:
    """Report the root's unread keys; then every problem of the file, in line order."""
    root.done()
    return sorted(root.reader.problems, key=lambda p: (p.line is None, p.line or 0))
