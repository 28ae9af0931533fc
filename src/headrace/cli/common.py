"""What the store and stage commands of ``headrace`` share: the store options, opening the
store, turning errors into exit statuses, and printing tables, fields and JSON.

Every store command takes ``--home`` (``$HEADRACE_HOME``, default ``~/.headrace``), ``--db``
(``$HEADRACE_DB``, a SQLAlchemy URL; default SQLite in the home folder) and ``--objects``
(``$HEADRACE_OBJECTS``, an fsspec URL; default the ``objects`` folder of the home).

Output: tables for people (sizes in KiB/MiB/..., times in local ISO form), or with ``--json`` on
every command that prints something, JSON for programs: stable snake_case keys, sizes in bytes,
times as ISO 8601 in UTC, ``null`` for what is unknown.

Exit status: 0 on success; 1 when the store refuses or fails (something not found, a merge
conflict, an open commit in the way, a corrupt object, problems found by ``fsck``, a timeout, an
unreachable database); 2 for a usage error: an unknown option, an invalid repo or branch name,
reference or path, a local SOURCE that does not exist. Errors print one line ``Error: <message>``
on stderr (a merge conflict follows it with the conflicting paths).

The store itself is imported only when a command opens it (:func:`opened_store`), so
``headrace run`` and ``headrace --help`` do not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from headrace.cli.helptext import HeadraceTyper
from headrace.store.errors import InvalidName, InvalidPath, InvalidReference, StoreError
from headrace.store.refs import validate_name

if TYPE_CHECKING:
    from headrace.store.records import CommitInfo
    from headrace.store.store import Store

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "BranchArg",
    "DbOpt",
    "HomeOpt",
    "JsonOpt",
    "LimitOpt",
    "MessageOpt",
    "ObjectsOpt",
    "PathRefArg",
    "RefArg",
    "commit_json",
    "commit_name",
    "emit_json",
    "error_console",
    "fail",
    "handle_errors",
    "human_size",
    "iso_utc",
    "local_time",
    "new_table",
    "opened_store",
    "output_console",
    "print_fields",
    "say",
    "sub_app",
    "valid_repo_name",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_USAGE_ERRORS = (InvalidName, InvalidReference, InvalidPath)
_PLAIN_WIDTH = 1000  # tables written to a pipe or file are never wrapped

# -- options shared by every store command -------------------------------------------------------

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="HEADRACE_HOME",
        metavar="PATH",
        help="Folder of the store: its SQLite metadata and objects.  [default: ~/.headrace]",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="HEADRACE_DB",
        metavar="URL",
        help=(
            "SQLAlchemy URL of the metadata database, e.g. "
            "postgresql+psycopg://user@host/db.  [default: SQLite in --home]"
        ),
        show_default=False,
    ),
]
ObjectsOpt = Annotated[
    str | None,
    typer.Option(
        "--objects",
        envvar="HEADRACE_OBJECTS",
        metavar="URL",
        help="fsspec URL where objects are kept, e.g. s3://bucket/store.  [default: HOME/objects]",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print JSON (sizes in bytes, times ISO 8601 UTC) instead of a table or text.",
    ),
]
MessageOpt = Annotated[
    str, typer.Option("-m", "--message", help="The commit message.", show_default=False)
]
RefArg = Annotated[
    str,
    typer.Argument(
        metavar="REF",
        help="A commit: repo@branch, repo@<commit id>, with ^N or ~N to go back N commits.",
        show_default=False,
    ),
]
PathRefArg = Annotated[
    str, typer.Argument(metavar="REF:/path", help="The file or folder.", show_default=False)
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit", "-n", min=1, metavar="N", help="At most N entries.", show_default=False
    ),
]
BranchArg = Annotated[
    str, typer.Argument(metavar="REPO@BRANCH", help="The branch.", show_default=False)
]


def sub_app(name: str, help: str) -> typer.Typer:
    """A command group of ``headrace`` (``headrace repo ...``), set up as the main app."""
    return HeadraceTyper(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


# -- consoles, errors and opening the store ------------------------------------------------------


def error_console() -> Console:
    """A console on stderr for errors, warnings and progress (no markup, no emoji)."""
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def output_console() -> Console:
    """A console on stdout; its tables are never wrapped when stdout is not a terminal."""
    console = Console(highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console = Console(highlight=False, markup=False, emoji=False, width=_PLAIN_WIDTH)
    return console


def fail(message: str, code: int = EXIT_FAILURE, details: tuple[str, ...] = ()) -> NoReturn:
    """Print ``Error: <message>`` (and indented ``details``) on stderr and exit with ``code``."""
    console = error_console()
    console.print(Text("Error: ", style="bold red") + Text(message), soft_wrap=True)
    for line in details:
        console.print(Text(f"  {line}"), soft_wrap=True)
    raise typer.Exit(code)


def _is_database_error(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] == "sqlalchemy"


def _database_message(e: BaseException) -> str:
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return f"metadata database: {type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn what the store raises into ``Error: <message>`` and the exit status."""
    try:
        yield
    except _USAGE_ERRORS as e:
        fail(str(e), EXIT_USAGE)
    except StoreError as e:
        fail(str(e))
    except TimeoutError as e:
        fail(str(e))
    except OSError as e:
        if e.strerror and e.filename:
            fail(f"{e.strerror}: {e.filename}")
        fail(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except Exception as e:
        if _is_database_error(e):
            fail(_database_message(e))
        raise


def _open_store(home: Path | None, db: str | None, objects: str | None) -> Store:
    from headrace.store.store import Store

    try:
        return Store.open(home, db, objects)
    except (ValueError, ImportError) as e:  # an unknown fsspec protocol or missing driver
        fail(f"cannot open the store: {e} (check --db and --objects)", EXIT_USAGE)
    except StoreError as e:
        if "metadata URL" in str(e):  # a --db URL that does not parse or is not supported
            fail(f"--db: {e}", EXIT_USAGE)
        raise


@contextmanager
def opened_store(home: Path | None, db: str | None, objects: str | None) -> Iterator[Store]:
    """The opened store, closed afterwards; store errors become exit statuses."""
    with handle_errors():
        store = _open_store(home, db, objects)
        try:
            yield store
        finally:
            store.close()


# -- formatting ----------------------------------------------------------------------------------


def human_size(n: int | None) -> str:
    """A byte count for people.

    >>> human_size(512), human_size(1536), human_size(5 * 1024**3), human_size(None)
    ('512 B', '1.5 KiB', '5.0 GiB', '-')
    """
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


def local_time(ts: float | None) -> str:
    """A timestamp as local time for people (``-`` when unknown)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def iso_utc(ts: float | None) -> str | None:
    """A timestamp as ISO 8601 in UTC for JSON (None when unknown)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def commit_json(c: CommitInfo) -> dict[str, Any]:
    """A commit as the JSON the commands print (:func:`headrace.stages.views.commit_view`)."""
    from headrace.stages.views import commit_view

    return commit_view(c)


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def say(text: str) -> None:
    """Print a line of plain text on stdout."""
    output_console().print(Text(text), soft_wrap=True)


def new_table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    """An empty table with these columns (those named in ``right`` right-aligned)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    return table


def print_fields(rows: list[tuple[str, str]]) -> None:
    """Print ``(name, value)`` rows as two aligned columns (what ``inspect`` commands show)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    output_console().print(grid)


def commit_name(c: CommitInfo) -> str:
    """``repo@branch`` of a commit, or the repo alone for a commit on no branch."""
    return f"{c.repo}@{c.branch}" if c.branch else c.repo


def valid_repo_name(text: str) -> str:
    """``text`` if it is a valid repo name; else exit with a usage error."""
    with handle_errors():
        return validate_name(text)
