"""CSV files of the e-commerce example: reading, writing, and errors that name file and line.

Every stage of the example reads and writes plain CSV with a header row (UTF-8, ``\\n`` line
ends, minimal quoting), so outputs are byte-for-byte reproducible. A :class:`Table` keeps, for
each row, the file line where it ends, so a bad value can be reported as
``standardise: /eu/2024-03-25.csv line 7: order EU-20240325-0005: unknown timezone ...``
by :class:`DataError`.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp, "eu", "day.csv")
...     write_csv(path, ["a", "b"], [{"a": "1", "b": "x,y"}])
...     print(path.read_text(), end="")
...     print(read_csv(path).rows)
a,b
1,"x,y"
[{'a': '1', 'b': 'x,y'}]
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DataError",
    "Table",
    "csv_files",
    "input_dir",
    "read_csv",
    "require_columns",
    "write_csv",
]


class DataError(ValueError):
    """A bad value in an input file; the message names the stage, the file and the line."""

    def __init__(self, stage: str, file: str, problem: str, line: int | None = None) -> None:
        self.stage = stage
        self.file = file
        self.line = line
        self.problem = problem
        where = file if line is None else f"{file} line {line}"
        super().__init__(f"{stage}: {where}: {problem}")

    def __reduce__(self) -> tuple[type[DataError], tuple[str, str, str, int | None]]:
        return (DataError, (self.stage, self.file, self.problem, self.line))


class Table(NamedTuple):
    """A CSV file read whole: its header, its rows as dicts and the line each row ends on."""

    fields: list[str]
    rows: list[dict[str, str]]
    lines: list[int]


def read_csv(path: Path) -> Table:
    """Read a CSV file with a header row; an empty file gives a table without fields or rows.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp, "t.csv")
    ...     _ = path.write_text("x,y\\n1,2\\n3,4\\n")
    ...     table = read_csv(path)
    >>> table.fields, table.lines
    (['x', 'y'], [2, 3])
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows: list[dict[str, str]] = []
        lines: list[int] = []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
        fields = list(reader.fieldnames or ())
    return Table(fields, rows, lines)


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Write ``rows`` (only the ``fields`` columns, in that order) with a header to ``path``.

    Parent folders are created. Keys of a row that are not in ``fields`` are left out, which is
    how stages drop columns.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_csv(Path(tmp, "t.csv"), ["b"], [{"a": 1, "b": 2}])
    ...     print(Path(tmp, "t.csv").read_text(), end="")
    b
    2
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=fields, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)


def csv_files(root: Path) -> list[tuple[str, Path]]:
    """Every file under ``root`` as ``(repo path without the leading '/', local path)``, sorted.

    A missing ``root`` has no files (a datum of an outer join may lack an input).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_csv(Path(tmp, "us", "b.csv"), ["x"], [])
    ...     write_csv(Path(tmp, "eu", "a.csv"), ["x"], [])
    ...     [rel for rel, _ in csv_files(Path(tmp))]
    ['eu/a.csv', 'us/b.csv']
    """
    if not root.is_dir():
        return []
    found = [(path.relative_to(root).as_posix(), path) for path in root.rglob("*")]
    return sorted((rel, path) for rel, path in found if path.is_file())


def input_dir(inputs: Mapping[str, Path], name: str | None, stage: str) -> Path:
    """The directory of input ``name``; with ``name=None`` the stage's only input.

    >>> input_dir({"mask": Path("/in/mask")}, None, "standardise").as_posix()
    '/in/mask'
    >>> input_dir({"a": Path("/a")}, "orders", "enrich")
    Traceback (most recent call last):
    ...
    LookupError: enrich needs an input named 'orders' but has only 'a'; name it so in the stage spec
    """
    if name is None:
        if len(inputs) != 1:
            raise LookupError(
                f"{stage} reads exactly one input but has {len(inputs)}: "
                f"{', '.join(map(repr, sorted(inputs))) or 'none'}; fix the stage spec's input"
            )
        return Path(next(iter(inputs.values())))
    if name not in inputs:
        have = ", ".join(map(repr, sorted(inputs))) or "none"
        raise LookupError(
            f"{stage} needs an input named {name!r} but has only {have}; name it so in the "
            "stage spec"
        )
    return Path(inputs[name])


def require_columns(table: Table, needed: Sequence[str], stage: str, file: str, hint: str) -> None:
    """Raise :class:`DataError` naming ``file`` if ``table`` lacks any of ``needed``.

    A file with nothing in it (no header) counts as having every column and no rows.

    >>> require_columns(Table(["a"], [], []), ["a", "b"], "mask", "/eu/x.csv", "enrich's output")
    Traceback (most recent call last):
    ...
    headrace.examples.ecommerce.tables.DataError: mask: /eu/x.csv: missing column b; expected enrich's output
    """  # noqa: E501
    missing = [name for name in needed if name not in table.fields]
    if missing and table.fields:
        plural = "s" if len(missing) > 1 else ""
        raise DataError(
            stage, file, f"missing column{plural} {', '.join(missing)}; expected {hint}"
        )
